"""`manifest.json`: what a bundle holds and how it was made, checked before any byte of it is executed, and
the one writer of a bundle folder (`write_bundle`), used by the build pipeline and by stand-in bundles alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.common.bounded_json import MANIFEST_MAX_BYTES, load_bounded
from service.common.contract import BUNDLE_FILES, MANIFEST_FILE, MANIFEST_SCHEMA_VERSION, MODEL_FILE, TOKENIZER_FILE
from service.common.errors import BundleError

_CHUNK = 1 << 20


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(BaseModel):
    """The bundle's self-description; `extra="allow"` keeps manifests from newer pipelines readable."""

    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")
    created: str
    dim: int = Field(gt=0, le=4096)
    max_length: int = Field(gt=1, le=4096)
    teacher: str
    files: dict[str, FileEntry]
    build: dict[str, Any] = Field(default_factory=dict)  # config, command, data, library versions
    metrics: dict[str, Any] = Field(default_factory=dict)

    @property
    def release_id(self) -> str:
        """`{name}-{version}`: the id the cloud registers, offers and counts telemetry under (versions alone may
        collide between model lines)."""
        return f"{self.name}-{self.version}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path) -> FileEntry:
    return FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)


def read_manifest_json(bundle_dir: Path) -> Any:
    """manifest.json as parsed JSON, within the size and depth limits of `service.common.bounded_json`."""
    path = Path(bundle_dir) / MANIFEST_FILE
    try:
        return load_bounded(path, max_bytes=MANIFEST_MAX_BYTES)
    except FileNotFoundError as exc:
        raise BundleError(f"{bundle_dir}: no {MANIFEST_FILE}") from exc


def read_manifest(bundle_dir: Path) -> Manifest:
    path = Path(bundle_dir) / MANIFEST_FILE
    raw = read_manifest_json(bundle_dir)
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{path}: invalid manifest: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}") from exc
    if manifest.schema_version > MANIFEST_SCHEMA_VERSION:
        raise BundleError(
            f"{path}: schema_version {manifest.schema_version} is newer than this runtime "
            f"understands ({MANIFEST_SCHEMA_VERSION}); upgrade eibert"
        )
    return manifest


def verify_bundle(bundle_dir: Path) -> Manifest:
    """Read the manifest and check every required file's size and sha256; raise BundleError on any mismatch."""
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    for name in BUNDLE_FILES:
        if name not in manifest.files:
            raise BundleError(f"{bundle_dir}: manifest does not list {name}")
    for name, entry in manifest.files.items():
        if Path(name).name != name:
            raise BundleError(f"{bundle_dir}: manifest file name {name!r} is not a plain file name")
        path = bundle_dir / name
        if not path.is_file() or path.is_symlink():
            raise BundleError(f"{bundle_dir}: {name} is missing or not a regular file")
        size = path.stat().st_size
        if size != entry.bytes:
            raise BundleError(f"{bundle_dir}: {name} has {size} bytes, manifest says {entry.bytes}")
        if sha256_file(path) != entry.sha256:
            raise BundleError(f"{bundle_dir}: {name} sha256 does not match the manifest")
    return manifest


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("eibert", "torch", "onnxruntime", "onnx", "tokenizers", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def write_bundle(
    out_dir: Path,
    *,
    model_onnx: Path,
    tokenizer_json: Path,
    name: str,
    version: str,
    dim: int,
    max_length: int,
    teacher: str,
    build: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    extra_files: dict[str, Path] | None = None,
) -> Manifest:
    """Copy the two files (and `extra_files`, e.g. `ranker.json`) into `out_dir` and write `manifest.json` with
    every file's sha256 and size."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if model_onnx.resolve() != (out_dir / MODEL_FILE).resolve():
        shutil.copyfile(model_onnx, out_dir / MODEL_FILE)
    if tokenizer_json.resolve() != (out_dir / TOKENIZER_FILE).resolve():
        shutil.copyfile(tokenizer_json, out_dir / TOKENIZER_FILE)
    for file_name, path in (extra_files or {}).items():
        if path.resolve() != (out_dir / file_name).resolve():
            shutil.copyfile(path, out_dir / file_name)
    manifest = Manifest(
        schema_version=MANIFEST_SCHEMA_VERSION,
        name=name,
        version=version,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        dim=dim,
        max_length=max_length,
        teacher=teacher,
        files={f: file_entry(out_dir / f) for f in (MODEL_FILE, TOKENIZER_FILE, *(extra_files or {}))},
        build={**build, "versions": library_versions()},
        metrics=metrics or {},
    )
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest.model_dump(), indent=2, sort_keys=True) + "\n")
    return manifest
