"""Where a sweep's trials run: forked processes where this platform allows it, else threads.

A trial is a whole pipeline run. In a forked child it runs on its own core (the parent keeps
asking the sampler and telling it the results), inherits the pipeline and everything already
imported, and hands back a small dict over a pipe; its runs and cache entries go to the
shared stores, whose connections the store and tracking modules reset in forked children.
Where fork is missing or unsafe (a library with native thread pools is loaded, see
:data:`modelyard.pipelines.executors.local.FORK_UNSAFE_MODULES`), trials run in threads.

Each child leads its own process group, so stopping a trial (Ctrl-C, an error in another trial)
also stops the step processes it started.

A child also reports the modules it imported; the parent imports those it lacks (fork-safe
ones only), so later children start with them loaded. A trial's steps often import their
libraries lazily (scikit-learn inside ``fit``): without this every forked trial paid that
import again (0.85 s of a 0.95 s ``fit`` step in the sweep benchmark), which the threads of a
one-process peer pay once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["TrialWorkers"]

Job = Callable[[], dict[str, Any]]


def _child(job: Job, conn: Any, parent_pid: int) -> None:
    from modelyard.pipelines.executors.local import die_with_parent

    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    die_with_parent(parent_pid)  # a sweep killed (SIGKILL, OOM) takes its trials with it
    before = set(sys.modules)
    try:
        result = job()
    except BaseException as exc:  # reported to the parent, which decides
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "run_id": None}
    conn.send({**result, _MODULES: sorted(set(sys.modules) - before)})
    conn.close()


_MODULES = "_modules"  # the child's newly imported modules, taken out by the parent


def _warm(names: list[str]) -> None:
    """Import in this (the parent) process what a trial imported, so later forks inherit it;
    never a fork-unsafe library (that would turn later trials into threads), never ``__main__``,
    and a module that fails to import here is left alone."""
    import importlib

    from modelyard.pipelines.executors.local import FORK_UNSAFE_MODULES

    roots = {name.partition(".")[0] for name in names}
    if roots & set(FORK_UNSAFE_MODULES):
        return  # the trial loads a fork-unsafe library: a module of its own may import it too
    for name in names:
        if name in sys.modules or name.startswith("__"):
            continue
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def _kill(value: Any) -> None:
    """Kill a forked trial and its process group, then reap it (threads cannot be killed)."""
    if isinstance(value, tuple):
        process, conn = value
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        process.join()
        conn.close()


class TrialWorkers:
    """At most ``parallel`` trials at once.

    Args:
        parallel: most trials at once.
        processes: run each trial in a forked child (default: when fork is available and safe).
    """

    def __init__(self, parallel: int, *, processes: bool | None = None) -> None:
        self.parallel = max(1, parallel)
        self.processes = processes
        self._running: dict[int, Any] = {}
        self._pool: Any = None

    @staticmethod
    def can_fork() -> bool:
        """Whether trials can run in forked children here."""
        from modelyard.pipelines.executors.local import LocalExecutor

        return LocalExecutor.can_fork() and LocalExecutor.fork_is_safe()

    @property
    def mode(self) -> str:
        """``inline`` (one trial at a time, in this thread), ``processes`` or ``threads``."""
        if self.parallel == 1 and not self.processes:
            return "inline"
        forked = self.can_fork() if self.processes is None else self.processes
        return "processes" if forked else "threads"

    def free(self) -> int:
        """How many more trials may start now."""
        return self.parallel - len(self._running)

    def busy(self) -> bool:
        """Whether a trial is running."""
        return bool(self._running)

    def submit(self, key: int, job: Job) -> None:
        """Start ``job`` (a trial) under ``key`` (inline: when :meth:`wait` is called)."""
        mode = self.mode
        if mode == "inline":
            self._running[key] = job
            return
        if mode == "threads":
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="modelyard-trial")
            self._running[key] = self._pool.submit(job)
            return
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        recv, send = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_child,
            args=(job, send, os.getpid()),
            name=f"modelyard-trial-{key}",
            daemon=False,
        )
        process.start()
        pid = process.pid
        if pid is not None:
            with contextlib.suppress(OSError):  # also from here: no window before the child's
                os.setpgid(pid, pid)
        send.close()
        self._running[key] = (process, recv)

    def running(self) -> list[int]:
        """The keys of the trials running now."""
        return list(self._running)

    def stop(self, key: int) -> None:
        """Stop one trial now (its process group killed); only where trials are processes."""
        value = self._running.pop(key)
        _kill(value)

    def wait(self, timeout_s: float | None = None) -> list[tuple[int, dict[str, Any]]]:
        """Block until at least one trial ends (or ``timeout_s`` passed: then maybe none);
        ``(key, what the job returned)`` for each."""
        if not self._running:
            return []
        mode = self.mode
        if mode == "inline":
            key, job = next(iter(self._running.items()))
            try:
                return [(key, job())]
            finally:
                del self._running[key]
        if mode == "threads":
            from concurrent.futures import FIRST_COMPLETED, wait

            futures = {f: k for k, f in self._running.items()}
            done, _ = wait(list(futures), timeout=timeout_s, return_when=FIRST_COMPLETED)
            out = []
            for future in done:
                key = futures[future]
                del self._running[key]
                out.append((key, future.result()))
            return out
        from multiprocessing.connection import wait as wait_conn

        by_conn = {id(conn): key for key, (_, conn) in self._running.items()}
        by_sentinel = {proc.sentinel: key for key, (proc, _) in self._running.items()}
        ready = wait_conn([c for _, c in self._running.values()] + list(by_sentinel), timeout_s)
        keys = {by_conn[id(r)] if id(r) in by_conn else by_sentinel[r] for r in ready}
        out = []
        for key in sorted(keys):
            process, conn = self._running.pop(key)
            result: dict[str, Any] | None = None
            with contextlib.suppress(EOFError, OSError):
                if conn.poll():
                    result = conn.recv()
            conn.close()
            process.join()
            if result is None:
                result = {
                    "ok": False,
                    "run_id": None,
                    "error": f"the trial's process exited with code {process.exitcode} "
                    "before reporting a result",
                }
            _warm(result.pop(_MODULES, []))
            out.append((key, result))
        return out

    def close(self) -> None:
        """Stop what still runs (process groups killed; threads finish their trial)."""
        for value in list(self._running.values()):
            _kill(value)
        self._running.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
