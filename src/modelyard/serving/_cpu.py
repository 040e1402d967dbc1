"""The share of its CPUs a server's machine, or its container, left idle lately.

A shadow takes copies of the served version's batches only while enough CPU is idle (see
``Batcher.mirror``): even at the lowest CPU priority (``SCHED_IDLE``) its work costs the served
version through the caches and memory bandwidth they share. Measured on a saturated 2-core
machine (``benchmarks/delivery.py``), where 25-35 % of the CPU stays idle because the load
generator and the server wait on each other: a shadow copying whatever its idle workers could
take (26-40 % of the requests) cost the served version 8-9 % of its throughput; copying only
while a quarter of the CPU was idle, 5 % of the requests and +0.3-0.8 ms p99; while 40 % was
idle (the default), under 1 % and nothing measurable. Off saturation it copies every batch.

Sources, read at most once per ``period_s`` (two small files; no thread):

- the CPUs this process may run on (``sched_getaffinity``) and their idle, iowait and niced
  time in ``/proc/stat`` (niced: what the shadow itself and the request-log processes take);
- where the process's cgroup has a CPU quota (cgroup v2 ``cpu.max``; v1 ``cpu.cfs_quota_us``),
  the share of the quota its usage left (a container throttled at its limit on an idle node).

The smaller idle share wins. What cannot be read counts as idle: the meter never stops a shadow
on a system it cannot measure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["IdleCpu"]


class IdleCpu:
    """The idle share (0-1) of this process's CPUs over the latest period.

    Args:
        period_s: how often the counters are read again (a shorter call returns the last share).
        proc: the procfs mount (a seam for tests: a folder with ``stat`` and
            ``self/cgroup``).
        cgroup: the cgroup filesystem mount.
        cpus: the CPU numbers to count (default: this process's affinity).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        period_s: float = 0.1,
        *,
        proc: Path = Path("/proc"),
        cgroup: Path = Path("/sys/fs/cgroup"),
        cpus: set[int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.period_s = period_s
        self.proc = proc
        self.clock = clock
        if cpus is None:
            cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()
        self.cpus = {f"cpu{c}" for c in cpus}
        self.quota = _quota(proc, cgroup)  # (cores, usage file, usage unit in seconds) or None
        self._at = -float("inf")
        self._ticks: tuple[int, int] | None = None  # idle, total jiffies of our CPUs
        self._usage: float | None = None  # the cgroup's CPU seconds
        self._idle = 1.0

    def fraction(self) -> float:
        """The idle share of the last complete period (1.0 before the first one)."""
        now = self.clock()
        elapsed = now - self._at
        if elapsed < self.period_s:
            return self._idle
        idle = 1.0
        ticks = self._read_ticks()
        if ticks is not None and self._ticks is not None:
            total = ticks[1] - self._ticks[1]
            if total > 0:
                idle = min(idle, (ticks[0] - self._ticks[0]) / total)
        self._ticks = ticks
        if self.quota is not None:
            usage = _read_usage(self.quota[1], self.quota[2])
            if usage is not None and self._usage is not None and elapsed < 10 * self.period_s:
                used = (usage - self._usage) / elapsed  # cores
                idle = min(idle, 1.0 - used / self.quota[0])
            self._usage = usage
        self._at = now
        self._idle = min(max(idle, 0.0), 1.0)
        return self._idle

    def _read_ticks(self) -> tuple[int, int] | None:
        try:
            text = (self.proc / "stat").read_text()
        except OSError:
            return None
        ours = all_cpus = (0, 0)
        for line in text.splitlines():
            name, _, rest = line.partition(" ")
            if not name.startswith("cpu"):
                continue
            v = [int(x) for x in rest.split()[:8]]  # user nice system idle iowait irq softirq steal
            if len(v) < 5:
                continue
            # niced time is idle for this purpose: it is what a shadow (nice 10, SCHED_IDLE)
            # and the request-log processes take; counted busy, a shadow's own copies would
            # close its gate, and it would open and close every period
            ticks = (v[1] + v[3] + v[4], sum(v))
            if name == "cpu":
                all_cpus = ticks
            elif name in self.cpus:
                ours = (ours[0] + ticks[0], ours[1] + ticks[1])
        # no line for our CPUs (lxcfs numbers a container's CPUs from 0): the whole machine
        idle, total = ours if ours[1] else all_cpus
        return (idle, total) if total else None


def _quota(proc: Path, cgroup: Path) -> tuple[float, Path, float] | None:
    """The cgroup's CPU quota in cores, its usage counter and the counter's unit; ``None``
    without a quota (or a cgroup we cannot read)."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        # a container without its own cgroup namespace sees its cgroup at the mount's root
        # while /proc/self/cgroup names the host's path
        if controllers == "":  # cgroup v2
            for folder in dict.fromkeys([cgroup / rel, cgroup]):
                try:
                    limit, period = (folder / "cpu.max").read_text().split()[:2]
                except (OSError, ValueError):
                    continue
                if limit != "max" and float(period) > 0:
                    return float(limit) / float(period), folder / "cpu.stat", 1e-6
                return None
        elif "cpu" in controllers.split(","):  # cgroup v1
            for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):
                for sub in dict.fromkeys([rel, ""]):
                    folder = cgroup / mount / sub
                    try:
                        limit_us = int((folder / "cpu.cfs_quota_us").read_text())
                        period_us = int((folder / "cpu.cfs_period_us").read_text())
                    except (OSError, ValueError):
                        continue
                    if limit_us <= 0 or period_us <= 0:
                        return None
                    usage = folder / "cpuacct.usage"
                    if not usage.exists():  # cpu and cpuacct mounted apart
                        usage = cgroup / "cpuacct" / sub / "cpuacct.usage"
                    return limit_us / period_us, usage, 1e-9
    return None


def _read_usage(path: Path, unit: float) -> float | None:
    """CPU seconds from ``cpu.stat`` (``usage_usec``) or ``cpuacct.usage`` (nanoseconds)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    if path.name == "cpu.stat":
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) * unit
        return None
    try:
        return int(text) * unit
    except ValueError:
        return None
