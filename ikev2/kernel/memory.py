"""In-memory kernel backend: records what would be installed (tests, unprivileged demos)."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ikev2.errors import KernelError
from ikev2.kernel.base import (
    AcquireRequest,
    ChildSaExpired,
    ChildSaSpec,
    ChildSaStats,
    KernelEvent,
    SaMigrated,
    ike_protocol,
    moved_selectors,
)


@dataclass(slots=True)
class MemoryKernel:
    """Implements ikev2.kernel.base.KernelPort and KernelEventSource. `fail_install` makes
    installs fail, to exercise the error path the xfrm backend hits on a kernel without
    ESP. Tests inject kernel events with `inject`, `expire` and `acquire`; `stats` sets what
    `child_stats` reports."""

    random_bytes: Callable[[int], bytes] | None = None
    fail_install: str | None = None
    fail_migrate: str | None = None
    traps: dict[int, ChildSaSpec] = field(default_factory=dict)  # by reqid
    children: dict[tuple[str, int], ChildSaSpec] = field(default_factory=dict)
    spis: set[tuple[str, int]] = field(default_factory=set)
    stats: dict[int, ChildSaStats] = field(default_factory=dict)  # by spi_in
    migrations: list[tuple[ChildSaSpec, ChildSaSpec]] = field(default_factory=list)
    no_outbound: set[int] = field(default_factory=set)  # spi_in of CHILD_SAs without one
    _next_spi: int = 0xC0000001
    _events: deque[KernelEvent] = field(default_factory=deque)
    _pipe: tuple[int, int] | None = None

    def alloc_spi(self, local: str, remote: str, protocol: int) -> int:
        while True:
            if self.random_bytes is not None:
                spi = int.from_bytes(self.random_bytes(4), "big") | 0xC0000000
            else:
                spi = self._next_spi
                self._next_spi += 1
            if (local, spi) not in self.spis:
                self.spis.add((local, spi))
                return spi

    def release_spi(self, local: str, spi: int, protocol: int) -> None:
        self.spis.discard((local, spi))

    def install_child(self, spec: ChildSaSpec, *, outbound: bool = True) -> None:
        if self.fail_install:
            raise KernelError(self.fail_install)
        key = (spec.local, spec.spi_in)
        if key in self.children:
            raise KernelError(f"SA with SPI {spec.spi_in:08x} already installed")
        self.children[key] = spec
        if not outbound:
            self.no_outbound.add(spec.spi_in)

    def install_outbound(self, spec: ChildSaSpec) -> None:
        if self.fail_install:
            raise KernelError(self.fail_install)
        if (spec.local, spec.spi_in) not in self.children:
            raise KernelError(f"no CHILD_SA with inbound SPI {spec.spi_in:08x}")
        self.no_outbound.discard(spec.spi_in)

    def has_outbound(self, spec: ChildSaSpec) -> bool:
        return (spec.local, spec.spi_in) in self.children and spec.spi_in not in self.no_outbound

    def remove_child(self, spec: ChildSaSpec) -> None:
        self.children.pop((spec.local, spec.spi_in), None)
        self.spis.discard((spec.local, spec.spi_in))
        self.no_outbound.discard(spec.spi_in)

    def child_stats(self, spec: ChildSaSpec) -> ChildSaStats:
        return self.stats.get(spec.spi_in, ChildSaStats())

    def migrate_child(
        self, spec: ChildSaSpec, local: str, remote: str, encap: tuple[int, int] | None
    ) -> ChildSaSpec:
        if self.fail_migrate:
            raise KernelError(self.fail_migrate)
        old_key = (spec.local, spec.spi_in)
        if old_key not in self.children:
            raise KernelError(f"no CHILD_SA with inbound SPI {spec.spi_in:08x} to migrate")
        new = replace(
            spec, local=local, remote=remote, encap=encap,
            local_ts=moved_selectors(spec.local_ts, spec.local, local),
            remote_ts=moved_selectors(spec.remote_ts, spec.remote, remote),
        )
        del self.children[old_key]
        self.spis.discard(old_key)
        self.children[(local, spec.spi_in)] = new
        self.spis.add((local, spec.spi_in))
        self.migrations.append((spec, new))
        return new

    def prepare_ike_socket(self, sock: object, natt: bool) -> None:
        """Nothing to do without kernel IPsec (the xfrm backend sets bypass/encap options)."""

    # --- events (KernelEventSource) ------------------------------------------------------
    def event_fileno(self) -> int | None:
        if self._pipe is None:
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._pipe = (r, w)
        return self._pipe[0]

    def read_events(self) -> list[KernelEvent]:
        if self._pipe is not None:
            try:
                while os.read(self._pipe[0], 4096):
                    pass
            except BlockingIOError:
                pass
        out = list(self._events)
        self._events.clear()
        for ev in out:
            if isinstance(ev, SaMigrated) and not ev.own:
                self._follow_kernel_migrate(ev)
        return out

    def _follow_kernel_migrate(self, ev: SaMigrated) -> None:
        """Another daemon moved SAs (an injected foreign XFRM_MSG_MIGRATE): the records
        follow, as the xfrm backend's do; selectors stay (the kernel does not move them)."""
        for move in ev.moves:
            for key, spec in list(self.children.items()):
                if move.reqid and spec.reqid == move.reqid and spec.mode == move.mode and (
                        spec.local, spec.remote) == (move.old_local, move.old_remote):
                    new = replace(spec, local=move.new_local, remote=move.new_remote)
                    del self.children[key]
                    self.children[(new.local, new.spi_in)] = new
                    if key in self.spis:
                        self.spis.discard(key)
                        self.spis.add((new.local, new.spi_in))

    def inject(self, event: KernelEvent) -> None:
        """Queue an event as if the kernel had sent it (wakes an event_fileno watcher)."""
        self._events.append(event)
        if self._pipe is not None:
            with contextlib.suppress(BlockingIOError):  # full pipe: the reader wakes anyway
                os.write(self._pipe[1], b"!")

    def expire(self, spec: ChildSaSpec, *, hard: bool = False, inbound: bool = True) -> None:
        """Inject the soft or hard lifetime expiry of one of `spec`'s SAs."""
        self.inject(ChildSaExpired(
            spec.reqid, spec.spi_in, spec.spi_in if inbound else spec.spi_out, inbound, hard,
            ike_protocol(spec.protocol),
        ))

    def install_trap(self, spec: ChildSaSpec) -> None:
        if self.fail_install:
            raise KernelError(self.fail_install)
        self.traps[spec.reqid] = spec

    def remove_trap(self, spec: ChildSaSpec) -> None:
        self.traps.pop(spec.reqid, None)

    def acquire(self, reqid: int, local: str, remote: str) -> None:
        """Inject an ACQUIRE from a trap policy with `reqid`."""
        self.inject(AcquireRequest(reqid, reqid, local, remote, local, remote))

    def close(self) -> None:
        if self._pipe is not None:
            for fd in self._pipe:
                os.close(fd)
            self._pipe = None
