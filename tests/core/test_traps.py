"""Trap policies and on-demand CHILD_SAs (start_action = "trap"; dpd_action = "hold"):
traffic → ACQUIRE → IKE SA and CHILD_SA, which take over the trap's reqid (RFC 4301 §5.2)."""

from __future__ import annotations

from dataclasses import replace

from ikev2.config.model import ChildConfig, DpdAction, RetransmitConfig, StartAction
from ikev2.core.events import ChildSaEstablished, IkeSaDeleted, IkeSaEstablished
from tests.core.harness import Pair, make_conn, mirror, ts
from tests.core.test_lifecycle import consistent


def _trapped(**kw):
    a = make_conn(**kw)
    a = replace(a, children=tuple(replace(c, start_action=StartAction.TRAP)
                                  for c in a.children))
    return a, mirror(a)


def test_trap_installs_policies_and_acquire_brings_the_sa_up() -> None:
    pair = Pair()
    a, b = _trapped()
    pair.a.engine.load_connection(a)
    pair.b.engine.load_connection(b)
    (reqid,) = pair.a.kernel.traps
    assert not pair.a.engine.by_id  # nothing until traffic
    assert pair.a.engine.on_acquire(reqid, pair.now)
    assert pair.a.engine.on_acquire(reqid, pair.now)  # a second ACQUIRE: already underway
    pair.deliver_all()
    consistent(pair, children=1)
    (sa,) = pair.a.engine.by_id.values()
    (child,) = sa.children.values()
    assert child.spec.reqid == reqid  # takes over the trap's policies
    assert not pair.a.engine.on_acquire(reqid + 100, pair.now)
    pair.a.engine.terminate(sa.ike_id, pair.now)
    pair.deliver_all()
    assert reqid in pair.a.kernel.traps  # the trap stays for the next traffic
    pair.a.engine.unload_connection("home")
    assert not pair.a.kernel.traps


def test_acquire_for_a_second_child_on_a_live_ike_sa() -> None:
    pair = Pair()
    a, b = _trapped()
    extra_a = ChildConfig("net2", ts("2001:db8:a::/64"), ts("2001:db8:b::/64"),
                          start_action=StartAction.TRAP)
    extra_b = ChildConfig("net2", ts("2001:db8:b::/64"), ts("2001:db8:a::/64"))
    a = replace(a, children=(*a.children, extra_a))
    b = replace(b, children=(*b.children, extra_b))
    pair.a.engine.load_connection(a)
    pair.b.engine.load_connection(b)
    net2 = pair.a.engine.trap_reqids[("home", "net2")]
    pair.a.engine.on_acquire(net2, pair.now)  # the IKE SA comes up with net2 first
    pair.deliver_all()
    (sa,) = pair.a.engine.by_id.values()
    assert [c.config.name for c in sa.children.values()] == ["net2"]
    net = pair.a.engine.trap_reqids[("home", "net")]
    pair.a.engine.on_acquire(net, pair.now)
    pair.deliver_all()
    consistent(pair, children=2)
    assert len(pair.a.of(ChildSaEstablished)) == 2


def test_dpd_hold_traps_the_connection_and_traffic_restores_it() -> None:
    rt = RetransmitConfig(timeout=1.0, base=2.0, tries=2, max_interval=4.0)
    pair = Pair()
    a = make_conn(dpd_delay=5.0, dpd_action=DpdAction.HOLD, retransmit=rt)
    pair.connect(a, mirror(a))
    assert not pair.a.kernel.traps
    pair.filter = lambda d, s: [] if s == "b" else [d]
    for _ in range(60):
        pair.advance(0.5)
        if pair.a.of(IkeSaDeleted):
            break
    pair.filter = None
    assert not pair.a.engine.by_id and not pair.a.kernel.children
    (reqid,) = pair.a.kernel.traps  # held
    pair.a.engine.on_acquire(reqid, pair.now)
    pair.deliver_all()
    assert len(pair.a.of(IkeSaEstablished)) == 2
