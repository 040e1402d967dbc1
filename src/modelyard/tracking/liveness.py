"""Runs whose process died without ending them: found and ended ``KILLED``.

A run normally ends itself (``FINISHED``, ``FAILED``, or ``KILLED`` on Ctrl-C and SIGTERM). A
process that is SIGKILLed, runs out of memory, calls ``os._exit`` or crashes in native code
leaves its run ``RUNNING`` for ever. Top-level runs (pipelines, and runs started with the
tracking API) therefore record which process runs them (columns ``runs.process_host`` and
``runs.process_pid``), and each new top-level run first ends, as ``KILLED`` with tag
``ended.reason``, the ``RUNNING`` top-level runs of this machine whose process is gone, with
their nested runs (a pipeline's steps). An index on ``runs.status`` keeps that one query cheap
however many runs the store holds.

"This machine" is the host name plus, on Linux, the boot id and the PID namespace, so a run of
another container or of the machine before a reboot is never judged by a process table that is
not its own. A recycled pid is told apart by the process's start time (Linux).
"""

from __future__ import annotations

import os
import socket
import time
from functools import lru_cache
from typing import TYPE_CHECKING

from modelyard.logs import get_logger

if TYPE_CHECKING:
    from modelyard.store.db import MetadataStore

__all__ = ["end_runs_killed", "end_stale_runs", "host_identity", "process_token"]

_log = get_logger("tracking")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


@lru_cache(maxsize=1)
def host_identity() -> str:
    """``hostname``, plus ``/boot_id/pid-namespace`` where Linux tells them."""
    parts = [socket.gethostname()]
    boot = _read("/proc/sys/kernel/random/boot_id")
    if boot is not None:
        parts.append(boot)
        try:
            parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
        except OSError:
            parts.append("?")
    return "/".join(parts)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), or None."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_token(pid: int | None = None) -> str:
    """``pid`` or ``pid:start-time``: what :func:`end_stale_runs` checks for liveness."""
    pid = os.getpid() if pid is None else pid
    start = _start_time(pid)
    return str(pid) if start is None else f"{pid}:{start}"


def _alive(token: str) -> bool:
    pid_text, _, start = token.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return True  # not ours to judge
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        pass
    return not start or _start_time(pid) in (start, None)


def end_stale_runs(ms: MetadataStore) -> list[str]:
    """End ``KILLED`` the ``RUNNING`` top-level runs of this machine whose process is gone.

    Their ``RUNNING`` child runs (a pipeline's steps) end with them. Returns the ids of the
    top-level runs found.
    """
    with ms.query() as q:
        rows = q.execute(
            "SELECT id, process_pid FROM runs WHERE status = 'RUNNING' "
            "AND parent_run_id IS NULL AND process_host = :host AND process_pid IS NOT NULL",
            {"host": host_identity()},
        )
    stale = [str(run_id) for run_id, token in rows if not _alive(str(token))]
    if not stale:
        return []
    end_runs_killed(
        ms, stale, "its process ended without ending the run (killed, out of memory or crashed)"
    )
    _log.warning("ended runs whose process is gone", extra={"run_ids": stale, "status": "KILLED"})
    return stale


def end_runs_killed(ms: MetadataStore, run_ids: list[str], reason: str) -> list[str]:
    """End ``KILLED`` (tag ``ended.reason``) the runs ``run_ids`` that are still ``RUNNING``,
    with their ``RUNNING`` child runs: runs whose process is known to be gone. Returns the ids
    of every run ended."""
    now = time.time()
    out: list[str] = []
    with ms.write() as tx:
        for run_id in run_ids:
            ended = [
                str(r[0])
                for r in tx.execute(
                    "SELECT id FROM runs WHERE status = 'RUNNING' "
                    "AND (id = :id OR parent_run_id = :id)",
                    {"id": run_id},
                )
            ]
            tx.executemany(
                "UPDATE runs SET status = 'KILLED', end_time = :now "
                "WHERE id = :id AND status = 'RUNNING'",
                [{"id": r, "now": now} for r in ended],
            )
            tx.executemany(
                "INSERT INTO run_tags (run_id, key, value) VALUES (:id, 'ended.reason', :why) "
                "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                [{"id": r, "why": reason} for r in ended],
            )
            out += ended
    return out
