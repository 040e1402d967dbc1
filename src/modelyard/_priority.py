"""Lowering CPU priority, so that background work runs only on CPU the server leaves idle.

Linux ``SCHED_IDLE`` (a runnable task at normal priority preempts it at once), and a nice value
(what is left where ``SCHED_IDLE`` does not exist). Linux applies both to one thread, so a
process is lowered thread by thread; threads started later inherit the priority of the thread
that starts them. Only ever lowered: an unprivileged process cannot raise its priority back.
Best effort: a thread that exits meanwhile, or a system without ``/proc``, is not an error.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["lower_process", "lower_thread"]


def lower_thread(tid: int, nice: int) -> None:
    """Run thread ``tid`` (0: the calling one) at ``SCHED_IDLE`` and at least ``nice``."""
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or gone
        pass
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError:
        pass


def lower_process(pid: int, nice: int, *, children: bool = False) -> None:
    """Lower every thread of process ``pid`` (0: this one), and with ``children`` every thread
    of its child processes (never below the priority a child has already)."""
    pids = [pid]
    if children:
        try:
            for task in _tasks(pid).iterdir():
                pids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    for p in pids:
        try:
            tids = [
                int(t.name)
                for t in Path("/proc/self" if p == 0 else f"/proc/{p}").joinpath("task").iterdir()
            ]
        except OSError:
            tids = [p]
        for tid in tids:
            lower_thread(tid, nice)


def _tasks(pid: int) -> Path:
    return Path("/proc/self/task" if pid == 0 else f"/proc/{pid}/task")
