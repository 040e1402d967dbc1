"""The local executor: in-process when one step can run, forked processes when several can.

Why not a process pool: a pool pays for its workers up front (spawned interpreters re-import
the user's code and libraries; that costs more than a trivial pipeline's whole run) and must
pickle each step and its inputs. Here an attempt runs

* **in this process** when it is the only runnable attempt (or ``max_parallel`` is 1) and it has
  no timeout: no process cost at all, and its outputs stay in memory for the next step;
* **in a forked child** when several attempts can run at once or a timeout must be enforced:
  ``fork`` costs a few milliseconds, the child inherits the loaded code and every value already
  in memory, reads anything else from the artifact store by sha256, writes its outputs there and
  reports a small record over a pipe. Each child leads its own process group, so a child past
  its timeout (or when the run is interrupted) is killed with everything the step started
  (a training subprocess, a shell pipeline). Being a background group, such a child cannot read
  the terminal: debug a step interactively without a timeout and with ``--max-parallel 1``.
  On Linux a child also dies with its group when the runner dies, even by SIGKILL
  (``PR_SET_PDEATHSIG``).

Forking a process whose native thread pools are running can deadlock the child (polars says
so explicitly). When such a library is loaded, children come from a ``forkserver`` instead: a
clean process forked per attempt, which receives the step pickled (cloudpickle, by value for
project code) and reads all its inputs from the store. A step that cannot be pickled then runs
in-process. Where neither start method exists, everything runs in-process (timeouts are then not
enforced).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from modelyard.logs import get_logger
from modelyard.pipelines.executors import Completed, StepTask, run_attempt

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from modelyard.store.artifacts import ArtifactStore

__all__ = ["LocalExecutor", "die_with_parent"]

_log = get_logger("pipeline.local")


class _Child:
    __slots__ = ("conn", "deadline", "process", "started", "task")

    def __init__(
        self, task: StepTask, process: BaseProcess, conn: Connection, started: float
    ) -> None:
        self.task = task
        self.process = process
        self.conn = conn
        self.started = started
        # until the child says it started the step, allow for the process start-up too
        self.deadline = started + STARTUP_GRACE_S + task.timeout_s if task.timeout_s else None

    def step_started(self, now: float) -> None:
        if self.task.timeout_s:
            self.deadline = now + self.task.timeout_s


# How long a child may take to start (forkserver, unpickling the step) before its timeout runs.
STARTUP_GRACE_S = 60.0
_STARTED = "started"


# Libraries whose native thread pools do not survive fork(): with one of them loaded, children
# come from the forkserver.
FORK_UNSAFE_MODULES = ("polars", "jax", "tensorflow")


def _own_process_group() -> None:
    """Lead a process group, so that stopping this attempt also stops what the step started."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """End this attempt and its process group when the process that started it dies.

    A SIGKILL of ``modelyard run`` (an OOM kill, a CI runner that gives up) gives it no chance
    to stop its children: they were re-parented to PID 1 and ran on past their ``timeout_s``.
    On Linux the kernel sends this child SIGTERM when its parent dies (``PR_SET_PDEATHSIG``),
    and the handler kills the whole group: the step and what it started. Elsewhere this does
    nothing. The handler runs between Python bytecodes, like any Python signal handler.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    def on_parent_death(signum: int, frame: Any) -> None:
        os.killpg(os.getpgrp(), signal.SIGKILL)

    signal.signal(signal.SIGTERM, on_parent_death)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this libc
        return
    if os.getppid() != parent_pid:  # the parent died before the kernel was asked to tell us
        on_parent_death(signal.SIGTERM, None)


def _stop(process: Any) -> None:
    """Kill a child and every process in its group (what the step started), then reap it."""
    if process.pid is not None:
        with contextlib.suppress(OSError):  # no such group yet (or any more)
            os.killpg(process.pid, signal.SIGKILL)
    process.kill()
    process.join()


def _child_main(
    task: StepTask, store: ArtifactStore, memo: dict[str, Any], conn: Any, parent_pid: int
) -> None:
    _own_process_group()
    die_with_parent(parent_pid)
    conn.send(_STARTED)
    result = run_attempt(task, store, memo)
    result.exception = None  # exceptions may not pickle; the text travels instead
    conn.send(result)
    conn.close()


def _served_child_main(node_id: str, payload: bytes, store: ArtifactStore, conn: Any) -> None:
    import pickle

    _own_process_group()
    die_with_parent(os.getppid())  # the forkserver, which exits when the runner dies
    try:
        task = pickle.loads(payload)
    except Exception as exc:  # the step's module could not be imported here
        result = Completed(
            node_id, ok=False, error_type=type(exc).__name__, error=f"cannot load the step: {exc}"
        )
    else:
        conn.send(_STARTED)
        result = run_attempt(task, store, None)
    result.exception = None
    conn.send(result)
    conn.close()


def _dumps_task(task: StepTask) -> bytes | None:
    """The task pickled for another interpreter, or None when it cannot be."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle comes with ray; plain pickle otherwise
        import pickle as cloudpickle
    try:
        return bytes(cloudpickle.dumps(task))
    except Exception:  # pickling errors come in many types
        return None


class LocalExecutor:
    """Runs attempts in this process or in forked children.

    Args:
        store: the artifact store inputs are read from and outputs written to.
        max_parallel: most attempts at once (default: the number of CPUs).
        memo: sha256 -> value already in memory (shared with the runner for the run's outputs).
    """

    def __init__(
        self,
        store: ArtifactStore,
        *,
        max_parallel: int | None = None,
        memo: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.max_parallel = max(1, max_parallel or os.cpu_count() or 1)
        self.memo: dict[str, Any] = memo if memo is not None else {}
        self._pending: deque[StepTask] = deque()
        self._children: list[_Child] = []
        self.forked = 0  # how many attempts ran in a child (for tests and the benchmark)
        self.inline = 0

    @staticmethod
    def can_fork() -> bool:
        """Whether attempts can run in child processes on this platform."""
        import multiprocessing as mp

        return hasattr(os, "fork") and "fork" in mp.get_all_start_methods()

    @staticmethod
    def fork_is_safe() -> bool:
        """Whether this process can be forked as is (no fork-unsafe library loaded)."""
        return not any(name in sys.modules for name in FORK_UNSAFE_MODULES)

    def submit(self, task: StepTask) -> None:
        self._pending.append(task)

    def busy(self) -> bool:
        return bool(self._pending or self._children)

    def wait(self) -> list[Completed]:
        while True:
            now = time.monotonic()
            due = [t for t in self._pending if t.ready_at <= now]
            if due and not self._children:
                solo = len(due) == 1 or self.max_parallel == 1 or not self.can_fork()
                task = due[0]
                if solo and (task.timeout_s is None or not self.can_fork()):
                    self._pending.remove(task)
                    self.inline += 1
                    return [run_attempt(task, self.store, self.memo)]
            for task in due:
                if len(self._children) >= self.max_parallel:
                    break
                self._pending.remove(task)
                if not self._fork(task):  # cannot leave this process: run it here
                    self.inline += 1
                    return [run_attempt(task, self.store, self.memo)]
            if self._children:
                done = self._wait_children()
                if done:
                    return done
                continue
            if self._pending:  # only attempts waiting for their retry backoff
                nxt = min(t.ready_at for t in self._pending)
                time.sleep(max(0.0, nxt - time.monotonic()))
                continue
            return []

    def _fork(self, task: StepTask) -> bool:
        import multiprocessing as mp

        if self.fork_is_safe():
            ctx: Any = mp.get_context("fork")
            target: Any = _child_main
            recv, send = ctx.Pipe(duplex=False)
            args: tuple[Any, ...] = (task, self.store, self.memo, send, os.getpid())
        else:
            payload = _dumps_task(task)
            if payload is None:
                _log.warning(
                    "step cannot be pickled for a child process; running it in-process",
                    extra={"step": task.node_id},
                )
                return False
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["modelyard.pipelines.executors"])
            target = _served_child_main
            recv, send = ctx.Pipe(duplex=False)
            args = (task.node_id, payload, self.store, send)
        process = ctx.Process(
            target=target, args=args, name=f"modelyard-step-{task.node_id}", daemon=True
        )
        process.start()
        with contextlib.suppress(OSError):  # also from here: no window before the child does it
            os.setpgid(process.pid, process.pid)  # (refused for forkserver children: theirs)
        send.close()
        self.forked += 1
        self._children.append(_Child(task, process, recv, time.perf_counter()))
        return True

    def _wait_children(self) -> list[Completed]:
        from multiprocessing.connection import wait

        now = time.perf_counter()
        deadlines = [c.deadline for c in self._children if c.deadline is not None]
        pending_due = [t.ready_at for t in self._pending]
        timeout: float | None = None
        if deadlines:
            timeout = max(0.0, min(deadlines) - now)
        if pending_due and len(self._children) < self.max_parallel:
            until = max(0.0, min(pending_due) - time.monotonic())
            timeout = until if timeout is None else min(timeout, until)
        objs: list[Any] = [c.conn for c in self._children]
        objs += [c.process.sentinel for c in self._children]
        ready = set(map(id, wait(objs, timeout)))
        out: list[Completed] = []
        now = time.perf_counter()
        for child in list(self._children):
            if id(child.conn) in ready or id(child.process.sentinel) in ready:
                result = self._receive(child, now)
                if result is not None or not child.process.is_alive():
                    out.append(self._collect(child, result))
            elif child.deadline is not None and now >= child.deadline:
                out.append(self._kill(child))
        return out

    @staticmethod
    def _receive(child: _Child, now: float) -> Completed | None:
        """Read what the child sent: the start signal (its timeout starts now), a result."""
        try:
            while child.conn.poll():
                message = child.conn.recv()
                if message == _STARTED:
                    child.step_started(now)
                    continue
                return message  # type: ignore[no-any-return]
        except (EOFError, OSError):
            return None
        return None

    def _collect(self, child: _Child, result: Completed | None) -> Completed:
        self._children.remove(child)
        child.conn.close()
        child.process.join()
        if result is not None:
            return result
        code = child.process.exitcode
        return Completed(
            child.task.node_id,
            ok=False,
            duration_s=time.perf_counter() - child.started,
            error_type="ProcessExited",
            error=f"the step's process exited with code {code} before reporting a result",
        )

    def _kill(self, child: _Child) -> Completed:
        self._children.remove(child)
        _stop(child.process)
        child.conn.close()
        timeout = child.task.timeout_s
        _log.warning("step attempt timed out", extra={"step": child.task.node_id})
        return Completed(
            child.task.node_id,
            ok=False,
            duration_s=time.perf_counter() - child.started,
            error_type="TimeoutExceeded",
            error=f"attempt {child.task.attempt} ran past timeout_s={timeout} and was stopped",
            timed_out=True,
        )

    def close(self) -> None:
        for child in list(self._children):
            _stop(child.process)
            child.conn.close()
        self._children.clear()
        self._pending.clear()
