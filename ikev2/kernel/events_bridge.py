"""Kernel events → engine calls, on an asyncio loop.

    bridge = KernelEventsBridge(kernel, engine, after=daemon_flush)
    bridge.start()      # loop.add_reader(kernel.event_fileno(), ...)
    ...
    bridge.stop()

Dispatch (the engine methods are looked up by name; a missing one is logged once):
- ChildSaExpired → engine.on_child_expire(spi_in, [protocol,] hard, now) (`protocol` only if
  the method has such a parameter), once per CHILD_SA and expiry kind: both SAs of a pair
  carry the same limits, so the second SA's expiry of the same kind is dropped
  (REQUIREMENTS X-12).
- AcquireRequest → engine.on_acquire(reqid, now) when the policy is ours (reqid ≠ 0).
- SaMigrated (not caused by our own migrate_child) → engine.on_kernel_migrate(event, now)
  (REQUIREMENTS X-07: a mobility daemon moved the SAs; the IKE SA should follow).
- NatMappingChanged → engine.on_nat_mapping(event, now).
- KernelEventsLost → engine.on_kernel_resync(now) (REQUIREMENTS X-18).
After a batch, `after()` runs (the daemon's "send datagrams, drain events, re-arm timer").
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from ikev2.kernel.base import (
    AcquireRequest,
    ChildSaExpired,
    KernelEvent,
    KernelEventsLost,
    KernelEventSource,
    NatMappingChanged,
    SaMigrated,
)

log = logging.getLogger("ikev2.kernel")

_SEEN_LIMIT = 4096
_POLICY_DIR = {0: "in", 1: "out", 2: "fwd"}  # XFRM_POLICY_IN/OUT/FWD


class KernelEventsBridge:
    def __init__(
        self,
        kernel: KernelEventSource,
        engine: Any,
        *,
        after: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kernel = kernel
        self.engine = engine
        self.after = after
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd: int | None = None
        self._seen: dict[tuple[int, bool], None] = {}  # (spi_in, hard), insertion-ordered
        self._missing: set[str] = set()
        self.delivered = 0

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Watch the kernel's event descriptor; False if the backend has none."""
        fd = self.kernel.event_fileno()
        if fd is None:
            return False
        self._loop = loop or asyncio.get_running_loop()
        self._fd = fd
        self._loop.add_reader(fd, self.on_readable)
        return True

    def stop(self) -> None:
        if self._loop is not None and self._fd is not None:
            self._loop.remove_reader(self._fd)
        self._loop = self._fd = None

    def on_readable(self) -> None:
        try:
            events = self.kernel.read_events()
        except Exception:
            log.exception("reading kernel events failed")
            return
        if events:
            self.dispatch(events, self.clock())
            if self.after is not None:
                self.after()

    def dispatch(self, events: list[KernelEvent], now: float) -> None:
        for ev in events:
            try:
                self._one(ev, now)
            except Exception:
                log.exception("the engine raised on kernel event %s", ev)

    def _method(self, name: str) -> Callable[..., Any] | None:
        fn = getattr(self.engine, name, None)
        if fn is None and name not in self._missing:
            self._missing.add(name)
            log.info("kernel event ignored: the engine has no %s()", name)
        return fn

    def _call(self, name: str, *args: Any) -> None:
        fn = self._method(name)
        if fn is not None:
            self.delivered += 1
            fn(*args)

    def _one(self, ev: KernelEvent, now: float) -> None:
        if isinstance(ev, ChildSaExpired):
            key = (ev.spi_in, ev.hard)
            if key in self._seen:
                return
            self._seen[key] = None
            if len(self._seen) > _SEEN_LIMIT:
                self._seen.pop(next(iter(self._seen)))
            log.info("CHILD_SA with inbound SPI %08x: %s lifetime expired (%s SA %08x)",
                     ev.spi_in, "hard" if ev.hard else "soft",
                     "inbound" if ev.inbound else "outbound", ev.spi)
            fn = self._method("on_child_expire")
            if fn is not None:
                self.delivered += 1
                if "protocol" in inspect.signature(fn).parameters:
                    fn(ev.spi_in, protocol=ev.protocol, hard=ev.hard, now=now)
                else:
                    fn(ev.spi_in, hard=ev.hard, now=now)
        elif isinstance(ev, AcquireRequest):
            if not ev.reqid:
                log.debug("ACQUIRE for a foreign policy (reqid %d) ignored", ev.kernel_reqid)
                return
            self._call("on_acquire", ev.reqid, now)
        elif isinstance(ev, SaMigrated):
            moves = "; ".join(
                f"reqid {m.kernel_reqid:#x} {m.mode} {m.old_local}-{m.old_remote} -> "
                f"{m.new_local}-{m.new_remote}" for m in ev.moves) or "no SA"
            km = (f", KMADDRESS {ev.km_local}-{ev.km_remote}"
                  if ev.km_local or ev.km_remote else "")
            where = _POLICY_DIR.get(ev.direction, str(ev.direction))
            if ev.own:
                log.debug("XFRM_MSG_MIGRATE of ours (policy %s%s): %s", where, km, moves)
                return
            log.info("XFRM_MSG_MIGRATE by another daemon (policy %s%s): %s", where, km, moves)
            self._call("on_kernel_migrate", ev, now)
        elif isinstance(ev, NatMappingChanged):
            self._call("on_nat_mapping", ev, now)
        elif isinstance(ev, KernelEventsLost):
            log.warning("kernel events lost (%s)", ev.reason)
            self._call("on_kernel_resync", now)
