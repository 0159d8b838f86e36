"""The benchmarks' server-CPU meter: a real process's CPU time (Linux /proc), split per request.

CPU time, unlike latency, does not count the time a server waits for a core, so it is the robust figure on a
shared machine; measured in short rounds that take turns, a drift in the machine's load hits every figure alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable

WARMUP = 10  # calls of each kind before anything is counted
CPU_ROUNDS = 20  # short rounds taking turns: drift in the machine's load is shared by every figure


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()  # the command name may hold spaces; it ends at the last ")"
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def cpu_per_request(pid: int, calls: dict[str, tuple[Callable[[], None], int]]) -> dict[str, float]:
    """Server CPU ms per request for each named call (call, total requests), measured in CPU_ROUNDS rounds
    that take turns, so that drift in the machine's load is shared by every figure."""
    spent = dict.fromkeys(calls, 0.0)
    for call, _ in calls.values():
        for _ in range(WARMUP):
            call()
    for _ in range(CPU_ROUNDS):
        for name, (call, n) in calls.items():
            before = process_cpu_s(pid)
            for _ in range(n // CPU_ROUNDS):
                call()
            spent[name] += process_cpu_s(pid) - before
    return {name: 1000.0 * spent[name] / (n // CPU_ROUNDS * CPU_ROUNDS) for name, (_, n) in calls.items()}
