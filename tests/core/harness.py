"""Two sans-IO engines wired together in memory, with a fake clock and a scriptable network
(loss, duplication, reordering, tampering) — no sockets (ARCHITECTURE.md)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ikev2.config.model import (
    AuthConfig,
    ChildConfig,
    ConnectionConfig,
    EngineConfig,
    Identity,
    Mode,
    TsConfig,
)
from ikev2.core.engine import Engine
from ikev2.core.events import Datagram
from ikev2.crypto.proposals import parse_proposal
from ikev2.kernel.memory import MemoryKernel
from ikev2.protocol.enums import ProtocolId
from ikev2.protocol.ts import TrafficSelector

A_ADDR, B_ADDR = "2001:db8:1::1", "2001:db8:1::2"
PSK = b"peer.sh test psk, not a secret"


def ike(*texts: str) -> tuple:
    return tuple(parse_proposal(t, ProtocolId.IKE) for t in texts)


def esp(*texts: str) -> tuple:
    return tuple(parse_proposal(t, ProtocolId.ESP) for t in texts)


def ts(*nets: str) -> tuple[TsConfig, ...]:
    return tuple(TsConfig(TrafficSelector.from_network(n)) for n in nets)


def make_conn(
    name: str = "home",
    *,
    local: str = A_ADDR,
    remote: str = B_ADDR,
    local_id: str | None = "user@example.org",
    remote_id: str | None = "gw.example.org",
    psk: bytes = PSK,
    remote_psk: bytes | None = None,
    ike_props: tuple = (),
    esp_props: tuple = (),
    local_ts: tuple = (),
    remote_ts: tuple = (),
    mode: Mode = Mode.TUNNEL,
    children: bool = True,
    **kw,
) -> ConnectionConfig:
    child = ChildConfig(
        "net",
        local_ts=local_ts or (TsConfig(dynamic=True),),
        remote_ts=remote_ts or (TsConfig(dynamic=True),),
        mode=mode,
        esp_proposals=esp_props,
    )
    kw.setdefault("local_addrs", (local,))
    return ConnectionConfig(
        name=name,
        remote_addrs=(remote,),
        local=AuthConfig(Identity.parse(local_id) if local_id else None, psk=psk),
        remote=AuthConfig(
            Identity.parse(remote_id) if remote_id else None,
            psk=remote_psk if remote_psk is not None else psk,
        ),
        ike_proposals=ike_props,
        children=(child,) if children else (),
        **kw,
    )


def mirror(conn: ConnectionConfig, **kw) -> ConnectionConfig:
    """The responder's view of `conn` (addresses, IDs and selectors swapped)."""
    c = conn.children[0] if conn.children else None
    children = (
        (ChildConfig(c.name, c.remote_ts, c.local_ts, c.mode, c.esp_proposals),) if c else ()
    )
    args = dict(
        name=conn.name,
        local_addrs=conn.remote_addrs,
        remote_addrs=conn.local_addrs,
        local=conn.remote,
        remote=conn.local,
        ike_proposals=conn.ike_proposals,
        children=children,
    )
    args.update(kw)
    return ConnectionConfig(**args)


@dataclass
class Node:
    engine: Engine
    kernel: MemoryKernel
    events: list = field(default_factory=list)

    def drain_events(self) -> list:
        while (ev := self.engine.next_event()) is not None:
            self.events.append(ev)
        return self.events

    def of(self, cls: type) -> list:
        self.drain_events()
        return [e for e in self.events if isinstance(e, cls)]


Filter = Callable[[Datagram, str], list[Datagram]]


class Pair:
    """A (initiator side) and B (responder side) joined by a lossless wire unless `filter`
    says otherwise. `wire` keeps every datagram sent, tagged with its sender."""

    def __init__(self, seed: int = 1, engine_config: EngineConfig | None = None) -> None:
        rng_a, rng_b = random.Random(seed), random.Random(seed + 1000)
        cfg = engine_config or EngineConfig()
        self.a = Node(*_node(cfg, rng_a))
        self.b = Node(*_node(cfg, rng_b))
        self.now = 1000.0
        self.wire: list[tuple[str, Datagram]] = []
        self.filter: Filter | None = None
        self.in_flight: list[tuple[str, Datagram]] = []

    def node(self, name: str) -> Node:
        return self.a if name == "a" else self.b

    def collect(self) -> None:
        for name, node in (("a", self.a), ("b", self.b)):
            for d in node.engine.datagrams_to_send():
                self.wire.append((name, d))
                out = self.filter(d, name) if self.filter else [d]
                self.in_flight.extend((name, x) for x in out)

    def deliver_all(self, max_rounds: int = 100) -> None:
        """Deliver until the wire is quiet (timers are not advanced)."""
        for _ in range(max_rounds):
            self.collect()
            if not self.in_flight:
                return
            batch, self.in_flight = self.in_flight, []
            for sender, d in batch:
                dst = self.b if sender == "a" else self.a
                dst.engine.receive_datagram(d.data, d.remote, d.local, self.now)
        raise AssertionError("message loop did not settle")

    def advance(self, seconds: float) -> None:
        """Move the clock, firing timers on both sides, delivering as we go."""
        end = self.now + seconds
        while True:
            deadlines = [
                t for t in (self.a.engine.get_timer(), self.b.engine.get_timer()) if t is not None
            ]
            nxt = min(deadlines) if deadlines else None
            if nxt is None or nxt > end:
                break
            self.now = max(self.now, nxt)
            self.a.engine.handle_timer(self.now)
            self.b.engine.handle_timer(self.now)
            self.deliver_all()
        self.now = end

    def connect(self, conn_a: ConnectionConfig, conn_b: ConnectionConfig | None = None) -> int:
        self.a.engine.load_connection(conn_a)
        self.b.engine.load_connection(conn_b or mirror(conn_a))
        ike_id = self.a.engine.initiate(conn_a.name, self.now)
        self.deliver_all()
        return ike_id


def _node(cfg: EngineConfig, rng: random.Random) -> tuple[Engine, MemoryKernel]:
    kernel = MemoryKernel(random_bytes=rng.randbytes)
    return Engine(cfg, kernel, rng.randbytes), kernel
