"""The SQLite store's schema (`sqlite.py`): its tables, and the columns added to files made before them."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    token_expires_at REAL);
-- token_expires_at: unix seconds (NULL: a token issued before tokens expired); a revoked device's token_hash is
-- 'revoked:<device id>', which no sha256 equals
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL UNIQUE, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollout (
    id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen_reports (
    device_id TEXT NOT NULL, report_id TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (device_id, report_id));
-- seen_reports.day is the server day the id was accepted on (never the report's label)
CREATE TABLE IF NOT EXISTS ledger (
    device_id TEXT NOT NULL, day TEXT NOT NULL, spent_micro INTEGER NOT NULL, PRIMARY KEY (device_id, day));
CREATE TABLE IF NOT EXISTS label_ledger (
    device_id TEXT NOT NULL, day TEXT NOT NULL, spent_micro INTEGER NOT NULL, PRIMARY KEY (device_id, day));
CREATE TABLE IF NOT EXISTS cells (
    cell TEXT NOT NULL, idx INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (cell, idx));
CREATE TABLE IF NOT EXISTS group_devices (
    grp TEXT NOT NULL, device_id TEXT NOT NULL, PRIMARY KEY (grp, device_id));
CREATE TABLE IF NOT EXISTS enrolment_tokens (
    token_hash TEXT PRIMARY KEY, max_devices INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL, label TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS rate_windows (
    key TEXT PRIMARY KEY, window_start REAL NOT NULL, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 1), offset_days INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS releases (grp TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rotations (version INTEGER PRIMARY KEY, statement TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS owner (id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offers (device_id TEXT NOT NULL, version TEXT NOT NULL, PRIMARY KEY (device_id, version));
"""
N_INDEX = -1  # cells row holding the number of reports of a cell
# columns added after a table was first created: (table, column, declaration), added to older files at open
MIGRATIONS = (
    ("devices", "token_expires_at", "REAL"),
    ("enrolment_tokens", "revoked", "INTEGER NOT NULL DEFAULT 0"),
)


def migrate(conn: sqlite3.Connection) -> None:
    """Add the MIGRATIONS columns a file made before them lacks (SQLite has no ADD COLUMN IF NOT EXISTS)."""
    for table, column, decl in MIGRATIONS:
        if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
