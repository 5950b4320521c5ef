"""MOBIKE (RFC 4555) with two engines in memory: negotiation, address lists, the
initiator's UPDATE_SA_ADDRESSES and the responder's checks, NAT appearing and going,
lost updates, return routability (REQUIREMENTS 4555-*)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ikev2.config.model import ChildConfig, Mode
from ikev2.core import mobike
from ikev2.core.events import Datagram, IkeSaAlive, IkeSaUpdated, IkeSaUpdateFailed
from ikev2.core.sa import ChildSa
from ikev2.protocol.enums import ExchangeType, NotifyType, ProtocolId
from ikev2.protocol.header import parse_header
from ikev2.protocol.payloads import Notify
from tests.core.harness import A_ADDR, B_ADDR, Pair, make_conn, mirror, ts
from tests.core.test_lifecycle import _b_id, consistent

NEW = "2001:db8:2::1"
NAT = "2001:db8:99::1"


def _up(a_addrs=(A_ADDR,), b_addrs=(B_ADDR,), **kw) -> tuple[Pair, int]:
    pair = Pair()
    pair.a.engine.set_local_addresses(list(a_addrs), pair.now)
    pair.b.engine.set_local_addresses(list(b_addrs), pair.now)
    b_conn = kw.pop("b_conn", None)
    a = make_conn(**kw)
    # the responder accepts the initiator from any address, as a HA does for its MNs
    b = b_conn if b_conn is not None else replace(mirror(a), remote_addrs=("%any",))
    ike_id = pair.connect(a, b)
    return pair, ike_id


def _infos(pair: Pair, sender: str) -> list[Datagram]:
    return [d for s, d in pair.wire
            if s == sender and parse_header(d.data).exchange == ExchangeType.INFORMATIONAL]


def test_4555_01_one_sided_mobike_is_not_used() -> None:
    pair = Pair()
    a = make_conn()
    ike_id = pair.connect(a, mirror(a, mobike=False))
    assert not pair.a.engine.by_id[ike_id].mobike
    with pytest.raises(ValueError, match="not negotiated"):
        pair.a.engine.update_addresses(ike_id, pair.now, local=NEW, mode="mobike")


def test_4555_02_mobike_floats_to_natt_without_a_nat() -> None:
    pair, ike_id = _up()
    sa = pair.a.engine.by_id[ike_id]
    assert sa.mobike and sa.local[1] == 4500 and not sa.encap


def test_4555_08_address_lists_in_ike_auth() -> None:
    pair, ike_id = _up(a_addrs=(A_ADDR, "192.0.2.1", NEW))
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    assert b_sa.peer_addrs == ("192.0.2.1", NEW)  # not the address in the header
    assert pair.a.engine.by_id[ike_id].peer_addrs == ()  # NO_ADDITIONAL_ADDRESSES


def test_4555_04_initiator_update_moves_both_sides() -> None:
    pair, ike_id = _up()
    before = {(s.spi_i, s.spi_r) for s in pair.b.engine.by_id.values()}
    pair.a.engine.update_addresses(ike_id, pair.now, local=NEW)
    pair.deliver_all()
    (upd,) = _infos(pair, "a")
    assert upd.local[0] == NEW  # sent from the new address
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    assert b_sa.remote == (NEW, 4500)
    assert {(s.spi_i, s.spi_r) for s in pair.b.engine.by_id.values()} == before
    assert {c.remote for c in pair.b.kernel.children.values()} == {NEW}
    assert {c.local for c in pair.a.kernel.children.values()} == {NEW}
    for n in (pair.a, pair.b):
        assert len(n.of(IkeSaUpdated)) == 1
    consistent(pair, children=1)
    pair.a.engine.check_liveness(ike_id, pair.now)  # the new path works
    pair.deliver_all()
    assert pair.a.engine.by_id[ike_id].pending is None


def test_4555_03_the_responder_only_announces() -> None:
    pair, _ = _up(b_addrs=(B_ADDR, "2001:db8:1::3"))
    b_id = _b_id(pair)
    with pytest.raises(ValueError, match="initiator"):
        pair.b.engine.update_addresses(b_id, pair.now, local="2001:db8:1::3", mode="mobike")
    pair.b.engine.set_local_addresses(["2001:db8:1::3"], pair.now)  # B loses B_ADDR
    pair.deliver_all()
    assert pair.b.engine.by_id[b_id].local[0] == B_ADDR  # B does not move on its own


def test_local_address_loss_triggers_the_update() -> None:
    pair, ike_id = _up(a_addrs=(A_ADDR, NEW))
    pair.a.engine.set_local_addresses([NEW], pair.now)
    pair.deliver_all()
    assert pair.a.engine.by_id[ike_id].local[0] == NEW
    assert pair.b.engine.by_id[_b_id(pair)].remote[0] == NEW
    consistent(pair, children=1)


def test_4555_09_new_address_list_replaces_the_old() -> None:
    pair, _ = _up(a_addrs=(A_ADDR, "192.0.2.1", NEW))
    pair.a.engine.set_local_addresses([A_ADDR, NEW], pair.now)
    pair.deliver_all()
    assert pair.b.engine.by_id[_b_id(pair)].peer_addrs == (NEW,)


def test_4555_17_lost_update_is_retransmitted_from_the_new_address() -> None:
    pair, ike_id = _up()
    dropped: list[Datagram] = []

    def drop_first_update(d: Datagram, s: str) -> list[Datagram]:
        if s == "a" and not dropped and parse_header(d.data).exchange == 37:
            dropped.append(d)
            return []
        return [d]

    pair.filter = drop_first_update
    pair.a.engine.update_addresses(ike_id, pair.now, local=NEW)
    pair.deliver_all()
    pair.advance(10)
    assert dropped and pair.b.engine.by_id[_b_id(pair)].remote[0] == NEW
    assert all(d.local[0] == NEW for d in _infos(pair, "a"))
    consistent(pair, children=1)


def test_4555_05_two_rapid_moves_end_on_the_last() -> None:
    pair, ike_id = _up()
    pair.a.engine.update_addresses(ike_id, pair.now, local=NEW)
    pair.a.engine.update_addresses(ike_id, pair.now, local="2001:db8:3::1")
    pair.deliver_all()
    assert pair.b.engine.by_id[_b_id(pair)].remote[0] == "2001:db8:3::1"
    assert {c.local for c in pair.a.kernel.children.values()} == {"2001:db8:3::1"}
    consistent(pair, children=1)


def test_4555_12_unacceptable_address_keeps_the_old_pair() -> None:
    a = make_conn()
    b_conn = mirror(a)  # remote_addrs = (A_ADDR,): NEW is not acceptable to B
    pair, ike_id = _up(b_conn=b_conn)
    pair.a.engine.update_addresses(ike_id, pair.now, local=NEW)
    pair.deliver_all()
    assert pair.a.engine.by_id[ike_id].local[0] == A_ADDR
    assert pair.b.engine.by_id[_b_id(pair)].remote[0] == A_ADDR
    consistent(pair, children=1)
    # the refusal is reported (the API's handover answers 502 with it), no move is
    (failed,) = pair.a.of(IkeSaUpdateFailed)
    assert failed.ike_id == ike_id and failed.notify == "UNACCEPTABLE_ADDRESSES"
    assert failed.local == (NEW, 4500) and failed.remote == (B_ADDR, 4500)
    assert "refused UPDATE_SA_ADDRESSES" in failed.reason
    assert f"stays at {A_ADDR}[4500]-{B_ADDR}[4500]" in failed.reason
    assert not pair.a.of(IkeSaUpdated) and not pair.b.of(IkeSaUpdateFailed)


def test_4555_refused_update_does_not_leave_a_folded_update_behind() -> None:
    pair, ike_id = _up(b_conn=mirror(make_conn()))
    sa = pair.a.engine.by_id[ike_id]
    pair.a.engine.update_addresses(ike_id, pair.now, local=NEW)
    pair.a.engine.update_addresses(ike_id, pair.now, local="2001:db8:3::1")  # folded in
    assert sa.update_again
    pair.deliver_all()
    assert not sa.update_again and sa.local[0] == A_ADDR
    assert len(_infos(pair, "a")) == 1  # no second UPDATE after the refusal
    assert len(pair.a.of(IkeSaUpdateFailed)) == 1


def _wide_b():
    a = make_conn()
    return replace(mirror(a), remote_addrs=("%any",))


def test_4555_06_nat_appears_and_goes() -> None:
    pair, ike_id = _up(b_conn=_wide_b())

    def nat(d: Datagram, s: str) -> list[Datagram]:
        if s == "a" and d.local[0] == NEW:  # A's packets leave through a NAT
            return [Datagram(d.data, (NAT, 4501), d.remote)]
        if s == "b" and d.remote[0] == NAT:
            return [Datagram(d.data, d.local, (NEW, 4500))]
        return [d]

    pair.filter = nat
    pair.a.engine.update_addresses(ike_id, pair.now, local=NEW)
    pair.deliver_all()
    a_sa, b_sa = pair.a.engine.by_id[ike_id], pair.b.engine.by_id[_b_id(pair)]
    assert b_sa.remote == (NAT, 4501) and b_sa.nat_remote and b_sa.encap
    assert a_sa.nat_local and a_sa.encap
    assert {c.encap for c in pair.b.kernel.children.values()} == {(4500, 4501)}
    assert {c.encap for c in pair.a.kernel.children.values()} == {(4500, 4500)}
    # and out of the NAT again
    pair.a.engine.update_addresses(ike_id, pair.now, local="2001:db8:3::1")
    pair.deliver_all()
    assert not b_sa.encap and not a_sa.encap and b_sa.remote == ("2001:db8:3::1", 4500)
    assert {c.encap for c in pair.b.kernel.children.values()} == {None}


def test_4555_11_no_nats_allowed_mismatch_is_refused() -> None:
    pair, _ = _up()
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    claimed = mobike._nat_tuple((NEW, 4500), (B_ADDR, 4500))
    assert claimed is not None
    out = mobike.handle_request(
        pair.b.engine, b_sa,
        [Notify(ProtocolId.NONE, NotifyType.UPDATE_SA_ADDRESSES),
         Notify(ProtocolId.NONE, NotifyType.NO_NATS_ALLOWED, b"", claimed)],
        (B_ADDR, 4500), (NAT, 4501), pair.now,
    )
    assert [n.type for n in out] == [NotifyType.UNEXPECTED_NAT_DETECTED]
    assert b_sa.remote[0] == A_ADDR


def test_4555_10_cookie2_not_echoed_closes_the_ike_sa() -> None:
    pair, ike_id = _up()
    sa = pair.a.engine.by_id[ike_id]
    mobike.start_update(pair.a.engine, sa, (NEW, 4500), sa.remote, pair.now)
    bad = [Notify(ProtocolId.NONE, NotifyType.COOKIE2, b"", b"x" * 16)]
    mobike._on_update_response(b"y" * 16, pair.a.engine, sa, None, bad, b"", pair.now)
    assert ike_id not in pair.a.engine.by_id


def test_4555_13_path_test_changes_nothing() -> None:
    pair, _ = _up()
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    probe = [Notify(ProtocolId.NONE, NotifyType.COOKIE2, b"", b"c" * 8),
             Notify(ProtocolId.NONE, NotifyType.NAT_DETECTION_SOURCE_IP, b"", b"\0" * 20),
             Notify(ProtocolId.NONE, NotifyType.NAT_DETECTION_DESTINATION_IP, b"", b"\0" * 20)]
    out = mobike.handle_request(pair.b.engine, b_sa, probe, (B_ADDR, 4500), (NEW, 4500),
                                pair.now)
    assert b_sa.remote[0] == A_ADDR
    assert NotifyType.COOKIE2 in [n.type for n in out]
    assert NotifyType.NAT_DETECTION_SOURCE_IP in [n.type for n in out]


def test_4555_16_new_child_after_a_move_uses_the_new_addresses() -> None:
    pair, ike_id = _up()
    a_conn = pair.a.engine.connections["home"]
    extra = ChildConfig("net2", ts("2001:db8:a::/64"), ts("2001:db8:b::/64"))
    pair.a.engine.load_connection(replace(a_conn, children=(*a_conn.children, extra)))
    pair.a.engine.by_id[ike_id].conn = pair.a.engine.connections["home"]
    b_conn = pair.b.engine.connections["home"]
    b_extra = ChildConfig("net2", ts("2001:db8:b::/64"), ts("2001:db8:a::/64"))
    pair.b.engine.load_connection(replace(b_conn, children=(*b_conn.children, b_extra)))
    pair.b.engine.by_id[_b_id(pair)].conn = pair.b.engine.connections["home"]
    pair.a.engine.update_addresses(ike_id, pair.now, local=NEW)
    pair.deliver_all()
    pair.a.engine.create_child(ike_id, "net2", pair.now)
    pair.deliver_all()
    assert {c.local for c in pair.a.kernel.children.values()} == {NEW}
    consistent(pair, children=2)


def test_reauthentication_after_a_move_starts_from_the_new_address() -> None:
    """A reauthentication (RFC 7296 §2.8.3, make-before-break) after a MOBIKE move starts
    the new IKE SA where the old one is now, not from the configured/routed source; the
    responder's remote_addrs must allow it (B takes any). With local_addrs naming only the
    old address, the configured one is used."""
    for local_addrs, want in (((A_ADDR, NEW), NEW), ((A_ADDR,), A_ADDR)):
        pair, ike_id = _up(a_addrs=(A_ADDR, NEW), local_addrs=local_addrs)
        assert pair.a.engine.by_id[ike_id].local[0] == A_ADDR
        pair.a.engine.update_addresses(ike_id, pair.now, local=NEW)
        pair.deliver_all()
        assert pair.a.engine.by_id[ike_id].local[0] == NEW
        new_id = pair.a.engine.reauthenticate(ike_id, pair.now)
        pair.deliver_all()
        assert ike_id not in pair.a.engine.by_id
        sa = pair.a.engine.by_id[new_id]
        assert sa.local[0] == want and sa.state.value == "ESTABLISHED", local_addrs
        consistent(pair, children=1)


HOA = "2001:db8:aaaa::1"


def _hoa_bound() -> tuple[Pair, int]:
    """A (the MN) with a BU/BA-style transport child "bu" bound to HOA and a tunnel child
    "net"; B accepts it from any address, as a HA does."""
    bu = ChildConfig("bu", ts(f"{HOA}/128"), ts(f"{B_ADDR}/128"), mode=Mode.TRANSPORT)
    bu_b = ChildConfig("bu", ts(f"{B_ADDR}/128"), ts(f"{HOA}/128"), mode=Mode.TRANSPORT)
    a = make_conn()
    a = replace(a, children=(bu, *a.children))
    b = replace(mirror(make_conn()), children=(bu_b, *mirror(make_conn()).children),
                remote_addrs=("%any",))
    pair = Pair()
    pair.a.engine.set_local_addresses([A_ADDR], pair.now)
    ike_id = pair.connect(a, b)
    pair.a.engine.create_child(ike_id, "net", pair.now)
    pair.deliver_all()
    return pair, ike_id


def test_4555_14_hoa_bound_transport_sa_stays() -> None:
    """A BU/BA-style transport SA between the HoA and the HA does not follow the CoA
    (REQUIREMENTS 4555-14, 4877-06); the tunnel SA does."""
    pair, ike_id = _hoa_bound()
    children = pair.a.engine.by_id[ike_id].children.values()
    outer = {c.config.name: c.spec.local for c in children}
    assert outer == {"bu": HOA, "net": A_ADDR}
    pair.a.engine.update_addresses(ike_id, pair.now, local=NEW)
    pair.deliver_all()
    children = pair.a.engine.by_id[ike_id].children.values()
    outer = {c.config.name: c.spec.local for c in children}
    assert outer == {"bu": HOA, "net": NEW}
    consistent(pair, children=2)


def test_4877_hoa_bound_sa_leaves_no_spi_reserved_at_the_ike_address() -> None:
    """The inbound SPI is reserved at the IKE address (ALLOCSPI: a larval SA in the xfrm
    backend), but a transport SA bound to the HoA is installed at the HoA: the reservation
    is released at once, as initiator and as responder of a rekey too, and nothing is
    left after the delete (the qemu guest check mip6_kbit_handover_xfrm_ping found the
    larval SA at the CoA staying until the kernel expired it, 30 s)."""
    pair, ike_id = _hoa_bound()

    def at_ike() -> set[int]:
        return {spi for addr, spi in pair.a.kernel.spis if addr == A_ADDR}

    def child(node: str, name: str) -> ChildSa:
        (sa,) = getattr(pair, node).engine.by_id.values()
        return next(c for c in sa.children.values() if c.config.name == name)

    net = child("a", "net").spec.spi_in
    assert at_ike() == {net} and child("a", "bu").spec.local == HOA
    for node in ("a", "b"):  # A rekeys as initiator, then as responder
        old = child("a", "bu").spec.spi_in
        rekeyer = getattr(pair, node).engine
        rekeyer.rekey_child(next(iter(rekeyer.by_id)), child(node, "bu").child_id, pair.now)
        pair.deliver_all()
        assert child("a", "bu").spec.spi_in != old and child("a", "bu").spec.local == HOA
        assert at_ike() == {net}, node
    pair.a.engine.terminate(ike_id, pair.now)
    pair.deliver_all()
    assert not pair.a.kernel.spis and not pair.b.kernel.spis


def test_x07_kernel_migrate_by_another_daemon_moves_the_ike_sa() -> None:
    """UMIP-style MIGRATE with KMADDRESS: records and IKE SA follow, the kernel is not
    migrated again (REQUIREMENTS X-07, 4877 K bit)."""
    from ikev2.kernel.base import SaMigrated, SaMove

    pair, ike_id = _up()
    sa = pair.a.engine.by_id[ike_id]
    (c,) = sa.children.values()
    move = SaMove(c.spec.reqid, 0, "tunnel", A_ADDR, B_ADDR, NEW, B_ADDR)
    own = SaMigrated(0, (move,), own=True)
    assert pair.a.engine.on_kernel_migrate(own, pair.now) == 0
    event = SaMigrated(0, (move,), km_local=NEW, km_remote=B_ADDR)
    assert pair.a.engine.on_kernel_migrate(event, pair.now) == 1
    assert sa.local[0] == NEW and c.spec.local == NEW
    assert not pair.a.kernel.migrations  # the kernel already did it
    (ev,) = pair.a.of(IkeSaUpdated)
    assert ev.old_local[0] == A_ADDR


def _mip6d(pair: Pair, node: str, old: tuple[str, str], new: tuple[str, str],
           reqid: int | None = None) -> None:
    """UMIP's mip6d migrated this node's SAs (one XFRM_MSG_MIGRATE per policy: out, in,
    fwd, with XFRMA_KMADDRESS = `new`): the kernel's notifications, read through the
    kernel port and the events bridge as the daemon does."""
    from ikev2.kernel.base import SaMigrated, SaMove
    from ikev2.kernel.events_bridge import KernelEventsBridge

    n = getattr(pair, node)
    (sa,) = n.engine.by_id.values()
    (c,) = sa.children.values()
    r = c.spec.reqid if reqid is None else reqid
    move = SaMove(r, r if reqid is None else 7, "tunnel", *old, *new)
    for direction in (1, 0, 2):
        n.kernel.inject(SaMigrated(direction, (move,), km_local=new[0], km_remote=new[1]))
    KernelEventsBridge(n.kernel, n.engine).dispatch(n.kernel.read_events(), pair.now)


def test_x07_foreign_migrate_on_both_ends_then_ike_and_rekey_on_the_new_path(
        caplog: pytest.LogCaptureFixture) -> None:
    """A K-bit handover made by mip6d on both ends (REQUIREMENTS X-07): the kernel records
    (the memory backend follows the notification as the xfrm one does), the CHILD_SAs and
    the IKE SAs move once, nothing is migrated by ikev2d, and IKE works on the new path: a
    liveness check, then a CHILD_SA rekey whose new SAs are at the new address while the
    moved ones are removed from the kernel (the qemu check daemons_foreign_migrate_kmaddress
    found them left behind). A migrate of SAs that are not ours (reqid 0 in the core)
    moves nothing and says so."""
    pair, ike_id = _up(mobike=False)
    sa = pair.a.engine.by_id[ike_id]
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    spis = (sa.spi_i, sa.spi_r)
    with caplog.at_level("INFO"):
        _mip6d(pair, "a", (A_ADDR, B_ADDR), (NEW, B_ADDR))
        _mip6d(pair, "b", (B_ADDR, A_ADDR), (B_ADDR, NEW))
    assert sa.local[0] == NEW and b_sa.remote[0] == NEW and (sa.spi_i, sa.spi_r) == spis
    assert len(pair.a.of(IkeSaUpdated)) == len(pair.b.of(IkeSaUpdated)) == 1
    assert not pair.a.kernel.migrations and not pair.b.kernel.migrations
    assert caplog.text.count("XFRM_MSG_MIGRATE by another daemon (policy ") == 6
    assert caplog.text.count("follows a kernel migrate") == 2
    consistent(pair, children=1)  # each kernel holds the CHILD_SA at its new address
    pair.a.engine.check_liveness(ike_id, pair.now)
    pair.deliver_all()
    assert len(pair.a.of(IkeSaAlive)) == 1
    (c,) = sa.children.values()
    pair.a.engine.rekey_child(ike_id, c.child_id, pair.now)
    pair.deliver_all()
    (new_c,) = sa.children.values()
    assert new_c.spec.spi_in != c.spec.spi_in and new_c.spec.local == NEW
    consistent(pair, children=1)  # the moved SAs are gone from both kernels
    assert set(pair.a.kernel.children) == {(NEW, new_c.spec.spi_in)}
    assert {d.local[0] for s, d in pair.wire[-4:] if s == "a"} == {NEW}
    caplog.clear()
    with caplog.at_level("INFO"):
        _mip6d(pair, "a", (NEW, B_ADDR), ("2001:db8:2::2", B_ADDR), reqid=0)
    assert sa.local[0] == NEW and new_c.spec.local == NEW
    assert "reqid 0x7: not ikev2d's SAs, nothing follows" in caplog.text
    consistent(pair, children=1)


def test_4555_04_address_coming_back_after_none_moves_the_sa() -> None:
    pair, ike_id = _up()
    pair.a.engine.set_local_addresses([], pair.now)  # all gone: wait
    pair.deliver_all()
    assert pair.a.engine.by_id[ike_id].local[0] == A_ADDR
    pair.a.engine.set_local_addresses([NEW], pair.now)
    pair.deliver_all()
    assert pair.a.engine.by_id[ike_id].local[0] == NEW
    assert pair.b.engine.by_id[_b_id(pair)].remote[0] == NEW


def test_choose_path_prefers_the_routed_source() -> None:
    pair, ike_id = _up(a_addrs=(A_ADDR, "2001:db8:7::1", NEW))
    pair.a.engine.source_for = lambda peer: NEW
    pair.a.engine.set_local_addresses(["2001:db8:7::1", NEW], pair.now)
    pair.deliver_all()
    assert pair.a.engine.by_id[ike_id].local[0] == NEW


def _natted(port: list[int]):
    def nat(d: Datagram, s: str) -> list[Datagram]:
        if s == "a":
            return [Datagram(d.data, (NAT, d.local[1] + port[0]), d.remote)]
        if s == "b" and d.remote[0] == NAT:
            return [Datagram(d.data, d.local, (A_ADDR, d.remote[1] - port[0]))]
        return [d]
    return nat


def test_7296_75_rebound_nat_is_followed_without_mobike() -> None:
    pair = Pair()
    port = [1]
    pair.filter = _natted(port)
    a = make_conn(mobike=False)
    b = replace(mirror(a), remote_addrs=("%any",))
    ike_id = pair.connect(a, b)
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    assert b_sa.nat_remote and b_sa.remote == (NAT, 4501)
    port[0] = 277  # the NAT rebinds: new source port
    pair.a.engine.check_liveness(ike_id, pair.now)
    pair.deliver_all()
    assert b_sa.remote == (NAT, 4777)
    assert {c.encap for c in pair.b.kernel.children.values()} == {(4500, 4777)}
    assert pair.a.engine.by_id[ike_id].pending is None


def test_4555_15_with_mobike_the_responder_does_not_follow_implicitly() -> None:
    pair = Pair()
    port = [1]
    pair.filter = _natted(port)
    a = make_conn()
    b = replace(mirror(a), remote_addrs=("%any",))
    ike_id = pair.connect(a, b)
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    port[0] = 277
    pair.a.engine.check_liveness(ike_id, pair.now)
    pair.deliver_all()
    assert b_sa.remote == (NAT, 4501)


def test_kernel_nat_mapping_event_moves_the_encapsulation() -> None:
    from ikev2.kernel.base import NatMappingChanged

    pair = Pair()
    pair.filter = _natted([1])
    a = make_conn(mobike=False)
    b = replace(mirror(a), remote_addrs=("%any",))
    pair.connect(a, b)
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    (c,) = b_sa.children.values()
    ev = NatMappingChanged(c.spec.reqid, c.spec.spi_in, (NAT, 4501), (NAT, 5000))
    assert pair.b.engine.on_nat_mapping(ev, pair.now)
    assert b_sa.remote == (NAT, 5000) and c.spec.encap == (4500, 5000)
