"""The SQLite store's enrolment steps (`sqlite.py`), as functions of a connection the store runs in its thread:
the enrolment check-and-create transaction and the operator's token listing."""

from __future__ import annotations

import datetime as dt
import sqlite3

from service.cloud.store.records import EnrolmentTokenRecord, EnrolOutcome


def enrol_tx(
    c: sqlite3.Connection,
    device_id: str,
    device_token_hash: str,
    enrolment_token_hash: str,
    now: float,
    token_expires_at: float | None,
) -> EnrolOutcome:
    """Inside one transaction: check the enrolment token, create the device, count it against the quota."""
    created = dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds")
    row = c.execute(
        "SELECT max_devices, used, expires_at, revoked FROM enrolment_tokens WHERE token_hash = ?",
        (enrolment_token_hash,),
    ).fetchone()
    if row is None:
        return EnrolOutcome.UNKNOWN_TOKEN
    max_devices, used, expires_at = int(row[0]), int(row[1]), float(row[2])
    if row[3]:
        return EnrolOutcome.REVOKED
    if now >= expires_at:
        return EnrolOutcome.EXPIRED
    if used >= max_devices:
        return EnrolOutcome.QUOTA_USED
    cur = c.execute(
        "INSERT OR IGNORE INTO devices (device_id, token_hash, created_at, token_expires_at) VALUES (?, ?, ?, ?)",
        (device_id, device_token_hash, created, token_expires_at),
    )
    if cur.rowcount == 0:
        return EnrolOutcome.DEVICE_EXISTS
    c.execute("UPDATE enrolment_tokens SET used = used + 1 WHERE token_hash = ?", (enrolment_token_hash,))
    return EnrolOutcome.ENROLLED


def list_tokens(c: sqlite3.Connection) -> list[EnrolmentTokenRecord]:
    rows = c.execute(
        "SELECT token_hash, max_devices, expires_at, label, used, revoked FROM enrolment_tokens ORDER BY rowid"
    ).fetchall()
    return [
        EnrolmentTokenRecord(str(h), int(m), float(e), str(label), used=int(u), revoked=bool(r))
        for h, m, e, label, u, r in rows
    ]
