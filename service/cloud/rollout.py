"""Staged rollout: which version each device should run. Pure functions over an immutable `RolloutState`.

State machine (one `RolloutState`; `stable` is what everyone runs, `candidate` what some devices try):

    IDLE(stable=S or None)  --PUT {V, p<100}, V != S-->        CANARY(stable=S, candidate=V, percent=p)
    IDLE / CANARY           --PUT {S, 100}-->                   IDLE(stable=S) (no-op, or cancels the canary)
    IDLE / CANARY           --PUT {V, 100}, V != S-->           IDLE(stable=V), S pushed on `history`
    CANARY(candidate=V)     --PUT {V, p'}-->                    CANARY(percent=p'), up or down
    CANARY(candidate=V)     --PUT {W, p}, W != V-->             CANARY(candidate=W): V is abandoned
    CANARY                  --POST rollback-->                  IDLE(stable=S): the candidate is cancelled
    IDLE(stable=S)          --POST rollback-->                  IDLE(stable=history.pop()); refused if empty
    any                     --PUT {stable, p<100}-->            refused (use rollback to leave a stable)

Assignment: a device gets the candidate iff bucket(device, candidate) < percent, where bucket is a stable hash
of (version, device id) into 0..99; otherwise the stable version (None = nothing released yet: 404). Hashing
the version in as well means each rollout picks a fresh, independent cohort, while raising the percent of the
same version only ever adds devices (monotone: nobody flips back and forth during a ramp).

Every transition bumps `generation`; the store applies it with compare-and-set on the generation, so two
admins racing cannot lose an update.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from pydantic import BaseModel, ConfigDict, Field

from service.cloud.errors import RolloutError, UnknownVersionError

MAX_HISTORY = 32  # previous stables kept for rollback; older ones fall off


class RolloutState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stable: str | None = None
    candidate: str | None = None
    percent: int = Field(default=0, ge=0, le=100)
    history: tuple[str, ...] = ()  # previous stables, most recent last
    generation: int = Field(default=0, ge=0)
    updated_at: str | None = None


def bucket(device_id: str, version: str) -> int:
    """Stable bucket 0..99 of (version, device id); identical on every replica and across restarts."""
    digest = hashlib.sha256(f"{version}\x00{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def assign(state: RolloutState, device_id: str) -> str | None:
    if state.candidate is not None and bucket(device_id, state.candidate) < state.percent:
        return state.candidate
    return state.stable


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def set_rollout(state: RolloutState, version: str, percent: int, *, known: bool) -> RolloutState:
    """The PUT /v1/rollout transition; `known` says whether `version` is registered."""
    if not known:
        raise UnknownVersionError(f"version {version!r} is not registered")
    if not 0 <= percent <= 100:
        raise RolloutError("percent must be between 0 and 100")
    nxt = state.generation + 1
    if version == state.stable:
        if percent != 100:
            raise RolloutError(f"{version} is the stable version; use POST /v1/rollback to leave it")
        return state.model_copy(update={"candidate": None, "percent": 0, "generation": nxt, "updated_at": _now()})
    if percent == 100:
        history = state.history if state.stable is None else (*state.history, state.stable)
        return RolloutState(
            stable=version,
            candidate=None,
            percent=0,
            history=history[-MAX_HISTORY:],
            generation=nxt,
            updated_at=_now(),
        )
    return state.model_copy(update={"candidate": version, "percent": percent, "generation": nxt, "updated_at": _now()})


def rollback(state: RolloutState) -> RolloutState:
    """The POST /v1/rollback transition: cancel a canary, else return to the previous stable version."""
    nxt = state.generation + 1
    if state.candidate is not None:
        return state.model_copy(update={"candidate": None, "percent": 0, "generation": nxt, "updated_at": _now()})
    if not state.history:
        raise RolloutError("nothing to roll back to: there is no previous stable version")
    return RolloutState(
        stable=state.history[-1],
        candidate=None,
        percent=0,
        history=state.history[:-1],
        generation=nxt,
        updated_at=_now(),
    )
