"""The asyncio adapter: sockets → engine → (datagrams, events, timer) → sockets / log /
state file. Everything IKE lives in the sans-IO engine; this module only moves bytes and
keeps one timer armed (the aioquic `asyncio/protocol.py` shape)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ikev2.config.model import ConnectionConfig, StartAction
from ikev2.core.events import Datagram, Endpoint, IkeSaEstablished, IkeSaFailed, IkeSaInfo
from ikev2.daemon.eventlog import format_event
from ikev2.daemon.settings import DaemonConfig
from ikev2.daemon.sockets import (
    NON_ESP_MARKER,
    SocketSet,
    UdpSocket,
    bind_problem,
    classify_natt,
    recv,
    send,
)
from ikev2.daemon.statefile import write_state
from ikev2.errors import UnusableAddress

log = logging.getLogger("ikev2d")

RECV_BATCH = 64  # datagrams read per wakeup before flushing (fairness between sockets)
STATE_WRITE_DELAY = 0.05  # coalesce state-file rewrites after bursts of events
SHUTDOWN_TIMEOUT = 2.0
T = TypeVar("T")
EventListener = Callable[[object], None]


class StartError(Exception):
    """The daemon cannot start (e.g. its state file cannot be written); exit code 1."""


class EnginePort(Protocol):
    """The part of `ikev2.core.engine.Engine` the daemon drives."""

    def load_connection(self, conn: Any) -> None: ...
    def unload_connection(self, name: str) -> None: ...
    def initiate(self, name: str, now: float, *, local: str | None = None) -> int: ...
    def check_liveness(self, ike_id: int, now: float) -> None: ...
    def check_local(self, name: str, local: str) -> str: ...
    def terminate(self, ike_id: int, now: float) -> None: ...
    def terminate_child(self, ike_id: int, child_id: int, now: float) -> None: ...
    def rekey_ike(self, ike_id: int, now: float) -> None: ...
    def rekey_child(self, ike_id: int, child_id: int, now: float) -> None: ...
    def reauthenticate(self, ike_id: int, now: float) -> int: ...
    def create_child(self, ike_id: int, child_name: str, now: float) -> None: ...
    def update_addresses(
        self, ike_id: int, now: float, *, local: str | None = None, remote: str | None = None,
        mode: str = "auto",
    ) -> IkeSaInfo: ...
    def ike_sa(self, ike_id: int) -> IkeSaInfo | None: ...
    def shutdown(self, now: float) -> None: ...
    def receive_datagram(
        self, data: bytes, local: Endpoint, remote: Endpoint, now: float
    ) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def get_timer(self) -> float | None: ...
    def datagrams_to_send(self) -> list[Datagram]: ...
    def next_event(self) -> Any: ...
    def ike_sas(self) -> list[IkeSaInfo]: ...


class Daemon:
    """Drives one engine from asyncio. `clock` must be the loop's clock (time.monotonic)."""

    def __init__(
        self,
        config: DaemonConfig,
        engine: EnginePort,
        *,
        clock: Callable[[], float] = time.monotonic,
        sockets: SocketSet | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.clock = clock
        self.sockets = sockets
        self.natt_port = config.natt_port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._state_pending: asyncio.TimerHandle | None = None
        self._idle: asyncio.Event | None = None
        self._stopping = False
        self._closed = False
        self._state_broken = False
        self.dropped = 0  # datagrams dropped because handling them raised
        self.received = 0  # datagrams handed to the engine
        self.sent = 0  # datagrams sent
        # connections loaded now (the config's, then the API's loads/unloads)
        self.connections: dict[str, ConnectionConfig] = {c.name: c for c in config.connections}
        # every core event goes to these after it is logged (the API's fan-out)
        self.listeners: list[EventListener] = []
        # when this daemon initiated an IKE SA still being set up (handshake latency)
        self.initiated_at: dict[int, float] = {}
        # this host's addresses → engine.set_local_addresses (MOBIKE, docs/mobike.md)
        self.address_watcher: Any = None
        # kernel events (expire, acquire, migrate) → engine (ikev2/kernel/events_bridge.py)
        self.kernel_events: Any = None

    # --- lifecycle ---------------------------------------------------------------------
    def open_sockets(self) -> None:
        """Bind all listen addresses on both ports (raises sockets.BindError)."""
        if self.sockets is None:
            self.sockets = SocketSet.open(
                self.config.listen, self.config.ike_port, self.config.natt_port
            )

    def start(self) -> None:
        """Write the first state file, register readers, load connections, initiate
        start_action=initiate ones. Raises sockets.BindError or StartError."""
        if self.config.state_file:
            try:
                write_state(self.config.state_file, ())
            except OSError as exc:
                self._state_broken = True  # no second complaint from close()
                raise StartError(
                    f"cannot write state file {self.config.state_file}: "
                    f"{(exc.strerror or str(exc)).lower()} (check daemon.state_file)"
                ) from None
        self.open_sockets()
        assert self.sockets is not None
        self._loop = asyncio.get_running_loop()
        for us in self.sockets.sockets:
            self._loop.add_reader(us.sock.fileno(), self._on_readable, us)
        self._start_kernel()
        from ikev2.daemon.addresses import start_watcher

        self.address_watcher = start_watcher(self)
        for conn in self.config.connections:
            self.engine.load_connection(conn)
        log.info(
            "ikev2d listening on %s; %d connection(s) loaded: %s",
            self.sockets.describe(), len(self.config.connections),
            ", ".join(c.name for c in self.config.connections) or "none",
        )
        for conn in self.config.connections:
            actions = {c.start_action for c in conn.children}
            if StartAction.INITIATE in actions:
                self.initiate(conn.name)
        self._after()

    def initiate(self, name: str) -> int | None:
        try:
            return self.initiate_sa(name)
        except Exception:
            log.exception("initiating connection %s failed", name)
            return None

    # --- commands (the API's): engine call with the loop's clock, then _after() ----------
    # They raise what the engine raises (KeyError unknown id, ValueError wrong state).
    def command(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, self.clock(), **kwargs)
        finally:
            self._after()

    def initiate_sa(self, name: str, *, local: str | None = None) -> int:
        """Start an IKE SA of connection `name`, from the address `local` if given
        (UnusableAddress when this host or its sockets cannot send from it)."""
        if local is not None:
            local = self.check_source(name, local)
        now = self.clock()
        try:
            ike_id = self.engine.initiate(name, now, local=local)
            self.initiated_at[ike_id] = now
            log.info("initiating connection %s: IKE_SA %s[%d]%s", name, name, ike_id,
                     f" from {local}" if local else "")
        finally:
            self._after()
        return ike_id

    def check_source(self, name: str, local: str) -> str:
        """`local` (normalised) if connection `name` may use it (the engine's check), a
        socket of ours can send from it on the connection's port and the host has the
        address (a bind succeeds); else UnusableAddress saying what to change (KeyError
        for an unknown connection)."""
        addr = self.engine.check_local(name, local)
        conn = self.connections.get(name)
        if conn is None or self.sockets is None:
            return addr
        port = conn.local_port or self.config.ike_port
        if self.sockets.lookup((addr, port)) is None:
            wildcard = "::" if ipaddress.ip_address(addr).version == 6 else "0.0.0.0"
            raise UnusableAddress(addr, f"ikev2d has no socket to send from {addr}: it is not "
                                  f"among daemon.listen ({', '.join(self.config.listen)}); "
                                  f"add it there (or \"{wildcard}\") and restart ikev2d")
        problem = bind_problem(addr)
        if problem is not None:
            known = getattr(self.engine, "local_addresses", ())
            raise UnusableAddress(addr, f"{addr} is not an address of this host ({problem}); "
                                  "configure it on an interface first"
                                  + (f", or use one of {', '.join(known)}" if known else ""))
        return addr

    def check_liveness(self, ike_id: int) -> None:
        self.command(self.engine.check_liveness, ike_id)

    def terminate_sa(self, ike_id: int) -> None:
        self.command(self.engine.terminate, ike_id)

    def terminate_child(self, ike_id: int, child_id: int) -> None:
        self.command(self.engine.terminate_child, ike_id, child_id)

    def rekey_ike(self, ike_id: int) -> None:
        self.command(self.engine.rekey_ike, ike_id)

    def rekey_child(self, ike_id: int, child_id: int) -> None:
        self.command(self.engine.rekey_child, ike_id, child_id)

    def reauthenticate(self, ike_id: int) -> int:
        return self.command(self.engine.reauthenticate, ike_id)

    def update_addresses(
        self, ike_id: int, *, local: str | None = None, remote: str | None = None,
        mode: str = "auto",
    ) -> IkeSaInfo:
        return self.command(self.engine.update_addresses, ike_id, local=local, remote=remote,
                            mode=mode)

    def load_connection(self, conn: ConnectionConfig) -> None:
        self.engine.load_connection(conn)
        self.connections[conn.name] = conn
        log.info("connection %s loaded", conn.name)

    def unload_connection(self, name: str) -> None:
        self.engine.unload_connection(name)
        del self.connections[name]
        log.info("connection %s unloaded", name)

    def terminate(self, ike_id: int) -> None:
        try:
            self.engine.terminate(ike_id, self.clock())
        except Exception:
            log.exception("terminating IKE_SA [%d] failed", ike_id)
        self._after()

    async def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Delete every SA, send the deletes, wait (≤ timeout) for the answers, close."""
        self._stopping = True
        count = len(self.engine.ike_sas())
        log.info("shutting down: deleting %d IKE_SA(s)", count)
        self._idle = asyncio.Event()
        try:
            self.engine.shutdown(self.clock())
        except Exception:
            log.exception("engine shutdown failed")
        self._after()
        if count and not self._idle.is_set():
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                log.info(
                    "no answer to %d delete(s) within %.1f s; closing anyway",
                    len(self.engine.ike_sas()), timeout,
                )
        self.close()
        log.info("ikev2d stopped")

    def _start_kernel(self) -> None:
        """The kernel backend's part of start-up: remove a crashed run's leftovers, let the
        IKE sockets bypass IPsec (and decapsulate ESP-in-UDP on the NAT-T one), and feed
        its events to the engine (docs/kernel.md)."""
        from ikev2.errors import KernelError
        from ikev2.kernel.events_bridge import KernelEventsBridge

        kernel = self.engine.kernel  # type: ignore[attr-defined]
        assert self.sockets is not None
        try:
            if hasattr(kernel, "start"):
                kernel.start()
            if hasattr(kernel, "prepare_ike_socket"):
                for us in self.sockets.sockets:
                    kernel.prepare_ike_socket(us.sock, us.natt)
        except KernelError as exc:
            raise StartError(f"kernel backend: {exc}") from None
        if hasattr(kernel, "event_fileno"):
            self.kernel_events = KernelEventsBridge(kernel, self.engine, after=self._after)
            self.kernel_events.start()

    def close(self) -> None:
        """Stop reading, cancel timers, close the sockets; the state file then says the
        daemon stopped (its SAs went with it). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.kernel_events is not None:
            self.kernel_events.stop()
            self.kernel_events = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if self._state_pending is not None:
            self._state_pending.cancel()
            self._state_pending = None
        if self.address_watcher is not None:
            self.address_watcher.close()
            self.address_watcher = None
        if self.sockets is not None:
            if self._loop is not None:
                for us in self.sockets.sockets:
                    self._loop.remove_reader(us.sock.fileno())
            self.sockets.close()
        if self.config.state_file:
            self._write_state(running=False)

    # --- the hot path ------------------------------------------------------------------
    def _on_readable(self, us: UdpSocket) -> None:
        engine = self.engine
        natt = us.natt
        for _ in range(RECV_BATCH):
            try:
                data, local, remote = recv(us)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("receive on %s[%d] failed: %s", us.address, us.port, exc)
                break
            if natt:
                if data[:4] != NON_ESP_MARKER:
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("ignored %s from %s[%d]", classify_natt(data), *remote)
                    continue
                data = data[4:]
            self.received += 1
            try:
                engine.receive_datagram(data, local, remote, self.clock())
            except Exception:
                self.dropped += 1
                log.exception(
                    "dropped %d-octet datagram %s[%d] -> %s[%d]: the engine raised",
                    len(data), remote[0], remote[1], local[0], local[1],
                )
        self._after()

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        try:
            self.engine.handle_timer(self.clock())
        except Exception:
            log.exception("engine timer handling raised; continuing")
        self._after()

    def _after(self) -> None:
        """Send what the engine queued, log its events, re-arm the timer."""
        engine = self.engine
        for dgram in engine.datagrams_to_send():
            self._send(dgram)
        event = engine.next_event()
        if event is not None:
            while event is not None:
                level, message = format_event(event)
                log.log(level, "%s", message)
                for listener in self.listeners:
                    try:
                        listener(event)
                    except Exception:
                        log.exception("event listener failed on %s", type(event).__name__)
                if isinstance(event, IkeSaEstablished):
                    self.initiated_at.pop(event.ike.ike_id, None)
                elif isinstance(event, IkeSaFailed):
                    self.initiated_at.pop(event.ike_id, None)
                event = engine.next_event()
            if self.config.state_file:
                self._schedule_state()
        if self._stopping and self._idle is not None and not engine.ike_sas():
            self._idle.set()
        deadline = engine.get_timer()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            if deadline is None or self._loop is None:
                self._timer = self._timer_at = None
            else:
                # loop.time() is time.monotonic(), the engine's clock
                self._timer = self._loop.call_at(deadline, self._on_timer)
                self._timer_at = deadline

    def _send(self, dgram: Datagram) -> None:
        assert self.sockets is not None
        local, remote = dgram.local, dgram.remote
        us = self.sockets.lookup(local)
        if us is None:
            log.warning(
                "no socket bound for %s[%d]; dropped %d-octet datagram to %s[%d] "
                "(add the address to daemon.listen)",
                local[0], local[1], len(dgram.data), remote[0], remote[1],
            )
            return
        data = dgram.data
        if local[1] == self.natt_port or remote[1] == self.natt_port:
            data = NON_ESP_MARKER + data
        try:
            send(us, data, local[0], remote)
            self.sent += 1
        except OSError as exc:
            log.warning(
                "sending %d octets %s[%d] -> %s[%d] failed: %s",
                len(data), local[0], local[1], remote[0], remote[1], exc.strerror or exc,
            )

    # --- state file --------------------------------------------------------------------
    def _schedule_state(self) -> None:
        if self._state_pending is None and self._loop is not None:
            self._state_pending = self._loop.call_later(STATE_WRITE_DELAY, self._write_state)

    def _write_state(self, *, running: bool = True) -> None:
        self._state_pending = None
        path = self.config.state_file
        if not path or self._state_broken:
            return
        try:
            write_state(path, self.engine.ike_sas() if running else (), running=running)
        except OSError as exc:
            log.warning("cannot write state file %s: %s", path, exc)
