"""Locust's CSV statistics -> the `load` section of BENCHMARKS.md.

Locust writes `<prefix>_stats.csv` (one row per request name plus an "Aggregated" row) and
`<prefix>_failures.csv` (method, name, error, occurrences). This module reads both and renders one markdown
table per run; it never imports locust (which monkey-patches the process it is imported into).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

AGGREGATED = "Aggregated"


@dataclass(frozen=True)
class EndpointStats:
    method: str  # "" for the aggregated row
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float | None  # None when locust has no samples ("N/A")
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class FailureRow:
    method: str
    name: str
    error: str
    occurrences: int


@dataclass
class LoadRun:
    target: str  # "edge" or "cloud"
    user_class: str
    users: int
    seconds: int
    stats: list[EndpointStats]
    failures: list[FailureRow] = field(default_factory=list)
    exit_code: int = 0

    @property
    def total(self) -> EndpointStats:
        for s in self.stats:
            if s.name == AGGREGATED:
                return s
        raise ValueError(f"{self.target}: locust stats have no {AGGREGATED} row")

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 or self.total.failures > 0 or self.total.requests == 0


def _ms(value: str) -> float | None:
    value = value.strip()
    return None if value in ("", "N/A") else float(value)


def read_stats(path: Path) -> list[EndpointStats]:
    with Path(path).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "Request Count" not in rows[0]:
        raise ValueError(f"{path}: not a locust stats CSV")
    return [
        EndpointStats(
            method=r["Type"].strip(),
            name=r["Name"].strip(),
            requests=int(r["Request Count"]),
            failures=int(r["Failure Count"]),
            rps=float(r["Requests/s"]),
            p50_ms=_ms(r["50%"]),
            p95_ms=_ms(r["95%"]),
            p99_ms=_ms(r["99%"]),
        )
        for r in rows
    ]


def read_failures(path: Path) -> list[FailureRow]:
    if not Path(path).exists():
        return []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return [FailureRow(r["Method"], r["Name"], r["Error"], int(r["Occurrences"])) for r in csv.DictReader(fh)]


def distinct_warnings(log_text: str, source: str, limit: int = 5) -> list[str]:
    """WARNING/ERROR lines of a server log, timestamps and temp paths masked, each distinct message once."""
    out: list[str] = []
    for line in log_text.splitlines():
        m = re.search(r"\b(WARNING|ERROR|CRITICAL)\b\s+(\S+):\s*(.*)", line)
        if not m or "dev mode:" in m.group(3):  # the dev cloud's key notices are expected
            continue
        msg = re.sub(r"/tmp/\S+", "<tmp>", m.group(3)).strip()
        entry = f"{source}: {m.group(1)} `{m.group(2)}`: {msg}"
        if entry not in out:
            out.append(entry)
    return out[:limit]


def _fmt(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms:,.0f}"


def run_table(run: LoadRun) -> str:
    lines = [
        "| endpoint | requests | requests/s | p50 ms | p95 ms | p99 ms | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    body = sorted((s for s in run.stats if s.name != AGGREGATED), key=lambda s: (s.name, s.method))
    for s in [*body, run.total]:
        label = "**all**" if s.name == AGGREGATED else f"`{s.method} {s.name}`"
        lines.append(
            f"| {label} | {s.requests:,} | {s.rps:,.1f} | {_fmt(s.p50_ms)} | {_fmt(s.p95_ms)} | {_fmt(s.p99_ms)}"
            f" | {s.failures:,} |"
        )
    return "\n".join(lines)


def render_section(
    runs: list[LoadRun], *, command: str, when: str, machine: str, setup: str, server_warnings: list[str] = ()
) -> str:
    """The markdown body of the `load` section (write it with `service.devstack.bench_file.write_section`)."""
    parts = [
        "## Load test: locust against a real cloud and edge node",
        "",
        f"`{command}` on {when}; {machine}.",
        "",
        setup.strip(),
    ]
    for run in runs:
        parts += [
            "",
            f"### {run.target}: `{run.user_class}`, {run.users} users, {run.seconds} s",
            "",
            run_table(run),
        ]
        if run.failures:
            parts += ["", "Failures:", ""]
            parts += [f"- `{f.method} {f.name}` x{f.occurrences}: {f.error}" for f in run.failures]
    if server_warnings:
        parts += ["", "Warnings the servers logged during the run (distinct messages, run-specific parts masked):", ""]
        parts += [f"- {w}" for w in server_warnings]
    total_failures = sum(r.total.failures for r in runs)
    verdict = "no request failed" if not any(r.failed for r in runs) else f"{total_failures} requests failed"
    parts += ["", f"Result: {verdict}. Latencies are locust's (client-side, ms, rounded as locust buckets them)."]
    return "\n".join(parts) + "\n"
