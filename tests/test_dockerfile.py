"""service/Dockerfile, checked statically (no Docker engine needed): one target per image, the edge's slim
environment (the `edge` extra only, no pip, bundles once), and the default commands.

As in tests/test_compose.py, each finding is a function from the Dockerfile's text to its problems, and a test
puts each finding back into a copy of the text to show that its check finds it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest

from model_store.shipped import SHIPPED_BUNDLE
from service.devstack.processes import free_port
from tests.dockerfile import (
    DOCKERFILE,
    ROOT,
    TARGETS,
    default_command,
    image_stages,
    instructions,
    pip_extras,
    stages,
    target_text,
)

TEXT = DOCKERFILE.read_text()
STAGES = stages(TEXT)
SITE = "/opt/eibert/lib/python3.11/site-packages"


def test_one_target_per_image_and_a_dockerignore_beside_it() -> None:
    assert set(TARGETS) <= set(STAGES)
    ignore = DOCKERFILE.with_name(DOCKERFILE.name + ".dockerignore")
    assert ignore.is_file() and ".venv" in ignore.read_text().split(), f"{ignore} must keep .venv out"
    assert sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("**/Dockerfile") if ".venv" not in p.parts) == [
        "service/Dockerfile"
    ]


@pytest.mark.parametrize("target", ["edge", "cloud"])
def test_default_commands_parse(target: str) -> None:
    from eibert.cli import build_parser

    cmd = default_command(STAGES, target)
    assert cmd[0] == "eibert"
    try:
        build_parser().parse_args(cmd[1:])
    except SystemExit as exc:
        raise AssertionError(f"eibert does not accept {cmd}") from exc


def test_edge_image_is_slim() -> None:
    text = target_text(STAGES, "edge").lower()
    assert "torch" not in text and "[train" not in text and "requirements" not in text
    assert pip_extras(text) == {"edge"}


def test_no_image_installs_the_training_stack() -> None:
    for target in TARGETS:
        extras = pip_extras(target_text(STAGES, target))
        assert extras and "train" not in extras and "dev" not in extras, f"{target}: {extras}"
        assert "torch" not in target_text(STAGES, target).lower()
    assert pip_extras(target_text(STAGES, "cloud")) == {"cloud"}


def test_the_edge_extra_leaves_out_what_a_device_does_not_run() -> None:
    """OpenDP (265 MB) stays with the cloud and the tests, which certify the devices' randomized response."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in extras["edge"]}
    assert not names & {"opendp", "torch", "transformers", "huggingface-hub", "pip", "setuptools"}, names
    assert "opendp" in {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in extras["cloud"]}


# ---------------------------------------------------------------------------------------------------- issue 13


def pip_problems(text: str) -> list[str]:
    """pip and setuptools stayed in the runtime environment (17 + 10 MB in the edge image, and a way to install)."""
    out = []
    lines = instructions(text)
    venvs = [ln for ln in lines if re.search(r"python\S* -m venv\b", ln)]
    if not venvs:
        out.append("no virtual environment is made")
    out += [f"a venv with pip: {ln}" for ln in venvs if "--without-pip" not in ln]
    all_stages = stages(text)
    for target in TARGETS:
        for stage in image_stages(all_stages, target):
            out += [f"{target}: {stage.name} runs pip: {ln}" for ln in stage.lines if re.search(r"\bpip\b", ln)]
    return out


def bundle_problems(text: str) -> list[str]:
    """The bundles were installed with the package and copied to /app again (twice in every image)."""
    all_stages = stages(text)
    out = []
    for target in TARGETS:
        for stage in image_stages(all_stages, target):
            for line in stage.lines:
                if line.startswith(("COPY", "ADD")) and "--from" not in line and "model_store" in line:
                    out.append(f"{target}: {stage.name} copies model_store again: {line}")
    links = [ln for s in all_stages.values() for ln in s.lines if "ln -s" in ln]
    if not any(f"{SITE}/model_store/bundles /app/model_store/bundles" in ln for ln in links):
        out.append("/app/model_store/bundles must link to the installed bundles")
    return out


def removed_from_edge(text: str) -> list[str]:
    """The distributions the edge's build stage uninstalls after installing the `edge` extra."""
    line = next((ln for ln in instructions(text) if '".[edge]"' in ln), "")
    m = re.search(r"uninstall -y ([a-z0-9 _-]+?)(?:&&|$)", line)
    return m.group(1).split() if m else []


def removed_modules_from_edge(text: str) -> set[str]:
    """The packages the edge's build stage deletes from site-packages (`rm -rf a/b ...`), as module names."""
    line = next((ln for ln in instructions(text) if '".[edge]"' in ln), "")
    m = re.search(r"rm -rf ([^&]+?)(?:&&|$)", line)
    paths = m.group(1).split() if m else []
    return {p.replace("/", ".") for p in paths if "*" not in p and "." not in p.rsplit("/", 1)[-1]}


def test_the_dockerfile_has_none_of_the_findings_of_issue_13() -> None:
    assert pip_problems(TEXT) == []
    assert bundle_problems(TEXT) == []


DOCKERFILE_FINDINGS = {
    "a venv with pip": lambda t: t.replace("-m venv --without-pip", "-m venv"),
    "pip in an image stage": lambda t: t.replace("WORKDIR /app", "WORKDIR /app\nRUN pip install locust", 1),
    "bundles copied again": lambda t: t.replace(
        "FROM runtime AS edge\n", "FROM runtime AS edge\nCOPY model_store/bundles model_store/bundles\n"
    ),
    "no link to the installed bundles": lambda t: t.replace(" /app/model_store/bundles", " /app/bundles"),
}


@pytest.mark.parametrize("finding", sorted(DOCKERFILE_FINDINGS))
def test_each_check_finds_its_finding_put_back(finding: str) -> None:
    changed = DOCKERFILE_FINDINGS[finding](TEXT)
    assert changed != TEXT, f"{finding}: the change no longer applies"
    assert pip_problems(changed) + bundle_problems(changed), finding


# Distribution -> the module it installs, where the names differ.
_MODULES = {"pyyaml": "yaml", "hf-xet": "hf_xet", "huggingface-hub": "huggingface_hub"}

# What an edge node does: serve (encode, rank), admit a downloaded bundle (onnx), privatise its telemetry. The
# requests go through urllib: a test client would import HTTP libraries of its own.
_EDGE_PROBE = """
import json, os, sys, tempfile, threading, time, urllib.request
import service.edge.cli as cli

bundle, port = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}"


def post(path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200, r.status


def drive():
    from pathlib import Path
    from service.common.ldp import METRICS, encode_report
    from service.common.model_admission import AdmissionLimits, admit_bundle

    for _ in range(600):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    post("/v1/encode", {"texts": ["Toy Story (1995)"]})
    post("/v1/rank", {"candidates": [{"id": "a", "text": "b"}], "top_k": 1})
    admit_bundle(Path(bundle), AdmissionLimits())
    for name, spec in METRICS.items():
        for mechanism in spec.mechanisms:
            value = True if mechanism == "rr" else spec.categories[0]
            encode_report(name, value, model_version="m", day="2025-01-01", mechanism=mechanism)
    print("MODULES", " ".join(sorted({m.split(".")[0] for m in sys.modules})), flush=True)
    os._exit(0)


threading.Thread(target=drive, daemon=True).start()
cli.main(["--bundle", bundle, "--port", port, "--state-dir", tempfile.mkdtemp()])
os._exit(1)
"""


def test_the_edge_never_imports_what_its_image_leaves_out() -> None:
    removed = removed_from_edge(TEXT)
    assert {"huggingface-hub", "hf-xet", "fsspec", "pyyaml"} <= set(removed), removed
    modules = {_MODULES.get(d, d.replace("-", "_")) for d in removed} | {"opendp", "pip", "setuptools"}
    args = [sys.executable, "-c", _EDGE_PROBE, str(SHIPPED_BUNDLE), str(free_port())]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    imported = set(next(ln for ln in proc.stdout.splitlines() if ln.startswith("MODULES ")).split()[1:])
    assert "onnxruntime" in imported and "tokenizers" in imported and "onnx" in imported
    assert not imported & modules, f"the edge imports {sorted(imported & modules)}, which its image leaves out"
    gone = removed_modules_from_edge(TEXT)
    assert {"onnx.reference", "onnxruntime.transformers", "onnxruntime.quantization"} <= gone, gone
    inside = {m for m in imported for g in gone if m == g or m.startswith(g + ".")}
    assert not inside, f"the edge imports {sorted(inside)}, which its image deletes"
