"""Processes seen through /proc: their descendants, memory, and CPU pinning.

psutil is not a dependency; the few facts the benchmark needs are one file read away.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.pgcluster import children

KIB = 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Memory:
    """Resident set now (VmRSS) and its peak (VmHWM), in MiB, summed over a process tree."""

    rss_mib: float
    peak_mib: float


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, frontier = [pid], [pid]
    while frontier:
        frontier = [child for parent in frontier for child in children(parent)]
        pids.extend(frontier)
    return pids


def memory(pid: int) -> Memory:
    """VmRSS and VmHWM of ``pid`` and its descendants (0 for a process already gone)."""
    rss = peak = 0
    for member in tree(pid):
        status = _status(member)
        rss += status.get("VmRSS", 0)
        peak += status.get("VmHWM", 0)
    return Memory(rss / KIB, peak / KIB)


def cpu_seconds(*roots: int) -> float:
    """User + system CPU time consumed so far by the given processes and their descendants.

    Sampled before and after a measurement, it says how much of its core the server side
    really got: on a shared machine a neighbour's burst shows up here, not just as fewer
    requests per second.
    """
    ticks = 0
    for member in {pid for root in roots for pid in tree(root)}:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / CLOCK_TICKS


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of ``pid`` and of its current descendants to ``cpu``.

    Processes forked later inherit the mask, so pinning a postmaster pins its future backends.
    """
    for member in tree(pid):
        subprocess.run(
            ["taskset", "-a", "-p", "-c", str(cpu), str(member)],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def usable_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def _status(pid: int) -> dict[str, int]:
    """The ``kB`` fields of /proc/<pid>/status."""
    fields: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[key] = int(parts[0])
    return fields
