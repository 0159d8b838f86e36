"""The registry over HTTP: upload (admin), list, show, download the bundle archive (admins, compatibility) and
the blobs devices fetch by content address (each bundle file, named by sha256 in a signed offer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from service.cloud.deps import AdminDep, ContextDep, RegistryDep, StoreDep
from service.cloud.errors import StoreError, UnknownVersionError
from service.cloud.etags import etag_matches
from service.cloud.registry import AdmissionBusyError
from service.cloud.schemas import VERSION_PATTERN, ModelVersionPublic, ModelVersionsPublic, SigningKeyPublic
from service.cloud.store import VersionRecord
from service.common.errors import BundleError
from service.common.key_rotation import stored_head

router = APIRouter(prefix="/v1", tags=["models"])

ARCHIVE_TYPES = frozenset({"application/gzip", "application/x-gzip", "application/octet-stream"})
VersionPath = Annotated[str, Path(pattern=VERSION_PATTERN)]
Sha256Path = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]


def public(record: VersionRecord) -> ModelVersionPublic:
    return ModelVersionPublic(
        **record.model_dump(exclude={"manifest"}),
        manifest=record.manifest,
        bundle_url=f"/v1/models/{record.version}/bundle",
    )


@router.post(
    "/models",
    status_code=201,
    response_model=ModelVersionPublic,  # documents the body; the route answers a JSONResponse itself
    responses={
        200: {"model": ModelVersionPublic, "description": "identical bundle already registered"},
        429: {"description": "every admission slot is busy; retry after `Retry-After` seconds"},
    },
)
async def upload_model(request: Request, _admin: AdminDep, ctx: ContextDep) -> JSONResponse:
    """Body: the bundle archive (`service.common.archive.pack_bundle`). 201 new, 200 identical re-upload."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ARCHIVE_TYPES:
        raise HTTPException(415, f"send the bundle archive as application/gzip, not {content_type or 'nothing'}")
    archive = await request.body()
    if not archive:
        raise BundleError("empty body: expected a bundle archive")
    try:
        record, created = await ctx.registry.register(archive)
    except BundleError:
        ctx.metrics.uploads.labels("refused").inc()
        raise
    except AdmissionBusyError as exc:  # 429, not 503: only uploads are throttled, the replica is healthy
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from exc
    ctx.metrics.uploads.labels("created" if created else "identical").inc()
    return JSONResponse(public(record).model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/models")
async def list_models(
    store: StoreDep,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> ModelVersionsPublic:
    records, total = await store.list_versions(offset, limit)
    return ModelVersionsPublic(data=[public(r) for r in records], count=total)


@router.get("/models/{version}")
async def show_model(version: VersionPath, registry: RegistryDep) -> ModelVersionPublic:
    record = await registry.get(version)
    if record is None:
        raise UnknownVersionError(f"version {version!r} is not registered")
    return public(record)


@router.get("/models/{version}/bundle", response_class=FileResponse)
async def download_bundle(version: VersionPath, request: Request, registry: RegistryDep) -> Response:
    """The archive bytes; ETag is the quoted sha256 of exactly these bytes; Range requests give 206/416."""
    record = await registry.get(version)
    if record is None:
        raise UnknownVersionError(f"version {version!r} is not registered")
    etag = f'"{record.bundle_sha256}"'
    headers = {"etag": etag, "cache-control": "public, max-age=31536000, immutable"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    path = await registry.bundle_path(record)
    if path is None:
        raise StoreError(f"bundle blob of {version} is missing from the store")
    return FileResponse(
        path,
        media_type="application/gzip",
        headers=headers,
        filename=f"{version}.tar.gz",
        content_disposition_type="attachment",
    )


@router.get("/blobs/{sha256}", response_class=FileResponse, responses={404: {"description": "no such blob"}})
async def download_blob(sha256: Sha256Path, request: Request, registry: RegistryDep) -> Response:
    """A stored blob by its sha256. Public and immutable, like the archive: a device trusts these bytes only
    once they hash to what its signed offer names, so serving them to anyone discloses nothing new."""
    etag = f'"{sha256}"'
    headers = {"etag": etag, "cache-control": "public, max-age=31536000, immutable"}
    path = await registry.blobs.path(sha256)  # the store's blob, through this replica's cache
    if path is None:
        raise HTTPException(404, f"no blob {sha256}")
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type="application/octet-stream", headers=headers)


@router.get("/signing-key")
async def signing_key(registry: RegistryDep) -> SigningKeyPublic:
    """The public half of the manifest signing key. Devices should pin it out of band; this helps check."""
    head = stored_head(await registry.store.rotations(), registry.public_key)
    return SigningKeyPublic(public_key=registry.public_key, deployment=registry.deployment, key_version=head.version)
