"""Edge node HTTP contracts (architecture.md): what clients send to and get from `/v1/encode`, `/v1/rank`,
`/v1/model`.

Every request field has a bound, so a request's cost is bounded before any text is tokenised; pydantic turns
a violation into a 422 that names the field. Texts are bounded in characters, not tokens: the tokenizer
truncates to the model's max length anyway, the character bound only caps the tokenizer's work.

The per-field bounds alone still allowed one /v1/rank of 700 texts x 2,000 characters (seconds of compute
that every other request waited behind), so a request also has a total character budget, MAX_REQUEST_CHARS.
Measured on eibert-0.3.0 (one thread, a busy 2-core machine), the costliest request within the budget (a few
hundred texts that each fill the 128-token window) takes ~470 ms to encode, against ~1.5 s for the old
maximum there. Honest traffic sits far inside it: MovieLens item texts average 49 characters (p99.9 277,
max 2,304), so a typical rank of 50 behaviours x 100 candidates is ~7,500 characters.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXTS = 64  # texts per /v1/encode request
MAX_TEXT_CHARS = 2000  # characters per text (behaviour, candidate or encode input)
MAX_BEHAVIORS = 1000  # behaviours per /v1/rank request (a grocery history; texts repeat and embed once)
MAX_CANDIDATES = 500  # candidates per /v1/rank request
MAX_TOP_K = MAX_CANDIDATES
MAX_ID_CHARS = 128
MAX_KIND_CHARS = 32
DEFAULT_TOP_K = 10
MAX_REQUEST_CHARS = 100_000  # characters of all texts of one /v1/encode or /v1/rank request together

Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
# How rows travel: JSON numbers, or each row as base64 of its little-endian float32 bytes (exact, about half the
# bytes of the numbers, and what the OpenAI client asks for by default).
EncodingFormat = Literal["float", "base64"]


class _Request(BaseModel):
    # Unknown fields are refused so a client's typo ("candidate", "topk") fails loudly instead of being ignored.
    model_config = ConfigDict(extra="forbid")


def check_request_chars(texts: list[str]) -> None:
    """Refuse a request whose texts together exceed MAX_REQUEST_CHARS (a 422 naming the limit)."""
    total = sum(len(t) for t in texts)
    if total > MAX_REQUEST_CHARS:
        raise ValueError(
            f"the request's texts have {total} characters together; the limit is {MAX_REQUEST_CHARS} per request"
        )


class EncodeRequest(_Request):
    """1-64 texts of 1-2,000 characters each, and at most 100,000 characters together (a 422 names the limit)."""

    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS)
    encoding_format: EncodingFormat = "float"

    @model_validator(mode="after")
    def _within_budget(self) -> EncodeRequest:
        check_request_chars(self.texts)
        return self


class EncodeResponse(BaseModel):
    model_version: str  # the release id `{name}-{version}` of the model that produced the rows (see ServingModelPublic)
    dim: int
    # L2-normalised, one row per input text, in input order; a base64 string per row for encoding_format=base64
    embeddings: list[list[float]] | list[str]


# Kinds of behaviour and what the ranker does with them: view, click and purchase say what the user wants
# (content, repeat and cycle features); an impression says only that an item was shown at `position` and not
# clicked (it feeds position-bias estimates, never interest). Anything else is refused, not silently ignored.
BehaviorKind = Literal["view", "click", "purchase", "impression"]
MAX_POSITION = MAX_CANDIDATES  # 0-based slot an item was shown at
# Timestamps are unix seconds. Anything past this is milliseconds (or nonsense): year 5138 in seconds.
MAX_TS_S = 1e11
FUTURE_SLACK_S = 86400.0  # clocks drift; a behaviour more than a day after `now` is refused
MAX_UTC_OFFSET_MIN = 14 * 60
MAX_PRIOR = 1e9  # priors are scores such as popularity counts or their logs; the ranker logs non-negative ones


def check_seconds(ts: float, field: str) -> float:
    if ts >= MAX_TS_S:
        raise ValueError(f"{field} {ts:g} is not unix seconds (it looks like milliseconds): divide by 1000")
    return ts


class Behavior(_Request):
    text: Text
    ts: float = Field(ge=0, allow_inf_nan=False)  # unix seconds (never milliseconds), no later than `now` + 1 day
    kind: BehaviorKind = "view"
    # The item's stable id (a product, a movie): repeats are matched by it; without one, by exact text.
    item_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    position: int | None = Field(default=None, ge=0, lt=MAX_POSITION)  # where it was shown, if it was

    @field_validator("ts")
    @classmethod
    def _seconds(cls, ts: float) -> float:
        return check_seconds(ts, "ts")


class Candidate(_Request):
    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    text: Text
    # Optional server-side score (e.g. log popularity from the recall stage) that the ranker blends in.
    prior: float | None = Field(default=None, allow_inf_nan=False, ge=-MAX_PRIOR, le=MAX_PRIOR)
    item_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)  # as on behaviours


class RankRequest(_Request):
    behaviors: list[Behavior] = Field(default_factory=list, max_length=MAX_BEHAVIORS)
    candidates: list[Candidate] = Field(min_length=1, max_length=MAX_CANDIDATES)
    top_k: int = Field(default=DEFAULT_TOP_K, ge=1, le=MAX_TOP_K)
    # The request's time (unix seconds) and the user's UTC offset: with them the ranker knows the local hour
    # and weekday and how long ago each behaviour was; without `now`, time is relative to the newest behaviour
    # and hour/weekday affinities are off (what clients before 0.5 get).
    now: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    utc_offset_min: int = Field(default=0, ge=-MAX_UTC_OFFSET_MIN, le=MAX_UTC_OFFSET_MIN)

    @field_validator("now")
    @classmethod
    def _now_seconds(cls, now: float | None) -> float | None:
        return None if now is None else check_seconds(now, "now")

    @model_validator(mode="after")
    def _consistent(self) -> RankRequest:
        ids = [c.id for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError("candidate ids must be unique")
        with_prior = sum(c.prior is not None for c in self.candidates)
        if 0 < with_prior < len(self.candidates):
            raise ValueError("give a prior for every candidate or for none")
        if self.now is not None:
            late = [i for i, b in enumerate(self.behaviors) if b.ts > self.now + FUTURE_SLACK_S]
            if late:
                raise ValueError(f"behaviors[{late[0]}].ts is after `now` (more than a day in the future)")
        for i, b in enumerate(self.behaviors):
            if (b.kind == "impression") and b.position is None:
                raise ValueError(f"behaviors[{i}]: an impression needs its position")
        check_request_chars([b.text for b in self.behaviors] + [c.text for c in self.candidates])
        return self


class RankedItem(BaseModel):
    id: str
    score: float


class RankResponse(BaseModel):
    model_version: str  # the release id `{name}-{version}`, as in /v1/encode
    items: list[RankedItem]  # best first, at most top_k


class UpdateStatusPublic(BaseModel):
    """What the model updater last did; a failed update leaves the old model serving and shows up here."""

    enabled: bool
    state: str  # disabled | idle | up_to_date | updated | failed | stale (no fresh signed offer: see below)
    last_check: str | None = None  # ISO 8601 UTC
    last_success: str | None = None
    last_error: str | None = None
    last_error_stage: str | None = None
    consecutive_failures: int = 0
    offered_version: str | None = None  # the release id the cloud last asked this device to run
    stale: bool = False  # the newest valid signed offer is older than max_metadata_age_s, or has expired
    metadata_age_s: float | None = None  # seconds since that offer was issued (None: updates disabled)
    generation: int | None = None  # its rollout generation: lower ones are refused as rollbacks
    metadata_issued: str | None = None  # ISO 8601 UTC
    metadata_expires: str | None = None


class ServingModelPublic(BaseModel):
    """What `GET /v1/model` answers: the model this node serves now (not the cloud's `ModelVersionPublic`, which
    describes a registered version: its signature, blob and registration).

    A release has one name, its release id `{name}-{version}`: `version` here, `model_version` in every
    /v1/encode, /v1/rank and /readyz answer and in `eibert_edge_model_info`, `model` in /v1/embeddings, the cloud's
    `version` and the folder a downloaded bundle lands in. Until this release `version` and `model_version` held the
    bare manifest version (`0.4.0`); that value stays readable as `manifest_version` for one release.
    """

    version: str  # the release id, `{name}-{version}`: what every /v1/encode and /v1/rank response names
    name: str  # the model line (manifest name)
    manifest_version: str = Field(deprecated=True)  # the manifest's bare version; deprecated: read `version`
    dim: int
    max_length: int
    teacher: str
    created: str
    model_sha256: str
    model_bytes: int
    loaded_at: str
    source: str  # the name of the bundle directory it was loaded from (never its absolute path on this host)
    previous_version: str | None = None  # release id of what served before the last swap (on disk for rollback)
    update: UpdateStatusPublic
