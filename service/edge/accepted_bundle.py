"""Which bundle on disk is the one this node accepted: how a restarted node finds what it served before.

The trusted state (`update_protocol.TrustedState`) keeps the content id of the newest accepted signed offer: a
hash of its release id and its signed manifest. The updater writes that manifest as `manifest.json` into the
bundle folder it downloads (`<state dir>/bundles/<release id>-<sha>`), so the folder whose `manifest.json` hashes
to the same content id holds the accepted bundle; the loader then re-checks every file against it.
"""

from __future__ import annotations

import json
from pathlib import Path

from service.common.contract import MANIFEST_FILE
from service.common.offer import OfferPayload
from service.edge.slot import LoadedModel
from service.edge.update_protocol import TrustedState


def manifest_on_disk(bundle_dir: Path) -> dict | None:
    try:
        return json.loads((bundle_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def content_id(release_id: str, manifest: dict) -> str:
    """What `OfferPayload.content_id` computes for an offer of `manifest` (as signed) under `release_id`."""
    return OfferPayload(version=release_id, generation=0, issued=0, expires=0, manifest=manifest).content_id()


def serves(model: LoadedModel, trusted: TrustedState) -> bool:
    """`model` is what the accepted offer names: same release id, and its manifest.json hashes to that content."""
    if model.release_id != trusted.version:
        return False
    raw = manifest_on_disk(model.source)
    return raw is not None and content_id(trusted.version, raw) == trusted.content_id


def accepted_on_disk(bundles_dir: Path, trusted: TrustedState) -> Path | None:
    """The downloaded bundle folder the accepted offer names, if it is still there."""
    for d in sorted(bundles_dir.glob(f"{trusted.version}-*")):
        manifest = manifest_on_disk(d)
        if manifest is not None and content_id(trusted.version, manifest) == trusted.content_id:
            return d
    return None
