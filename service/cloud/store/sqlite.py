"""SQLite store: the embedded default (`sqlite:///path`). One connection, owned by one worker thread.

sqlite3 is blocking, so every call runs on a single-thread executor: that serialises access (SQLite allows one
writer anyway), keeps the connection on the thread that made it, and keeps the event loop free. WAL with
synchronous=FULL makes each committed transaction durable before the call returns; multi-row changes run in
one `BEGIN IMMEDIATE` transaction, so a crash leaves all or nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from service.cloud.errors import StoreError
from service.cloud.rollout import RolloutState
from service.cloud.store.base import Store, parse_rollout
from service.cloud.store.records import EnrolmentTokenRecord, EnrolOutcome, IngestOutcome, PreparedReport, VersionRecord
from service.cloud.store.sqlite_credentials import enrol_tx, list_tokens
from service.cloud.store.sqlite_schema import N_INDEX, SCHEMA, migrate

T = TypeVar("T")

_VALID_TOKEN = "(token_expires_at IS NULL OR token_expires_at > ?)"


def sqlite_path(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` (the SQLAlchemy convention)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise StoreError(f"not a sqlite URL: {url!r} (expected sqlite:///path/to/file.db)")
    return Path(url[len(prefix) :])


class SqliteStore(Store):
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    # plumbing --------------------------------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, fn)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        assert self._conn is not None
        return fn(self._conn)

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        migrate(conn)
        self._conn = conn

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._connect)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: cannot open {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._conn is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._executor = None

    async def ping(self) -> None:
        await self._run(lambda c: c.execute("SELECT 1").fetchone())

    async def durability(self) -> str:
        return "sqlite WAL, synchronous=FULL: committed before acknowledged"

    async def _run_tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` in one BEGIN IMMEDIATE transaction on the store's thread: all of it commits, or none of it."""
        return await self._run(lambda c: self._tx(c, lambda: fn(c)))

    @staticmethod
    def _tx(conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = fn()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return out

    # devices ---------------------------------------------------------------------------------------------
    async def create_device(self, device_id: str, token_hash: str) -> bool:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

        def run(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT OR IGNORE INTO devices (device_id, token_hash, created_at) VALUES (?, ?, ?)",
                (device_id, token_hash, now),
            )
            return cur.rowcount == 1

        return await self._run(run)

    async def device_for_token(self, token_hash: str) -> str | None:
        now = time.time()
        row = await self._run(
            lambda c: c.execute(
                f"SELECT device_id FROM devices WHERE token_hash = ? AND {_VALID_TOKEN}", (token_hash, now)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def create_enrolment_token(self, record: EnrolmentTokenRecord) -> None:
        await self._run(
            lambda c: c.execute(
                "INSERT INTO enrolment_tokens (token_hash, max_devices, used, expires_at, label)"
                " VALUES (?, ?, 0, ?, ?)",
                (record.token_hash, record.max_devices, record.expires_at, record.label),
            )
        )

    async def list_enrolment_tokens(self) -> list[EnrolmentTokenRecord]:
        return await self._run(list_tokens)

    async def revoke_enrolment_token(self, token_hash: str) -> bool:
        cur = await self._run(
            lambda c: c.execute("UPDATE enrolment_tokens SET revoked = 1 WHERE token_hash = ?", (token_hash,))
        )
        return cur.rowcount == 1

    async def renew_device_token(self, device_id: str, old_hash: str, new_hash: str, *, expires_at: float) -> bool:
        now = time.time()
        cur = await self._run(
            lambda c: c.execute(
                "UPDATE devices SET token_hash = ?, token_expires_at = ?"
                f" WHERE device_id = ? AND token_hash = ? AND {_VALID_TOKEN}",
                (new_hash, expires_at, device_id, old_hash, now),
            )
        )
        return cur.rowcount == 1

    async def revoke_device(self, device_id: str) -> bool:
        cur = await self._run(
            lambda c: c.execute(
                "UPDATE devices SET token_hash = ?, token_expires_at = 0 WHERE device_id = ?",
                (f"revoked:{device_id}", device_id),
            )
        )
        return cur.rowcount == 1

    async def enrol_device(
        self,
        device_id: str,
        device_token_hash: str,
        enrolment_token_hash: str,
        *,
        now: float,
        token_expires_at: float | None = None,
    ) -> EnrolOutcome:
        return await self._run_tx(
            lambda c: enrol_tx(c, device_id, device_token_hash, enrolment_token_hash, now, token_expires_at)
        )

    async def hit_rate(self, key: str, *, limit: int, window_s: int, now: float) -> float | None:
        start = now - now % window_s

        def tx(c: sqlite3.Connection) -> int:
            c.execute("DELETE FROM rate_windows WHERE window_start < ?", (start,))  # bounded: old windows go
            row = c.execute(
                "INSERT INTO rate_windows (key, window_start, count) VALUES (?, ?, 1)"
                " ON CONFLICT (key) DO UPDATE SET count = count + 1 RETURNING count",
                (key, start),
            ).fetchall()
            return int(row[0][0])

        count = await self._run_tx(tx)
        return None if count <= limit else start + window_s - now

    async def claim(self, owner: str) -> str:
        def tx(c: sqlite3.Connection) -> str:
            c.execute("INSERT OR IGNORE INTO owner (id, owner) VALUES (1, ?)", (owner,))
            return str(c.execute("SELECT owner FROM owner WHERE id = 1").fetchone()[0])

        return await self._run_tx(tx)

    async def add_rotation(self, version: int, statement: str) -> bool:
        cur = await self._run(
            lambda c: c.execute(
                "INSERT OR IGNORE INTO rotations (version, statement) VALUES (?, ?)", (version, statement)
            )
        )
        return cur.rowcount == 1

    async def rotations(self) -> list[str]:
        rows = await self._run(lambda c: c.execute("SELECT statement FROM rotations ORDER BY version").fetchall())
        return [str(r[0]) for r in rows]

    async def clock_offset(self) -> int:
        row = await self._run(lambda c: c.execute("SELECT offset_days FROM clock WHERE id = 1").fetchone())
        return 0 if row is None else int(row[0])

    async def advance_clock(self, days: int) -> int:
        if days < 1:
            raise StoreError("the cloud clock only moves forward")

        def run(c: sqlite3.Connection) -> int:
            row = c.execute(
                "INSERT INTO clock (id, offset_days) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET offset_days = offset_days + excluded.offset_days"
                " RETURNING offset_days",
                (days,),
            ).fetchall()
            return int(row[0][0])

        return await self._run(run)

    async def _device_row(self, device_id: str, token_hash: str) -> tuple[str | None, str | None, str | None]:
        now = time.time()
        row = await self._run(
            lambda c: c.execute(
                "SELECT (SELECT token_hash FROM devices WHERE device_id = ?),"
                f" (SELECT device_id FROM devices WHERE token_hash = ? AND {_VALID_TOKEN}),"
                " (SELECT state FROM rollout WHERE id = 1)",
                (device_id, token_hash, now),
            ).fetchone()
        )
        return row[0], row[1], row[2]

    # versions --------------------------------------------------------------------------------------------
    async def put_version(self, record: VersionRecord) -> tuple[VersionRecord, bool]:
        def tx(c: sqlite3.Connection) -> tuple[VersionRecord, bool]:
            row = c.execute("SELECT record FROM versions WHERE version = ?", (record.version,)).fetchone()
            if row is not None:
                return VersionRecord.model_validate_json(row[0]), False
            c.execute(
                "INSERT INTO versions (version, record) VALUES (?, ?)", (record.version, record.model_dump_json())
            )
            return record, True

        return await self._run_tx(tx)

    async def get_version(self, version: str) -> VersionRecord | None:
        row = await self._run(
            lambda c: c.execute("SELECT record FROM versions WHERE version = ?", (version,)).fetchone()
        )
        return None if row is None else VersionRecord.model_validate_json(row[0])

    async def list_versions(self, offset: int, limit: int) -> tuple[list[VersionRecord], int]:
        def run(c: sqlite3.Connection) -> tuple[list[VersionRecord], int]:
            total = c.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
            rows = c.execute("SELECT record FROM versions ORDER BY seq LIMIT ? OFFSET ?", (limit, offset)).fetchall()
            return [VersionRecord.model_validate_json(r[0]) for r in rows], int(total)

        return await self._run(run)

    # rollout ---------------------------------------------------------------------------------------------
    async def get_rollout(self) -> RolloutState:
        row = await self._run(lambda c: c.execute("SELECT state FROM rollout WHERE id = 1").fetchone())
        return parse_rollout(None if row is None else row[0])

    async def cas_rollout(self, expected_generation: int, state: RolloutState) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            row = c.execute("SELECT generation FROM rollout WHERE id = 1").fetchone()
            current = 0 if row is None else int(row[0])
            if current != expected_generation:
                return False
            c.execute(
                "INSERT INTO rollout (id, generation, state) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, state = excluded.state",
                (state.generation, state.model_dump_json()),
            )
            return True

        return await self._run_tx(tx)

    # telemetry -------------------------------------------------------------------------------------------
    async def _ingest(
        self, device_id: str, reports: Sequence[PreparedReport], budget_micro: int, ttl_days: int, server_day: str
    ) -> list[IngestOutcome]:
        cutoff = (dt.date.fromisoformat(server_day) - dt.timedelta(days=ttl_days)).isoformat()

        def tx(c: sqlite3.Connection) -> list[IngestOutcome]:
            # first expire what can no longer matter: ids and ledgers of server days before the retention
            c.execute("DELETE FROM seen_reports WHERE device_id = ? AND day < ?", (device_id, cutoff))
            c.execute("DELETE FROM ledger WHERE device_id = ? AND day < ?", (device_id, cutoff))
            c.execute("DELETE FROM label_ledger WHERE device_id = ? AND day < ?", (device_id, cutoff))
            out: list[IngestOutcome] = []
            labelled: dict[str, int] = {}
            row = c.execute(
                "SELECT spent_micro FROM ledger WHERE device_id = ? AND day = ?", (device_id, server_day)
            ).fetchone()
            spent = 0 if row is None else int(row[0])
            for r in reports:
                # the primary key (device_id, report_id) leaves the label out: unique whatever the day
                cur = c.execute(
                    "INSERT OR IGNORE INTO seen_reports (device_id, report_id, day) VALUES (?, ?, ?)",
                    (device_id, r.report_id, server_day),
                )
                if cur.rowcount == 0:
                    out.append("duplicate")
                    continue
                if c.execute(
                    "SELECT 1 FROM group_devices WHERE grp = ? AND device_id = ?", (r.group.label(), device_id)
                ).fetchone():
                    c.execute(
                        "DELETE FROM seen_reports WHERE device_id = ? AND report_id = ?", (device_id, r.report_id)
                    )
                    out.append("repeat")
                    continue
                if r.day not in labelled:
                    row = c.execute(
                        "SELECT spent_micro FROM label_ledger WHERE device_id = ? AND day = ?", (device_id, r.day)
                    ).fetchone()
                    labelled[r.day] = 0 if row is None else int(row[0])
                if spent + r.cost_micro > budget_micro or labelled[r.day] + r.cost_micro > budget_micro:
                    # not counted, so not remembered: a retry is judged again (and refused again)
                    c.execute(
                        "DELETE FROM seen_reports WHERE device_id = ? AND report_id = ?", (device_id, r.report_id)
                    )
                    out.append("over_budget")
                    continue
                spent += r.cost_micro
                labelled[r.day] += r.cost_micro
                cell = r.cell_label()
                rows = [(cell, N_INDEX)] + [(cell, i) for i in r.support]
                c.executemany(
                    "INSERT INTO cells (cell, idx, count) VALUES (?, ?, 1)"
                    " ON CONFLICT (cell, idx) DO UPDATE SET count = count + 1",
                    rows,
                )
                c.execute(
                    "INSERT OR IGNORE INTO group_devices (grp, device_id) VALUES (?, ?)",
                    (r.group.label(), device_id),
                )
                out.append("accepted")
            c.execute(
                "INSERT INTO ledger (device_id, day, spent_micro) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id, day) DO UPDATE SET spent_micro = excluded.spent_micro",
                (device_id, server_day, spent),
            )
            c.executemany(
                "INSERT INTO label_ledger (device_id, day, spent_micro) VALUES (?, ?, ?)"
                " ON CONFLICT (device_id, day) DO UPDATE SET spent_micro = excluded.spent_micro",
                [(device_id, day, v) for day, v in labelled.items()],
            )
            return out

        return await self._run_tx(tx)

    async def record_offer(self, device_id: str, version: str) -> None:
        await self._run(
            lambda c: c.execute("INSERT OR IGNORE INTO offers (device_id, version) VALUES (?, ?)", (device_id, version))
        )

    async def offered_versions(self, device_id: str) -> frozenset[str]:
        rows = await self._run(
            lambda c: c.execute("SELECT version FROM offers WHERE device_id = ?", (device_id,)).fetchall()
        )
        return frozenset(str(r[0]) for r in rows)

    async def spent(self, device_id: str, day: str) -> int:
        row = await self._run(
            lambda c: c.execute(
                "SELECT spent_micro FROM ledger WHERE device_id = ? AND day = ?", (device_id, day)
            ).fetchone()
        )
        return 0 if row is None else int(row[0])

    async def put_release(self, group_label: str, body: str) -> str:
        def tx(c: sqlite3.Connection) -> str:
            c.execute("INSERT OR IGNORE INTO releases (grp, body) VALUES (?, ?)", (group_label, body))
            return str(c.execute("SELECT body FROM releases WHERE grp = ?", (group_label,)).fetchone()[0])

        return await self._run_tx(tx)

    async def releases(self, group_labels: Sequence[str]) -> dict[str, str]:
        labels = list(dict.fromkeys(group_labels))

        def run(c: sqlite3.Connection) -> list[tuple[str, str]]:
            rows: list[tuple[str, str]] = []
            for i in range(0, len(labels), 500):  # well under SQLite's bound on parameters per statement
                chunk = labels[i : i + 500]
                marks = ",".join("?" * len(chunk))
                rows += c.execute(f"SELECT grp, body FROM releases WHERE grp IN ({marks})", chunk).fetchall()
            return rows

        return {str(g): str(b) for g, b in await self._run(run)}

    async def _fleet_rows(self) -> tuple[dict[str, tuple[int, dict[int, int]]], dict[str, int]]:
        def run(c: sqlite3.Connection) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]]]:
            cells = c.execute("SELECT cell, idx, count FROM cells ORDER BY cell, idx").fetchall()
            devices = c.execute("SELECT grp, COUNT(*) FROM group_devices GROUP BY grp").fetchall()
            return cells, devices

        cell_rows, device_rows = await self._run(run)
        cells: dict[str, tuple[int, dict[int, int]]] = {}
        for label, idx, count in cell_rows:
            n, counts = cells.get(label, (0, {}))
            if idx == N_INDEX:
                n = int(count)
            else:
                counts[int(idx)] = int(count)
            cells[label] = (n, counts)
        return cells, {str(g): int(n) for g, n in device_rows}

    # blobs -----------------------------------------------------------------------------------------------
    async def _put_blob(self, sha256: str, data: bytes) -> None:
        await self._run(lambda c: c.execute("INSERT OR IGNORE INTO blobs (sha256, data) VALUES (?, ?)", (sha256, data)))

    async def _get_blob(self, sha256: str) -> bytes | None:
        row = await self._run(lambda c: c.execute("SELECT data FROM blobs WHERE sha256 = ?", (sha256,)).fetchone())
        return None if row is None else bytes(row[0])
