"""The idle-CPU meter that lets a shadow take copies only while the server has CPU to spare."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from modelyard.serving._cpu import IdleCpu


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _stat(proc: Path, cpus: dict[int, tuple[int, int]]) -> None:
    """Write a /proc/stat whose CPU n has (busy, idle) jiffies (idle split idle/iowait)."""
    lines = ["cpu  1 2 3 4 5 6 7 8 0 0"]
    for n, (busy, idle) in cpus.items():
        lines.append(f"cpu{n} {busy} 0 0 {idle - 1} 1 0 0 0 0 0")
    lines.append("intr 12345")
    (proc / "stat").write_text("\n".join(lines) + "\n")


def _proc(tmp_path: Path, cgroup_line: str = "0::/") -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup_line + "\n")
    return proc


def test_idle_share_of_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    proc, clock = _proc(tmp_path), Clock()
    _stat(proc, {0: (100, 100), 1: (100, 100), 2: (0, 0)})
    meter = IdleCpu(0.1, proc=proc, cgroup=tmp_path / "none", cpus={0, 1}, clock=clock)
    assert meter.fraction() == 1.0  # nothing measured yet
    # over the next period cpu0 is busy, cpu1 idle; cpu2 (not ours) is ignored
    _stat(proc, {0: (200, 100), 1: (100, 200), 2: (0, 1000)})
    clock.now += 0.0625
    assert meter.fraction() == 1.0  # within the period: the last value, files not read
    clock.now += 0.0625
    assert meter.fraction() == pytest.approx(0.5)
    _stat(proc, {0: (290, 110), 1: (190, 210)})
    clock.now += 0.125
    assert meter.fraction() == pytest.approx(0.1)


def test_a_container_quota_counts_when_its_usage_leaves_less_idle(tmp_path: Path) -> None:
    """An idle 2-CPU node, a container limited to half a CPU and using all of it: no idle."""
    proc, clock = _proc(tmp_path, "0::/kubepods/pod1"), Clock()
    cg = tmp_path / "cgroup" / "kubepods" / "pod1"
    cg.mkdir(parents=True)
    (cg / "cpu.max").write_text("50000 100000\n")
    (cg / "cpu.stat").write_text("usage_usec 1000000\nuser_usec 1\n")
    _stat(proc, {0: (0, 100), 1: (0, 100)})
    meter = IdleCpu(0.1, proc=proc, cgroup=tmp_path / "cgroup", cpus={0, 1}, clock=clock)
    assert meter.quota is not None
    assert meter.quota[0] == 0.5
    meter.fraction()
    _stat(proc, {0: (5, 195), 1: (5, 195)})  # the node: 95 % idle
    (cg / "cpu.stat").write_text("usage_usec 1062500\n")  # 62.5 ms in 125 ms: the whole quota
    clock.now += 0.125
    assert meter.fraction() == pytest.approx(0.0)
    (cg / "cpu.stat").write_text("usage_usec 1093750\n")  # a quarter of a CPU: half the quota
    _stat(proc, {0: (10, 290), 1: (10, 290)})
    clock.now += 0.125
    assert meter.fraction() == pytest.approx(0.5)


def test_a_cgroup_v1_quota_and_no_quota(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "4:memory:/x\n3:cpu,cpuacct:/job")
    cg = tmp_path / "cgroup" / "cpu,cpuacct" / "job"
    cg.mkdir(parents=True)
    (cg / "cpu.cfs_quota_us").write_text("150000\n")
    (cg / "cpu.cfs_period_us").write_text("100000\n")
    (cg / "cpuacct.usage").write_text("0\n")
    meter = IdleCpu(proc=proc, cgroup=tmp_path / "cgroup", cpus={0})
    assert meter.quota is not None
    assert meter.quota[0] == 1.5
    (cg / "cpu.cfs_quota_us").write_text("-1\n")  # no limit
    assert IdleCpu(proc=proc, cgroup=tmp_path / "cgroup", cpus={0}).quota is None


def test_what_cannot_be_read_counts_as_idle(tmp_path: Path) -> None:
    clock = Clock()
    meter = IdleCpu(proc=tmp_path / "nothing", cgroup=tmp_path / "nothing", clock=clock)
    for _ in range(3):
        assert meter.fraction() == 1.0
        clock.now += 1.0


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs Linux /proc")
def test_this_machine_busy_on_every_cpu_has_little_idle() -> None:
    meter = IdleCpu(0.2)
    cpus = len(os.sched_getaffinity(0))
    ctx = multiprocessing.get_context("spawn")
    spinners = [ctx.Process(target=_spin, args=(6.0,), daemon=True) for _ in range(cpus)]
    for p in spinners:
        p.start()
    try:
        time.sleep(1.0)  # the spinners are running
        meter.fraction()
        time.sleep(0.5)
        busy = meter.fraction()
    finally:
        for p in spinners:
            p.kill()
            p.join(10)
    assert 0.0 <= busy < 0.25, busy


def test_niced_time_counts_as_idle(tmp_path: Path) -> None:
    """Stable takes 30 % of the CPU and a shadow's copies (nice 10, SCHED_IDLE: the "nice"
    column) 35 %: 70 % is there for users, so the shadow's own copies do not close its gate
    (counted busy, they would open and close it every period)."""
    proc, clock = _proc(tmp_path), Clock()
    (proc / "stat").write_text("cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 100 100 0 100 0 0 0 0 0 0\n")
    meter = IdleCpu(0.1, proc=proc, cgroup=tmp_path / "none", cpus={0}, clock=clock)
    meter.fraction()
    (proc / "stat").write_text("cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 130 135 0 135 0 0 0 0 0 0\n")
    clock.now += 0.125
    assert meter.fraction() == pytest.approx(0.7)


def test_a_container_without_its_own_cgroup_namespace(tmp_path: Path) -> None:
    """Docker on a cgroup v1 host: /proc/self/cgroup names the host's path, the container
    sees its own cgroup at the mount's root; lxcfs numbers its CPUs from 0 (the whole
    machine's line counts then)."""
    proc = _proc(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc")
    cg = tmp_path / "cgroup" / "cpu,cpuacct"
    cg.mkdir(parents=True)
    (cg / "cpu.cfs_quota_us").write_text("50000\n")
    (cg / "cpu.cfs_period_us").write_text("100000\n")
    (cg / "cpuacct.usage").write_text("0\n")
    clock = Clock()
    (proc / "stat").write_text("cpu  0 0 0 100 0 0 0 0 0 0\ncpu0 0 0 0 100 0 0 0 0 0 0\n")
    meter = IdleCpu(0.1, proc=proc, cgroup=tmp_path / "cgroup", cpus={12, 13}, clock=clock)
    assert meter.quota is not None
    assert meter.quota[0] == 0.5
    meter.fraction()
    # no line for CPUs 12 and 13: the machine's (20 % busy); the quota unused
    (proc / "stat").write_text("cpu  20 0 0 180 0 0 0 0 0 0\ncpu0 20 0 0 180 0 0 0 0 0 0\n")
    clock.now += 0.125
    assert meter.fraction() == pytest.approx(0.8)
    (cg / "cpuacct.usage").write_text("31250000\n")  # 31.25 ms in 125 ms: half the quota
    (proc / "stat").write_text("cpu  40 0 0 260 0 0 0 0 0 0\ncpu0 40 0 0 260 0 0 0 0 0 0\n")
    clock.now += 0.125
    assert meter.fraction() == pytest.approx(0.5)
