"""The lifecycle of a serving front: listen, start the versions, signals, drain, reap, stop.

Life of a server: it listens at once (liveness is true), starts the stable version's workers
(readiness turns true when all have loaded) and answers until SIGTERM or SIGINT. Then it drains:

1. readiness turns false at once, while requests are still answered normally for
   ``drain_delay_s`` (load balancers and Kubernetes take a while to stop sending new
   connections); every answer from now on says ``connection: close``;
2. it stops accepting: the loop stops watching the listening socket, the connections already
   queued in the kernel's listen backlog are accepted (closing a listener with a backlog would
   reset them), then the listener closes (later connections are refused, not reset);
3. the requests on the accepted connections are answered (up to ``grace_s``), idle
   connections are closed, the workers stop, are reaped, and the process exits 0.

A second signal skips the waits.
The requests themselves are answered by the handlers (``_handlers``, ``_inference``) through
the :class:`~modelyard.serving._front.Front`, which also holds the versions served.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from modelyard.config import ServingSettings
from modelyard.errors import TimeoutExceeded
from modelyard.logs import get_logger
from modelyard.serving import _handlers
from modelyard.serving._front import Front, enabled_debug
from modelyard.serving._model import ModelSpec, check_model_name, check_version_label
from modelyard.serving._reqlog import LogStore
from modelyard.serving.routing import Router

__all__ = ["Server", "reap_orphans"]

if TYPE_CHECKING:
    from modelyard.data.contract import Contract

log = get_logger("modelyard.serving")


def reap_orphans(own: set[int]) -> list[int]:
    """Reap every exited child not in ``own``; return their pids.

    ``waitid(WNOWAIT)`` looks at an exited child without reaping it, so the exit status of our
    own workers stays for their ``Popen.wait``; the scan stops at the first of those (the next
    call sees past it once it has been waited for).
    """
    reaped: list[int] = []
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # no children at all
            return reaped
        if info is None or info.si_pid == 0 or info.si_pid in own:
            return reaped
        try:
            os.waitpid(info.si_pid, os.WNOHANG)
        except ChildProcessError:  # reaped meanwhile by someone else
            continue
        reaped.append(info.si_pid)


class Server:
    """One serving front process for one model, hosting one or more of its versions.

    Args:
        spec: where the stable version's workers get the model.
        settings: ``[tool.modelyard.serving]`` values (port, workers, batch limits, ...).
        name: the model name in URLs (default: the model's own name).
        version: the stable version's label (default: the model's own version).
        log_store: where the request/feedback logs go (``write_named``); ``None`` turns them off.
        log_level: level for the front and worker loggers.
        load_timeout_s: how long a worker may take to load the model.
        router: chooses the version of each inference request (default: the stable one).
        on_ready: coroutines run once the stable version is ready, with the :class:`Front`
            (to add more versions, routes, a management API...).
        contract: the stable version's data contract (``ModelVersion.contract``): requests
            are checked against its types, nulls, ranges and categories.

    Attributes:
        front: the versions served and the request plumbing (``add_version``,
            ``remove_version``, ``set_stable``, ``router``, ``add_route``).
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: ServingSettings,
        *,
        name: str | None = None,
        version: str | None = None,
        log_store: LogStore | None = None,
        log_level: str = "INFO",
        load_timeout_s: float = 300.0,
        router: Router | None = None,
        on_ready: list[Callable[[Front], Awaitable[None]]] | None = None,
        contract: Contract | None = None,
    ) -> None:
        self.spec = spec
        self.contract = contract
        self.settings = settings
        self.version = version
        self.front = Front(
            settings,
            name=name,
            router=router,
            log_store=log_store,
            log_level=log_level,
            load_timeout_s=load_timeout_s,
        )
        self.on_ready = list(on_ready or [])
        self.port = 0
        self._stop: asyncio.Event | None = None
        self._hurry: asyncio.Event | None = None
        self._signals = 0

    @property
    def name(self) -> str | None:
        return self.front.name

    def ready(self) -> bool:
        return self.front.ready()

    # ------------------------------------------------------------------ lifecycle
    def run(self, sock: socket.socket | None = None) -> int:
        """Serve until SIGTERM/SIGINT; return the exit code. Installs uvloop when present."""
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:  # pragma: no cover - uvloop is in the serve extra
            runner = asyncio.run
        result: int = runner(self.serve(sock))
        return result

    async def serve(self, sock: socket.socket | None = None) -> int:
        """The async body of :meth:`run` (signal handlers need the main thread)."""
        front = self.front
        if front.name is not None:
            check_model_name(front.name)  # it names the request log's folders: refuse it now
        if self.version is not None:
            check_version_label(self.version)
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()
        s = self.settings
        front.access_log = enabled_debug()
        _handlers.install(front)
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self._on_signal, signum)
            except (RuntimeError, ValueError):  # not the main thread: the caller stops us
                pass
        if sock is None:
            server = await loop.create_server(front.protocol, s.host, s.port, backlog=2048)
        else:
            server = await loop.create_server(front.protocol, sock=sock, backlog=2048)
        self.port = front.port = server.sockets[0].getsockname()[1]
        # our own handles on the listening sockets: closing the server then stops the loop's
        # accepting but not the kernel's listening, so the drain can take the backlog
        listeners = [socket.socket(fileno=os.dup(ts.fileno())) for ts in server.sockets]
        workers = s.workers or os.cpu_count() or 1
        log.info("listening", extra={"host": s.host, "port": self.port, "workers": workers})
        sweeper = loop.create_task(self._sweep())
        # As PID 1 (a container without an init) orphaned processes are re-parented to us: reap
        # them, or they stay zombies for the container's life.
        reaper = loop.create_task(self._reap_orphans()) if os.getpid() == 1 else None
        try:
            try:
                pool = await front.add_version(
                    self.spec, version=self.version, contract=self.contract, stop=self._stop
                )
            except BaseException:
                server.close()
                for ls in listeners:
                    ls.close()
                raise
            log.info(
                "ready", extra={"model": pool.name, "version": pool.version, "port": self.port}
            )
            for hook in self.on_ready:
                await hook(front)
            await self._stop.wait()
            await self._drain(server, listeners)
        finally:
            sweeper.cancel()
            if reaper is not None:
                reaper.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.remove_signal_handler(signum)
                except (RuntimeError, ValueError):
                    pass
            await asyncio.gather(*(p.stop(self.settings.grace_s) for p in front.pools.values()))
            for conn in list(front.connections):
                if conn.transport is not None:
                    conn.transport.close()
        log.info("stopped", extra={"model": front.name})
        return 0

    async def _reap_orphans(self, interval_s: float = 0.5) -> None:
        """Reap exited processes that are not our workers (only run as PID 1)."""
        while True:
            await asyncio.sleep(interval_s)
            own: set[int] = set()
            for pool in self.front.pools.values():
                if pool.batcher is not None:
                    own |= pool.batcher.spawned
            reaped = reap_orphans(own)
            if reaped:
                log.debug("reaped orphaned processes", extra={"pids": reaped})

    def stop(self) -> None:
        """Begin a graceful stop (thread-unsafe: call on the server's loop)."""
        if self._stop is not None:
            self._stop.set()

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        log.info("signal received; draining", extra={"signal": signal.Signals(signum).name})
        self.front.draining = True
        if self._signals > 1:
            # a second signal: stop waiting for requests
            self.settings = msgspec.structs.replace(self.settings, grace_s=0.0)
            if self._hurry is not None:
                self._hurry.set()
        self.stop()

    async def _drain(self, server: asyncio.Server, listeners: list[socket.socket]) -> None:
        """Not ready at once; answer normally for ``drain_delay_s``; take the listen backlog
        and stop listening; finish what was accepted (up to ``grace_s``)."""
        front = self.front
        front.draining = True
        for conn in list(front.connections):
            conn.closing = True  # the next answer on each says connection: close
        assert self._hurry is not None
        delay_s = self.settings.drain_delay_s
        if delay_s > 0 and not self._hurry.is_set():
            log.info("not ready; still answering", extra={"drain_delay_s": delay_s})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), delay_s)
        server.close()
        taken = await self._take_backlog(listeners)
        log.info("stopped accepting", extra={"backlog_accepted": taken})
        grace_s = self.settings.grace_s
        deadline = time.monotonic() + grace_s
        while self._unfinished() and time.monotonic() < deadline and not self._hurry.is_set():
            await asyncio.sleep(0.01)
        for conn in list(front.connections):
            conn.shutdown()  # idle ones close now, the others after the answers they owe
        if front.accepted():
            log.warning(
                "grace period over; answering 503 to the rest",
                extra={"inflight": front.inflight},
            )

    async def _take_backlog(self, listeners: list[socket.socket]) -> int:
        """Accept every connection queued on the listening sockets, then close them."""
        loop = asyncio.get_running_loop()
        taken = 0
        for ls in listeners:
            ls.setblocking(False)
            while True:
                try:
                    conn, _ = ls.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # the listener is gone: nothing more to take
                    break
                taken += 1
                await loop.connect_accepted_socket(self.front.protocol, conn)
            ls.close()
        return taken

    def _unfinished(self) -> bool:
        """Requests still owed an answer: queued or in a worker, being received, or on a
        connection just taken from the backlog whose request has not arrived yet."""
        front = self.front
        if front.accepted():
            return True
        now = time.monotonic()
        return any(c.busy(now) for c in front.connections)

    async def _sweep(self) -> None:
        timeout_s = self.settings.timeout_s
        period = min(0.1, timeout_s / 4)
        ticks = 0
        front = self.front
        while True:
            await asyncio.sleep(period)
            ticks += 1
            if ticks % 10 == 0:  # slow, stalled and long-idle connections, about once a second
                now = time.monotonic()
                for conn in list(front.connections):
                    conn.stale(now, timeout_s)
            for pool in list(front.pools.values()):
                b = pool.batcher
                if b is not None:
                    pool.metrics.timeouts += b.expire(time.monotonic(), self._timeout_error)
                pool.sweep()

    def _timeout_error(self) -> Exception:
        return TimeoutExceeded(
            f"the request took longer than {self.settings.timeout_s} s",
            hint="retry later, or raise serving.timeout_s",
        )
