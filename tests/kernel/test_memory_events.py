"""The memory backend's port additions (migrate_child, injected events) and the bridge that
feeds kernel events to the engine (REQUIREMENTS X-07, X-12, X-18)."""

from __future__ import annotations

import asyncio

import pytest

from ikev2.errors import KernelError
from ikev2.kernel.base import (
    ChildSaExpired,
    ChildSaSpec,
    KernelEventsLost,
    SaMigrated,
    SaMove,
)
from ikev2.kernel.events_bridge import KernelEventsBridge
from ikev2.kernel.memory import MemoryKernel
from ikev2.protocol.ts import TrafficSelector as TS

A, B, A2 = "2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::11"


def spec(**kw: object) -> ChildSaSpec:
    args: dict = dict(
        reqid=3, protocol=3, mode="transport", local=A, remote=B, spi_in=0xC0000001,
        spi_out=0xC0000002, encr_id=20, encr_key_bits=128, integ_id=0, esn=False,
        encr_key_in=bytes(20), encr_key_out=bytes(20), integ_key_in=b"", integ_key_out=b"",
        local_ts=(TS.from_network(A, 58),), remote_ts=(TS.from_network(B, 58),),
    )
    args.update(kw)
    return ChildSaSpec(**args)


def test_memory_migrate_moves_addresses_and_host_selectors() -> None:
    k = MemoryKernel()
    s = spec()
    k.install_child(s)
    new = k.migrate_child(s, A2, B, (4500, 4500))
    assert (new.local, new.remote, new.encap) == (A2, B, (4500, 4500))
    assert new.local_ts == (TS.from_network(A2, 58),) and new.remote_ts == s.remote_ts
    assert (A2, s.spi_in) in k.children and (A, s.spi_in) not in k.children
    assert k.migrations == [(s, new)]
    with pytest.raises(KernelError):
        k.migrate_child(s, A2, B, None)  # the old spec is no longer installed


class Engine:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_child_expire(self, spi_in: int, protocol: int, hard: bool, now: float) -> None:
        self.calls.append(("expire", spi_in, protocol, hard))

    def on_acquire(self, reqid: int, now: float) -> None:
        self.calls.append(("acquire", reqid))


class EngineNoProtocol:
    """The core's current signature: on_child_expire(spi_in, hard, now)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def on_child_expire(self, spi_in: int, hard: bool, now: float) -> bool:
        self.calls.append(("expire", spi_in, hard, now))
        return True


def test_bridge_dispatch_dedupes_the_pair_and_skips_our_own_migrations() -> None:
    engine = Engine()
    k = MemoryKernel()
    bridge = KernelEventsBridge(k, engine)
    s = spec()
    out_soft = ChildSaExpired(3, s.spi_in, s.spi_out, False, False)
    in_soft = ChildSaExpired(3, s.spi_in, s.spi_in, True, False)
    in_hard = ChildSaExpired(3, s.spi_in, s.spi_in, True, True)
    move = SaMove(3, 3, "tunnel", A, B, A2, B)
    bridge.dispatch([out_soft, in_soft, in_hard, SaMigrated(1, (move,), own=True),
                     SaMigrated(1, (move,)), KernelEventsLost()], 1.0)
    assert engine.calls == [("expire", s.spi_in, 3, False), ("expire", s.spi_in, 3, True)]
    k.acquire(5, A, B)
    bridge.dispatch(k.read_events(), 2.0)
    assert engine.calls[-1] == ("acquire", 5)


def test_bridge_on_the_event_loop() -> None:
    """The memory backend's pipe wakes the loop like the xfrm backend's netlink socket."""
    engine = Engine()
    k = MemoryKernel()
    flushed: list[int] = []

    async def run() -> None:
        bridge = KernelEventsBridge(k, engine, after=lambda: flushed.append(1))
        assert bridge.start()
        k.expire(spec(), hard=False)
        for _ in range(50):
            if engine.calls:
                break
            await asyncio.sleep(0.01)
        bridge.stop()

    asyncio.run(run())
    k.close()
    assert engine.calls == [("expire", 0xC0000001, 3, False)] and flushed == [1]


def test_bridge_adapts_to_the_engines_expire_signature() -> None:
    engine = EngineNoProtocol()
    bridge = KernelEventsBridge(MemoryKernel(), engine)
    bridge.dispatch([ChildSaExpired(3, 0xC0000001, 0xC0000002, False, True)], 5.0)
    assert engine.calls == [("expire", 0xC0000001, True, 5.0)]


def test_bridge_drives_the_real_engine() -> None:
    """The core's Engine.on_child_expire accepts what the bridge delivers (no CHILD_SA with
    that SPI here: it just answers False)."""
    from ikev2.config.model import EngineConfig
    from ikev2.core.engine import Engine as CoreEngine

    k = MemoryKernel()
    engine = CoreEngine(EngineConfig(), k, bytes)
    bridge = KernelEventsBridge(k, engine)
    k.expire(spec(), hard=False)
    k.acquire(1, A, B)
    bridge.dispatch(k.read_events(), 1.0)
    assert bridge.delivered >= 1
