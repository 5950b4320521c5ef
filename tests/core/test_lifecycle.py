"""The IKE/CHILD SA lifecycle with two engines in memory: CREATE_CHILD_SA (RFC 7296 §1.3),
CHILD and IKE rekeying with collisions (§2.8, §2.8.1, §2.8.2, §2.25), liveness (§2.4),
lifetimes, cookies and per-address limits (§2.6), SET_WINDOW_SIZE (§2.3).

Collision scenarios re-expressed from the cases strongSwan's rekey suites cover (both
sides rekey at once; rekey against delete; IKE rekey against CHILD rekey; the losing and
the winning side), checked with several seeds so both nonce orders occur."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ikev2.config.model import ChildConfig, DpdAction, EngineConfig, RetransmitConfig
from ikev2.core import child as childmod
from ikev2.core.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    ChildSaRekeyed,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaRekeyed,
)
from ikev2.core.sa import IkeState
from ikev2.protocol.codec import parse_message
from ikev2.protocol.enums import ExchangeType, NotifyType, ProtocolId
from ikev2.protocol.header import parse_header
from ikev2.protocol.payloads import Notify
from tests.core.harness import Pair, esp, make_conn, mirror, ts

SEEDS = range(1, 9)


def _conns(esp_props=(), extra: bool = False, b_esp=None, **conn_kw):
    """A's connection and B's mirror; `extra` adds a second child "net2"."""
    a = make_conn(esp_props=esp_props, **conn_kw)
    b = mirror(a, **{k: v for k, v in conn_kw.items() if k != "retransmit"})
    if b_esp is not None:
        b = replace(b, children=tuple(replace(c, esp_proposals=b_esp) for c in b.children))
    if extra:
        c2a = ChildConfig("net2", ts("2001:db8:a::/64"), ts("2001:db8:b::/64"),
                          esp_proposals=esp_props)
        c2b = ChildConfig("net2", ts("2001:db8:b::/64"), ts("2001:db8:a::/64"),
                          esp_proposals=b_esp if b_esp is not None else esp_props)
        a = replace(a, children=(*a.children, c2a))
        b = replace(b, children=(*b.children, c2b))
    return a, b


def _up(seed: int = 1, engine_config: EngineConfig | None = None, **kw) -> tuple[Pair, int]:
    pair = Pair(seed, engine_config)
    a, b = _conns(**kw)
    ike_id = pair.connect(a, b)
    assert pair.a.of(IkeSaEstablished) and pair.b.of(IkeSaEstablished)
    return pair, ike_id


def _b_id(pair: Pair) -> int:
    (b_id,) = pair.b.engine.by_id
    return b_id


def consistent(pair: Pair, *, ikes: int = 1, children: int | None = None) -> None:
    """Both sides agree on every IKE SA (SPIs) and CHILD_SA (SPIs mirrored, keys
    matching), and each memory kernel holds exactly the CHILD_SAs the engine has."""
    a_sas = [s for s in pair.a.engine.by_id.values()]
    b_sas = [s for s in pair.b.engine.by_id.values()]
    assert len(a_sas) == len(b_sas) == ikes, (a_sas, b_sas)
    for sa in a_sas:
        assert sa.state == IkeState.ESTABLISHED
        peer = next(s for s in b_sas if (s.spi_i, s.spi_r) == (sa.spi_i, sa.spi_r))
        assert peer.initiator != sa.initiator
        assert peer.state == IkeState.ESTABLISHED
        a_children = sorted(sa.children.values(), key=lambda c: c.spec.spi_in)
        if children is not None:
            assert len(a_children) == children
        assert len(peer.children) == len(a_children)
        for c in a_children:
            m = next(x for x in peer.children.values() if x.spec.spi_in == c.spec.spi_out)
            assert m.spec.spi_out == c.spec.spi_in
            assert m.spec.encr_key_in == c.spec.encr_key_out
            assert m.spec.encr_key_out == c.spec.encr_key_in
            assert m.spec.integ_key_in == c.spec.integ_key_out
            assert c.state.value == m.state.value == "INSTALLED"
    for node, sas in ((pair.a, a_sas), (pair.b, b_sas)):
        specs = {(c.spec.local, c.spec.spi_in) for s in sas for c in s.children.values()}
        assert set(node.kernel.children) == specs
        # every surviving CHILD_SA sends (a rekey responder's waits only for the Delete)
        for c in (c for s in sas for c in s.children.values()):
            assert c.outbound and node.kernel.has_outbound(c.spec), c


def _exchanges(pair: Pair, sender: str, exchange: int) -> list[bytes]:
    return [d.data for s, d in pair.wire
            if s == sender and parse_header(d.data).exchange == exchange]


# -- CREATE_CHILD_SA ------------------------------------------------------------------------
def test_7296_29_create_additional_child_without_pfs() -> None:
    pair, ike_id = _up(extra=True)
    pair.a.engine.create_child(ike_id, "net2", pair.now)
    pair.deliver_all()
    consistent(pair, children=2)
    names = sorted(c.config.name for c in pair.b.engine.by_id[_b_id(pair)].children.values())
    assert names == ["net", "net2"]
    assert len(pair.a.of(ChildSaEstablished)) == 2 and len(pair.b.of(ChildSaEstablished)) == 2


def test_7296_56_pfs_child_keys_match_and_use_a_fresh_dh() -> None:
    pair, ike_id = _up(extra=True, esp_props=esp("aes128gcm16-x25519"))
    pair.a.engine.create_child(ike_id, "net2", pair.now)
    pair.deliver_all()
    consistent(pair, children=2)
    a_sa = pair.a.engine.by_id[ike_id]
    net2 = next(c for c in a_sa.children.values() if c.config.name == "net2")
    assert net2.suite.endswith("x25519") or "x25519" in net2.suite
    # the first CHILD_SA came from IKE_AUTH, where no DH is negotiated (§1.2)
    net = next(c for c in a_sa.children.values() if c.config.name == "net")
    assert "x25519" not in net.suite


def test_7296_49_pfs_invalid_ke_retry_with_the_peers_group() -> None:
    pair, ike_id = _up(extra=True, esp_props=esp("aes128gcm16-x25519-ecp256"),
                       b_esp=esp("aes128gcm16-ecp256"))
    pair.a.engine.create_child(ike_id, "net2", pair.now)
    pair.deliver_all()
    consistent(pair, children=2)
    ccs = _exchanges(pair, "a", ExchangeType.CREATE_CHILD_SA)
    assert len(ccs) == 2  # x25519 refused with INVALID_KE_PAYLOAD, then ecp256
    assert not pair.a.of(ChildSaFailed)


def test_create_child_ts_unacceptable_keeps_ike_sa() -> None:
    pair, ike_id = _up()
    a_conn = pair.a.engine.connections["home"]
    odd = ChildConfig("odd", ts("2001:db8:99::/64"), ts("2001:db8:98::/64"))
    pair.a.engine.load_connection(replace(a_conn, children=(*a_conn.children, odd)))
    pair.a.engine.by_id[ike_id].conn = pair.a.engine.connections["home"]
    pair.a.engine.create_child(ike_id, "odd", pair.now)
    pair.deliver_all()
    failed = pair.a.of(ChildSaFailed)
    assert failed and failed[-1].notify == "TS_UNACCEPTABLE"
    consistent(pair, children=1)


def test_7296_37_window_one_queues_the_second_request() -> None:
    pair, ike_id = _up(extra=True)
    pair.a.engine.create_child(ike_id, "net2", pair.now)
    pair.a.engine.rekey_child(ike_id, next(iter(pair.a.engine.by_id[ike_id].children)),
                              pair.now)
    pair.collect()
    sent = [d for s, d in pair.in_flight if s == "a"]
    assert len(sent) == 1  # the rekey waits for the first response
    pair.deliver_all()
    consistent(pair, children=2)


def test_7296_39_duplicated_create_child_request_makes_one_child() -> None:
    pair, ike_id = _up(extra=True)
    pair.filter = lambda d, s: [d, d]
    pair.a.engine.create_child(ike_id, "net2", pair.now)
    pair.deliver_all()
    consistent(pair, children=2)
    responses = _exchanges(pair, "b", ExchangeType.CREATE_CHILD_SA)
    assert len(responses) == 2 and responses[0] == responses[1]


# -- CHILD_SA rekey -------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["a", "b"])
def test_7296_64_child_rekey_by_either_side(who: str) -> None:
    pair, ike_id = _up()
    node = pair.node(who)
    sa = node.engine.by_id[ike_id if who == "a" else _b_id(pair)]
    (old,) = sa.children.values()
    node.engine.rekey_child(sa.ike_id, old.child_id, pair.now)
    pair.deliver_all()
    consistent(pair, children=1)
    (new,) = sa.children.values()
    assert new.spec.spi_in != old.spec.spi_in and new.spec.reqid == old.spec.reqid
    assert new.spec.local_ts == old.spec.local_ts  # 7296-69
    for n in (pair.a, pair.b):
        (ev,) = n.of(ChildSaRekeyed)
        assert ev.child.spi_in in {new.spec.spi_in, new.spec.spi_out}
        assert n.of(ChildSaDeleted)


@pytest.mark.parametrize("who", ["a", "b"])
def test_7296_64_rekey_responder_sends_on_the_old_sa_until_its_delete(who: str) -> None:
    """§2.8: the responder installs the new inbound SA at once but keeps sending on the
    old SA until the initiator, which installs both directions on the response, deletes
    the old one; then the new outbound SA goes in before the old pair goes out."""
    pair, ike_id = _up()
    ini, resp = pair.node(who), pair.node("b" if who == "a" else "a")
    i_sa = ini.engine.by_id[ike_id if who == "a" else _b_id(pair)]
    (r_sa,) = resp.engine.by_id.values()
    (old_r,) = r_sa.children.values()
    ini.engine.rekey_child(i_sa.ike_id, next(iter(i_sa.children)), pair.now)
    pair.collect()
    (request,) = pair.in_flight
    pair.in_flight.clear()
    resp.engine.receive_datagram(request[1].data, request[1].remote, request[1].local, pair.now)
    new_r = next(c for c in r_sa.children.values() if c is not old_r)
    assert (new_r.spec.local, new_r.spec.spi_in) in resp.kernel.children  # receives
    assert not new_r.outbound and not resp.kernel.has_outbound(new_r.spec)
    assert resp.kernel.has_outbound(old_r.spec)  # still sends on the old SA
    pair.collect()
    (response,) = pair.in_flight
    pair.in_flight.clear()
    ini.engine.receive_datagram(response[1].data, response[1].remote, response[1].local,
                                pair.now)
    new_i = next(c for c in i_sa.children.values() if c.spec.spi_out == new_r.spec.spi_in)
    assert new_i.outbound and ini.kernel.has_outbound(new_i.spec)  # initiator: at once
    assert not resp.kernel.has_outbound(new_r.spec)  # the Delete is still on its way
    pair.deliver_all()
    assert old_r.state.value == "DELETED" and new_r.outbound
    assert resp.kernel.has_outbound(new_r.spec)
    consistent(pair, children=1)


def test_7296_64_rekey_responder_sends_when_the_peer_never_deletes() -> None:
    """An initiator that never deletes the old SA: after the grace we delete it, and the
    new outbound SA goes in first."""
    pair, ike_id = _up()
    (old,) = pair.a.engine.by_id[ike_id].children.values()
    pair.filter = lambda d, sender: [] if (
        sender == "a" and parse_header(d.data).exchange == ExchangeType.INFORMATIONAL) else [d]
    pair.a.engine.rekey_child(ike_id, old.child_id, pair.now)
    pair.deliver_all()
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    (old_b,) = [c for c in b_sa.children.values() if c.outbound]
    pending = [c for c in b_sa.children.values() if not c.outbound]
    assert len(pending) == 1 and len(b_sa.children) == 2
    pair.advance(childmod.lifetimes.REKEYED_GRACE + 1)  # A's Deletes still all lost
    assert pending[0].outbound and pair.b.kernel.has_outbound(pending[0].spec)
    assert b_sa.children[old_b.child_id].state.value == "DELETING"  # our Delete, unanswered
    pair.filter = None
    pair.advance(120)
    consistent(pair, children=1)


def test_child_rekey_with_pfs() -> None:
    pair, ike_id = _up(esp_props=esp("aes256gcm16-ecp256"))
    (old,) = pair.a.engine.by_id[ike_id].children.values()
    pair.a.engine.rekey_child(ike_id, old.child_id, pair.now)
    pair.deliver_all()
    consistent(pair, children=1)


@pytest.mark.parametrize("seed", SEEDS)
def test_7296_65_simultaneous_child_rekey(seed: int) -> None:
    pair, ike_id = _up(seed)
    a_sa, b_sa = pair.a.engine.by_id[ike_id], pair.b.engine.by_id[_b_id(pair)]
    (ca,), (cb,) = a_sa.children, b_sa.children
    pair.a.engine.rekey_child(ike_id, ca, pair.now)
    pair.b.engine.rekey_child(b_sa.ike_id, cb, pair.now)
    pair.deliver_all()
    pair.advance(60)
    consistent(pair, children=1)
    # exactly one of the two new pairs survives, the same one on both ends
    (new_a,) = a_sa.children.values()
    assert new_a.child_id not in (ca,)


@pytest.mark.parametrize("seed", SEEDS)
def test_7296_65_collision_where_one_response_overtakes(seed: int) -> None:
    """A's request reaches B only after B's whole rekey finished (B never sees a
    collision): A must get TEMPORARY_FAILURE and end up with B's new pair."""
    pair, ike_id = _up(seed)
    a_sa, b_sa = pair.a.engine.by_id[ike_id], pair.b.engine.by_id[_b_id(pair)]
    (ca,), (cb,) = a_sa.children, b_sa.children
    pair.a.engine.rekey_child(ike_id, ca, pair.now)
    pair.collect()
    held = list(pair.in_flight)
    pair.in_flight.clear()
    pair.b.engine.rekey_child(b_sa.ike_id, cb, pair.now)
    pair.deliver_all()
    pair.in_flight.extend(held)
    pair.deliver_all()
    pair.advance(60)
    consistent(pair, children=1)


def test_7296_68_rekey_against_delete() -> None:
    pair, ike_id = _up()
    a_sa, b_sa = pair.a.engine.by_id[ike_id], pair.b.engine.by_id[_b_id(pair)]
    (ca,), (cb,) = a_sa.children, b_sa.children
    pair.a.engine.rekey_child(ike_id, ca, pair.now)
    pair.b.engine.terminate_child(b_sa.ike_id, cb, pair.now)
    pair.deliver_all()
    pair.advance(60)
    consistent(pair, children=0)
    tf = [p for d in _exchanges(pair, "b", ExchangeType.CREATE_CHILD_SA)
          for p in _decrypt(pair, "b", d) if isinstance(p, Notify)]
    assert any(n.type == NotifyType.TEMPORARY_FAILURE for n in tf)


def _decrypt(pair: Pair, sender: str, data: bytes) -> list:
    from ikev2.protocol.sk import unprotect

    h = parse_header(data)
    node = pair.a if sender == "b" else pair.b
    for sa in list(node.engine.by_id.values()):
        if (sa.spi_i, sa.spi_r) == (h.spi_i, h.spi_r):
            return unprotect(data, h, sa.crypter_in)
    return []


def test_7296_31_rekey_of_unknown_child_gets_child_sa_not_found() -> None:
    pair, ike_id = _up()
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    (cb,) = b_sa.children.values()
    childmod.remove(pair.b.engine, b_sa, cb, "test: B forgets it")
    (ca,) = pair.a.engine.by_id[ike_id].children
    pair.a.engine.rekey_child(ike_id, ca, pair.now)
    pair.deliver_all()
    # A silently dropped the SA and made a new one from scratch (§2.25)
    consistent(pair, children=1)
    assert pair.a.engine.by_id[ike_id].state == IkeState.ESTABLISHED


def test_delete_of_nonexistent_child_is_answered() -> None:
    from ikev2.core import informational

    pair, ike_id = _up()
    informational.delete_spis(pair.a.engine, pair.a.engine.by_id[ike_id], [0xDEADBEEF],
                              pair.now)
    pair.deliver_all()
    consistent(pair, children=1)


# -- IKE SA rekey ---------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["a", "b"])
def test_7296_67_ike_rekey_by_either_side_keeps_children(who: str) -> None:
    pair, ike_id = _up(extra=True)
    pair.a.engine.create_child(ike_id, "net2", pair.now)
    pair.deliver_all()
    node = pair.node(who)
    old = node.engine.by_id[ike_id if who == "a" else _b_id(pair)]
    child_ids = set(old.children)
    node.engine.rekey_ike(old.ike_id, pair.now)
    pair.deliver_all()
    consistent(pair, children=2)
    (new,) = node.engine.by_id.values()
    assert new.ike_id != old.ike_id and set(new.children) == child_ids
    assert new.initiator  # the rekey initiator is the new SA's original initiator
    for n in (pair.a, pair.b):
        assert n.of(IkeSaRekeyed) and not n.of(IkeSaDeleted)
    # the new IKE SA works: rekey a child over it
    node.engine.rekey_child(new.ike_id, next(iter(new.children)), pair.now)
    pair.deliver_all()
    consistent(pair, children=2)


@pytest.mark.parametrize("seed", SEEDS)
def test_7296_66_simultaneous_ike_rekey(seed: int) -> None:
    pair, ike_id = _up(seed)
    pair.a.engine.rekey_ike(ike_id, pair.now)
    pair.b.engine.rekey_ike(_b_id(pair), pair.now)
    pair.deliver_all()
    pair.advance(60)
    consistent(pair, children=1)


def test_7296_68_ike_rekey_against_child_rekey() -> None:
    pair, ike_id = _up()
    (ca,) = pair.a.engine.by_id[ike_id].children
    pair.a.engine.rekey_child(ike_id, ca, pair.now)
    pair.b.engine.rekey_ike(_b_id(pair), pair.now)
    pair.deliver_all()
    pair.advance(120)
    consistent(pair, children=1)
    for n in (pair.a, pair.b):
        assert n.of(IkeSaRekeyed) and n.of(ChildSaRekeyed)


def test_7296_30_ike_rekey_without_ke_is_invalid_syntax() -> None:
    from ikev2.core import ike_rekey
    from ikev2.errors import InvalidSyntax
    from ikev2.protocol.payloads import SA, Nonce

    pair, _ = _up()
    b_sa = pair.b.engine.by_id[_b_id(pair)]
    sa_p = SA(ike_rekey.to_proposals(ike_rekey._proposals(b_sa), ProtocolId.IKE, b"\1" * 8))
    with pytest.raises(InvalidSyntax):
        ike_rekey.handle_request(pair.b.engine, b_sa, sa_p, Nonce(b"n" * 32), None, pair.now)


# -- lifetimes ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_7296_63_lifetimes_rekey_children_and_ike_sa(seed: int) -> None:
    pair = Pair(seed)
    a, b = _conns()
    a = replace(a, rekey_time=300.0, children=tuple(
        replace(c, rekey_time=100.0) for c in a.children))
    b = replace(b, rekey_time=300.0, children=tuple(
        replace(c, rekey_time=100.0) for c in b.children))
    pair.connect(a, b)
    (first,) = pair.a.engine.by_id.values()
    (child,) = first.children.values()
    assert child.rekey_at is not None and 1000 + 90 <= child.rekey_at <= 1000 + 100
    assert child.expire_at == pytest.approx(1000 + 110)
    pair.advance(1000)
    consistent(pair, children=1)
    assert len(pair.a.of(ChildSaRekeyed)) >= 5
    assert pair.a.of(IkeSaRekeyed)


def test_child_hard_lifetime_deletes() -> None:
    pair = Pair()
    a, b = _conns()
    a = replace(a, children=tuple(replace(c, rekey_time=0.0, life_time=30.0)
                                  for c in a.children))
    pair.connect(a, b)
    pair.advance(40)
    consistent(pair, children=0)
    assert pair.b.of(ChildSaDeleted)


def test_ike_hard_lifetime_when_rekey_never_happens() -> None:
    pair = Pair()
    a, b = _conns()
    a = replace(a, rekey_time=100.0, over_time=10.0, rand_time=0.0)
    pair.connect(a, b)
    pair.filter = lambda d, s: []  # the rekey gets no answer
    pair.advance(200)
    assert not pair.a.engine.by_id
    assert not pair.a.kernel.children


def test_kernel_soft_expire_rekeys_hard_expire_deletes() -> None:
    pair, ike_id = _up()
    (c,) = pair.a.engine.by_id[ike_id].children.values()
    assert pair.a.engine.on_child_expire(c.spec.spi_in, False, pair.now)
    pair.deliver_all()
    consistent(pair, children=1)
    (c2,) = pair.a.engine.by_id[ike_id].children.values()
    assert c2.spec.spi_in != c.spec.spi_in
    assert pair.a.engine.on_child_expire(c2.spec.spi_in, True, pair.now)
    pair.deliver_all()
    consistent(pair, children=0)
    assert not pair.a.engine.on_child_expire(0x1234, True, pair.now)


def test_reauthentication_make_before_break() -> None:
    pair, ike_id = _up(extra=True)
    pair.a.engine.create_child(ike_id, "net2", pair.now)
    pair.deliver_all()
    new_id = pair.a.engine.reauthenticate(ike_id, pair.now)
    pair.deliver_all()
    consistent(pair, children=2)
    assert list(pair.a.engine.by_id) == [new_id]


# -- liveness -------------------------------------------------------------------------------
def test_7296_70_dpd_probe_when_idle_and_peer_answers() -> None:
    pair, _ = _up(dpd_delay=10.0)
    pair.advance(35)
    consistent(pair, children=1)
    assert len(_exchanges(pair, "a", ExchangeType.INFORMATIONAL)) >= 2


@pytest.mark.parametrize("action", [DpdAction.CLEAR, DpdAction.RESTART])
def test_7296_70_dead_peer_is_cleared_or_restarted(action: DpdAction) -> None:
    rt = RetransmitConfig(timeout=1.0, base=2.0, tries=2, max_interval=4.0)
    pair, _ = _up(dpd_delay=5.0, dpd_action=action, retransmit=rt)
    pair.filter = lambda d, s: [] if s == "b" else [d]  # B's answers are lost
    for _ in range(40):
        pair.advance(0.5)
        if pair.a.of(IkeSaDeleted):
            break
    pair.filter = None  # the peer is back (restart: the new IKE_SA_INIT gets through)
    deleted = pair.a.of(IkeSaDeleted)
    assert deleted and "not responding" in deleted[0].reason
    assert not pair.a.kernel.children
    if action == DpdAction.RESTART:
        pair.advance(60)
        assert len(pair.a.of(IkeSaEstablished)) == 2
    else:
        assert not pair.a.engine.by_id


def test_dpd_response_from_a_wrong_address_is_dropped() -> None:
    rt = RetransmitConfig(timeout=1.0, base=2.0, tries=2, max_interval=4.0)
    pair, _ = _up(dpd_delay=5.0, retransmit=rt)

    def spoof(d, s):
        if s == "b":
            from ikev2.core.events import Datagram

            return [Datagram(d.data, ("2001:db8:1::99", d.local[1]), d.remote)]
        return [d]

    pair.filter = spoof
    pair.advance(30)
    assert not pair.a.engine.by_id  # the answers from elsewhere did not keep it alive


def _requests(pair: Pair, sender: str, exchange: int) -> list:
    return [d for s, d in pair.wire if s == sender and parse_header(d.data).exchange == exchange
            and not parse_header(d.data).flags & 0x20]


def test_check_liveness_reports_the_answer_with_its_round_trip() -> None:
    from ikev2.core.events import IkeSaAlive

    pair, ike_id = _up()
    lost: list = []

    def lose_first_probe(d, s):
        if s == "a" and not lost and parse_header(d.data).exchange == ExchangeType.INFORMATIONAL:
            lost.append(d)
            return []
        return [d]

    pair.filter = lose_first_probe
    pair.a.engine.check_liveness(ike_id, pair.now)
    pair.deliver_all()
    assert lost and not pair.a.of(IkeSaAlive)  # not answered yet
    pair.advance(5)  # the retransmission (retransmit.timeout 4 s) is answered
    (alive,) = pair.a.of(IkeSaAlive)
    assert alive.ike_id == ike_id and alive.name == "home"
    assert alive.rtt == pytest.approx(4.0)  # from the check, not from the last send
    assert not pair.b.of(IkeSaAlive)  # the peer answered; it asked nothing
    consistent(pair, children=1)


def test_check_liveness_waits_for_the_exchange_in_flight_and_is_not_doubled() -> None:
    from ikev2.core.events import IkeSaAlive

    pair, ike_id = _up()
    (child_id,) = pair.a.engine.by_id[ike_id].children
    pair.a.engine.rekey_child(ike_id, child_id, pair.now)  # CREATE_CHILD_SA outstanding
    pair.a.engine.check_liveness(ike_id, pair.now)
    pair.a.engine.check_liveness(ike_id, pair.now)  # the queued check answers both
    assert not _requests(pair, "a", ExchangeType.INFORMATIONAL)  # window size 1 (§2.3)
    pair.collect()
    assert not _requests(pair, "a", ExchangeType.INFORMATIONAL)
    pair.deliver_all()
    assert len(pair.a.of(IkeSaAlive)) == 1 and pair.a.of(ChildSaRekeyed)
    # one probe, plus the INFORMATIONAL deleting the old CHILD_SA
    assert len(_requests(pair, "a", ExchangeType.INFORMATIONAL)) == 2
    pair.a.engine.check_liveness(ike_id, pair.now)  # answered: the next one is sent
    pair.deliver_all()
    assert len(pair.a.of(IkeSaAlive)) == 2


def test_check_liveness_unanswered_deletes_and_dpd_stays_quiet() -> None:
    from ikev2.core.events import IkeSaAlive

    rt = RetransmitConfig(timeout=1.0, base=2.0, tries=2, max_interval=4.0)
    pair, ike_id = _up(dpd_delay=5.0, retransmit=rt)
    pair.advance(12)  # DPD probes, answered: no IkeSaAlive (only asked-for checks report)
    assert len(_requests(pair, "a", ExchangeType.INFORMATIONAL)) >= 2
    assert not pair.a.of(IkeSaAlive)
    pair.filter = lambda d, s: [] if s == "b" else [d]
    pair.a.engine.check_liveness(ike_id, pair.now)
    pair.advance(10)
    (gone,) = pair.a.of(IkeSaDeleted)
    assert gone.ike_id == ike_id and "not responding (INFORMATIONAL" in gone.reason
    assert not pair.a.of(IkeSaAlive)
    with pytest.raises(KeyError):
        pair.a.engine.check_liveness(ike_id, pair.now)


def test_check_liveness_needs_a_live_ike_sa() -> None:
    pair, ike_id = _up()
    pair.a.engine.terminate(ike_id, pair.now)  # DELETING until the peer answers
    with pytest.raises(ValueError, match="DELETING"):
        pair.a.engine.check_liveness(ike_id, pair.now)


# -- cookies, limits, window ----------------------------------------------------------------
def test_7296_46_cookie_secret_rotates_and_previous_still_verifies() -> None:
    pair = Pair(engine_config=EngineConfig(cookie_threshold=0, cookie_rotation=10.0))
    a, b = _conns()
    pair.connect(a, b)
    consistent(pair)
    jar = pair.b.engine.cookies
    v0 = jar.make(b"n", "2001:db8::1", b"s" * 8)
    pair.now += 11
    pair.a.engine.initiate("home", pair.now)
    pair.deliver_all()
    assert jar.verify(v0, b"n", "2001:db8::1", b"s" * 8)  # previous secret
    pair.now += 11
    pair.a.engine.initiate("home", pair.now)
    pair.deliver_all()
    assert not jar.verify(v0, b"n", "2001:db8::1", b"s" * 8)  # two rotations ago
    assert len(pair.a.of(IkeSaEstablished)) == 3


def test_block_threshold_limits_half_open_sas_per_address() -> None:
    pair = Pair(engine_config=EngineConfig(block_threshold=2))
    a, b = _conns()
    pair.a.engine.load_connection(a)
    pair.b.engine.load_connection(b)
    pair.filter = lambda d, s: [] if parse_header(d.data).exchange == ExchangeType.IKE_AUTH \
        else [d]
    for _ in range(4):
        pair.a.engine.initiate("home", pair.now)
    pair.deliver_all()
    assert len(pair.b.engine.half_open) == 2
    assert pair.b.engine.half_open_by_ip == {a.local_addrs[0]: 2}
    pair.advance(31)  # half-open SAs time out; the counter follows
    assert not pair.b.engine.half_open and not pair.b.engine.half_open_by_ip


def test_7296_37_set_window_size_is_understood() -> None:
    pair, ike_id = _up()
    a_sa = pair.a.engine.by_id[ike_id]
    notify = Notify(ProtocolId.NONE, NotifyType.SET_WINDOW_SIZE, b"", (8).to_bytes(4, "big"))
    pair.a.engine.send_request(a_sa, ExchangeType.INFORMATIONAL, [notify], None, pair.now)
    pair.deliver_all()
    assert pair.b.engine.by_id[_b_id(pair)].peer_window == 8
    assert a_sa.pending is None  # answered
    consistent(pair)


def test_7296_36_simultaneous_requests_use_independent_message_ids() -> None:
    pair, ike_id = _up()
    pair.a.engine.check_liveness(ike_id, pair.now)
    pair.b.engine.check_liveness(_b_id(pair), pair.now)
    pair.deliver_all()
    ids = sorted((s, parse_header(d.data).message_id) for s, d in pair.wire
                 if parse_header(d.data).exchange == ExchangeType.INFORMATIONAL)
    assert ids == [("a", 0), ("a", 2), ("b", 0), ("b", 2)]
    consistent(pair)


def test_wire_messages_parse() -> None:
    pair, ike_id = _up()
    pair.a.engine.rekey_ike(ike_id, pair.now)
    pair.deliver_all()
    for _, d in pair.wire:
        parse_message(d.data)


# -- handover (the daemon-side move; MOBIKE signalling is issue 6) --------------------------
def test_4877_update_addresses_moves_ike_and_child_sas() -> None:
    from ikev2.core.events import IkeSaUpdated

    pair, ike_id = _up()
    new = "2001:db8:2::1"
    pair.a.engine.update_addresses(ike_id, pair.now, local=new, mode="kbit")
    pair.b.engine.update_addresses(_b_id(pair), pair.now, remote=new, mode="kbit")
    (ev,) = pair.a.of(IkeSaUpdated)
    assert ev.ike.local[0] == new and ev.old_local[0] != new
    assert {k[0] for k in pair.a.kernel.children} == {new}
    assert {c.remote for c in pair.b.kernel.children.values()} == {new}
    pair.a.engine.check_liveness(ike_id, pair.now)
    pair.deliver_all()
    assert pair.a.engine.by_id[ike_id].pending is None  # answered on the new path
    consistent(pair, children=1)
    with pytest.raises(ValueError):
        pair.a.engine.update_addresses(ike_id, pair.now, remote="192.0.2.2", mode="kbit")


def test_update_addresses_kernel_refusal_moves_nothing() -> None:
    from ikev2.core.events import IkeSaUpdated, IkeSaUpdateFailed
    from ikev2.errors import KernelError

    pair, ike_id = _up()
    pair.a.kernel.fail_migrate = "no migrate here"
    before = pair.a.engine.ike_sa(ike_id)
    assert before is not None
    with pytest.raises(KernelError):
        pair.a.engine.update_addresses(ike_id, pair.now, local="2001:db8:2::1", mode="kbit")
    assert pair.a.engine.ike_sa(ike_id) == before
    (failed,) = pair.a.of(IkeSaUpdateFailed)  # the event stream hears of it too
    assert failed.ike_id == ike_id and failed.notify is None
    assert failed.local == ("2001:db8:2::1", before.local[1]) and failed.remote == before.remote
    assert "kernel refused" in failed.reason and "no migrate here" in failed.reason
    assert f"stays at {before.local[0]}-{before.remote[0]}" in failed.reason
    assert not pair.a.of(IkeSaUpdated)


@pytest.mark.parametrize("seed", SEEDS)
def test_7296_65_winner_deletes_old_before_our_response_arrives(seed: int) -> None:
    """Both rekey; A's response is held until B has finished and deleted the old pair:
    A must still apply the nonce rule and drop its redundant pair if it lost (§2.8.1)."""
    pair, ike_id = _up(seed)
    a_sa, b_sa = pair.a.engine.by_id[ike_id], pair.b.engine.by_id[_b_id(pair)]
    (ca,), (cb,) = a_sa.children, b_sa.children
    pair.a.engine.rekey_child(ike_id, ca, pair.now)
    pair.b.engine.rekey_child(b_sa.ike_id, cb, pair.now)
    pair.collect()
    batch, pair.in_flight = pair.in_flight, []
    for sender, d in batch:  # both requests cross
        dst = pair.b if sender == "a" else pair.a
        dst.engine.receive_datagram(d.data, d.remote, d.local, pair.now)
    pair.collect()
    held = [(s, d) for s, d in pair.in_flight if s == "b"]  # B's answer to A's rekey
    pair.in_flight = [(s, d) for s, d in pair.in_flight if s == "a"]
    pair.deliver_all()  # B completes, maybe deletes the old pair at A
    pair.in_flight.extend(held)
    pair.deliver_all()
    pair.advance(60)
    consistent(pair, children=1)
