"""The trust decisions of the update protocol, one by one: expiry, rollback, mix-and-match, freshness, and the
persisted trusted state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.common.manifest import Manifest
from service.common.offer import OfferPayload
from service.edge.update_protocol import (
    TRUST_FILE,
    FileTrustStore,
    TrustedState,
    UpdateFailed,
    VerifiedOffer,
    admit_offer,
    freshness,
)

NOW = 1_800_000_000


def offer(
    tiny_bundle: Path, *, generation: int = 3, issued: int = NOW - 10, ttl: int = 3600, model_sha: str = ""
) -> VerifiedOffer:
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    if model_sha:
        manifest["files"]["model.onnx"]["sha256"] = model_sha
    payload = OfferPayload(
        version=f"{manifest['name']}-{manifest['version']}",
        generation=generation,
        issued=issued,
        expires=issued + ttl,
        manifest=manifest,
    )
    return VerifiedOffer(payload=payload, manifest=Manifest.model_validate(manifest))


def refused(stage: str, o: VerifiedOffer, trusted: TrustedState | None, now: float = NOW) -> str:
    with pytest.raises(UpdateFailed) as exc:
        admit_offer(o, trusted, now)
    assert exc.value.stage == stage, exc.value
    return str(exc.value)


def test_first_offer_is_trusted_and_later_ones_only_move_forward(tiny_bundle: Path) -> None:
    trusted = admit_offer(offer(tiny_bundle), None, NOW)
    assert (trusted.generation, trusted.issued, trusted.expires) == (3, NOW - 10, NOW - 10 + 3600)
    assert "below the 3" in refused("rollback", offer(tiny_bundle, generation=2), trusted)
    higher = admit_offer(offer(tiny_bundle, generation=4, model_sha="ab" * 32), trusted, NOW)
    assert higher.generation == 4  # any content, even an older version: the cloud signed a new generation


def test_same_generation_other_content_is_mix_and_match(tiny_bundle: Path) -> None:
    trusted = admit_offer(offer(tiny_bundle), None, NOW)
    refused("mix_and_match", offer(tiny_bundle, model_sha="ab" * 32), trusted)


def test_same_offer_re_signed_later_refreshes_but_an_older_copy_does_not(tiny_bundle: Path) -> None:
    trusted = admit_offer(offer(tiny_bundle), None, NOW)
    newer = admit_offer(offer(tiny_bundle, issued=NOW), trusted, NOW)
    assert newer.issued == NOW
    assert admit_offer(offer(tiny_bundle, issued=NOW - 100), newer, NOW) is newer


def test_expired_offers_are_refused_even_without_trusted_state(tiny_bundle: Path) -> None:
    o = offer(tiny_bundle, issued=NOW - 3600)
    refused("expired", o, None)
    refused("expired", o, admit_offer(offer(tiny_bundle, generation=1, issued=NOW - 3000), None, NOW - 3000))


def test_freshness_ages_from_the_newest_issued_and_turns_stale(tiny_bundle: Path) -> None:
    trusted = admit_offer(offer(tiny_bundle, issued=NOW), None, NOW)
    assert freshness(trusted, NOW + 100, max_age_s=600, since=0).age_s == 100
    assert not freshness(trusted, NOW + 600, max_age_s=600, since=0).stale
    assert freshness(trusted, NOW + 601, max_age_s=600, since=0).stale
    assert freshness(trusted, NOW + 3600, max_age_s=10**9, since=0).stale  # expired counts as stale
    never = freshness(None, NOW + 601, max_age_s=600, since=NOW)  # no valid offer since the updater started
    assert never.stale and never.age_s == 601


def test_file_trust_store_round_trips_atomically_and_reports_garbage(tmp_path: Path, tiny_bundle: Path) -> None:
    store = FileTrustStore(tmp_path)
    assert store.load() is None
    trusted = admit_offer(offer(tiny_bundle), None, NOW)
    store.save(trusted)
    assert FileTrustStore(tmp_path).load() == trusted
    assert sorted(p.name for p in tmp_path.iterdir()) == [TRUST_FILE]  # no temp file left
    (tmp_path / TRUST_FILE).write_text("{not json")
    with pytest.raises(UpdateFailed, match="unreadable") as refused:  # never "absent": that would reset rollback checks
        FileTrustStore(tmp_path).load()
    assert refused.value.stage == "trust"
