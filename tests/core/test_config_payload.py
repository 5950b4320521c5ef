"""Configuration payload in IKE_AUTH between two engines (RFC 7296 §2.19, §3.15; RFC 5026
§4.4): the initiator requests an address / home prefix, the responder assigns the ones
configured for the peer's connection, and the CHILD_SA's dynamic TSi becomes the address."""

from __future__ import annotations

import ipaddress
import logging

import pytest

from ikev2.config.model import CpConfig, Mode, TsConfig
from ikev2.core import config_payload
from ikev2.core.events import ChildSaEstablished, ChildSaFailed, IkeSaEstablished, IkeSaFailed
from ikev2.protocol import cfgattr
from ikev2.protocol.enums import CfgAttr, CfgType
from ikev2.protocol.payloads import CP
from tests.core.harness import B_ADDR, Pair, make_conn, mirror

V6 = ipaddress.IPv6Address
HOA = "2001:db8:5::100"
PREFIX = ipaddress.IPv6Network("2001:db8:5:1::/64")
ANY = CpConfig(vips=(V6("::"),))
ASSIGN = CpConfig(assign_address=V6(HOA))


def run(cp_a: CpConfig | None, cp_b: CpConfig | None, **kw) -> Pair:
    pair = Pair()
    conn = make_conn(cp=cp_a, **kw)
    pair.connect(conn, mirror(conn, cp=cp_b))
    return pair


def ike_infos(pair: Pair) -> tuple:
    ea, eb = pair.a.of(IkeSaEstablished), pair.b.of(IkeSaEstablished)
    assert len(ea) == len(eb) == 1, (pair.a.events, pair.b.events)
    return ea[0].ike, eb[0].ike


def child_ts(pair: Pair) -> tuple:
    (ca,), (cb,) = pair.a.of(ChildSaEstablished), pair.b.of(ChildSaEstablished)
    return ca.child, cb.child


def test_7296_90_address_requested_and_assigned() -> None:
    """7296-90 / 4877-17: empty INTERNAL_IP6_ADDRESS → the configured HoA; TSi = HoA/128."""
    pair = run(ANY, ASSIGN)
    ia, ib = ike_infos(pair)
    assert ia.local_vips == (HOA,) and ia.remote_vips == ()
    assert ib.remote_vips == (HOA,) and ib.local_vips == ()
    ca, cb = child_ts(pair)
    assert ca.local_ts == (f"{HOA}/128",) and cb.remote_ts == (f"{HOA}/128",)
    assert ca.remote_ts == (f"{B_ADDR}/128",)
    (ka,) = pair.a.kernel.children.values()
    assert [str(t) for t in ka.local_ts] == [f"{HOA}/128"]


def test_7296_90_hint_in_authorised_prefix_honoured() -> None:
    hint = "2001:db8:5:1::42"
    pair = run(CpConfig(vips=(V6(hint),)),
               CpConfig(assign_address=V6(HOA), assign_home_prefix=PREFIX))
    ia, ib = ike_infos(pair)
    assert ia.local_vips == ib.remote_vips == (hint,)
    assert child_ts(pair)[0].local_ts == (f"{hint}/128",)


def test_4877_16_unauthorised_hint_replaced(caplog: pytest.LogCaptureFixture) -> None:
    """4877-16: a hint the identity may not use gets the authorised HoA, with a log line."""
    with caplog.at_level(logging.INFO, logger="ikev2.core"):
        pair = run(CpConfig(vips=(V6("2001:db8:99::7"),)), ASSIGN)
    ia, ib = ike_infos(pair)
    assert ia.local_vips == ib.remote_vips == (HOA,)
    assert child_ts(pair)[0].local_ts == (f"{HOA}/128",)
    assert any("2001:db8:99::7, which it is not authorised for; assigning " + HOA in r.message
               for r in caplog.records)


def test_7296_90_no_assignment_configured_no_cp_reply(caplog: pytest.LogCaptureFixture) -> None:
    """A responder with no CP settings ignores the request (no CFG_REPLY, §3.15.4); the
    initiator warns, and its ::/0 TSi is narrowed to its outer address."""
    with caplog.at_level(logging.INFO, logger="ikev2.core"):
        pair = run(ANY, None)
    ia, ib = ike_infos(pair)
    assert ia.local_vips == ib.remote_vips == ()
    ca, _ = child_ts(pair)
    assert ca.local_ts == (f"{pair.a.engine.by_id[ia.ike_id].local[0]}/128",)
    assert any("assigned none" in r.message for r in caplog.records)
    assert any("assigns nothing" in r.message for r in caplog.records)


def test_7296_83_nothing_to_assign_internal_address_failure() -> None:
    """7296-83 / §3.15.4: asked for an address, the connection only has a home prefix and
    no usable hint → INTERNAL_ADDRESS_FAILURE, IKE SA up, no CHILD_SA."""
    pair = run(ANY, CpConfig(assign_home_prefix=PREFIX))
    ia, _ = ike_infos(pair)
    assert pair.a.of(ChildSaEstablished) == [] and pair.b.of(ChildSaEstablished) == []
    (fa,) = pair.a.of(ChildSaFailed)
    assert fa.notify == "INTERNAL_ADDRESS_FAILURE"
    assert pair.b.of(ChildSaFailed)[0].notify == "INTERNAL_ADDRESS_FAILURE"
    assert ia.local_vips == () and not pair.a.kernel.children


def test_4877_17_home_prefix_round_trip() -> None:
    """4877-17: MIP6_HOME_PREFIX (RFC 5026 §4.4) requested empty, assigned with lifetime."""
    cp_b = CpConfig(assign_address=V6(HOA), assign_home_prefix=PREFIX, home_prefix_lifetime=600)
    pair = run(CpConfig(vips=(V6("::"),), request_home_prefix=True), cp_b)
    ia, ib = ike_infos(pair)
    assert ia.home_prefix == ib.home_prefix == str(PREFIX)
    assert ia.local_vips == (HOA,)


def test_4877_27_prefix_hint_outside_authorised_replaced(monkeypatch) -> None:
    """4877-27: a prefix hint outside the identity's prefix → the authorised prefix; one
    inside it (a longer prefix) is honoured."""
    def hinted(prefix: str):
        def request(cfg: CpConfig) -> CP:
            net = ipaddress.IPv6Network(prefix)
            return CP(CfgType.CFG_REQUEST,
                      ((CfgAttr.MIP6_HOME_PREFIX, cfgattr.encode_home_prefix(net, 0)),))
        return request

    cp_a = CpConfig(request_home_prefix=True)
    cp_b = CpConfig(assign_home_prefix=PREFIX)
    monkeypatch.setattr(config_payload, "request", hinted("2001:db8:77::/64"))
    ia, ib = ike_infos(run(cp_a, cp_b))
    assert ia.home_prefix == ib.home_prefix == str(PREFIX)
    monkeypatch.setattr(config_payload, "request", hinted("2001:db8:5:1:8000::/65"))
    ia, ib = ike_infos(run(cp_a, cp_b))
    assert ia.home_prefix == ib.home_prefix == "2001:db8:5:1:8000::/65"


def test_4877_17_transport_child_bound_to_assigned_hoa() -> None:
    """The HoA as the inner address: a transport-mode child with a dynamic local_ts is
    keyed to the assigned HoA (RFC 4877 §4.2 SAs are HoA-bound)."""
    pair = run(ANY, ASSIGN, mode=Mode.TRANSPORT, local_ts=(TsConfig(dynamic=True),))
    ca, _ = child_ts(pair)
    assert ca.local_ts == (f"{HOA}/128",)
    (ka,) = pair.a.kernel.children.values()
    (kb,) = pair.b.kernel.children.values()
    assert ka.local == HOA and kb.remote == HOA


def test_7296_07_malformed_request_attribute_invalid_syntax(monkeypatch) -> None:
    """A known attribute of the wrong length (INTERNAL_IP6_ADDRESS of 5 octets) →
    INVALID_SYNTAX; nothing is established (7296-83)."""
    monkeypatch.setattr(config_payload, "request", lambda cfg: CP(
        CfgType.CFG_REQUEST, ((CfgAttr.INTERNAL_IP6_ADDRESS, b"\0" * 5),)))
    pair = Pair()
    conn = make_conn(cp=ANY)
    pair.connect(conn, mirror(conn, cp=ASSIGN))
    assert pair.a.of(IkeSaEstablished) == [] and pair.b.of(IkeSaEstablished) == []
    assert pair.a.of(IkeSaFailed)[0].notify == "INVALID_SYNTAX"


def test_7296_91_unknown_attribute_ignored(monkeypatch) -> None:
    """7296-91: an unknown attribute (16400) is ignored; alone it asks for nothing."""
    monkeypatch.setattr(config_payload, "request", lambda cfg: CP(
        CfgType.CFG_REQUEST, ((16400, b"xyz"), (CfgAttr.INTERNAL_IP6_ADDRESS, b""))))
    ia, ib = ike_infos(run(ANY, ASSIGN))
    assert ia.local_vips == ib.remote_vips == (HOA,)
    monkeypatch.setattr(config_payload, "request", lambda cfg: CP(
        CfgType.CFG_REQUEST, ((16400, b"xyz"),)))
    ia, ib = ike_infos(run(ANY, ASSIGN))
    assert ia.local_vips == ib.remote_vips == ()


def test_malformed_reply_attribute_ignored(monkeypatch, caplog) -> None:
    """A malformed CFG_REPLY attribute is skipped with a warning (a response is not
    answered); the IKE SA stays up."""
    monkeypatch.setattr(config_payload, "answer", lambda sa, cfg, cp: [CP(
        CfgType.CFG_REPLY, ((CfgAttr.INTERNAL_IP6_ADDRESS, b"\1" * 3),))])
    with caplog.at_level(logging.WARNING, logger="ikev2.core"):
        ia, _ = ike_infos(run(ANY, ASSIGN))
    assert ia.local_vips == ()
    assert any("malformed CFG_REPLY attribute" in r.message for r in caplog.records)


def test_no_cp_configured_sends_no_cp(monkeypatch) -> None:
    """Without CP settings nothing is requested (the IKE_AUTH path is unchanged)."""
    called = []
    monkeypatch.setattr(config_payload, "request", lambda cfg: called.append(cfg))
    ia, ib = ike_infos(run(None, ASSIGN))
    assert not called and ia.local_vips == ib.remote_vips == ()


def test_vips_survive_ike_rekey() -> None:
    """The assigned address stays with the IKE SA across an IKE rekey (§2.8)."""
    pair = run(ANY, ASSIGN, rekey_time=100.0)
    first = set(pair.a.engine.by_id)
    pair.advance(200)
    assert pair.a.engine.by_id and not first & set(pair.a.engine.by_id)
    for engine in (pair.a.engine, pair.b.engine):
        for sa in engine.by_id.values():
            assert HOA in sa.local_vips + sa.remote_vips


def test_7296_23_cfg_request_golden_bytes() -> None:
    """7296-23: CP(CFG_REQUEST) of `vips = ["::", hint]` + request_home_prefix, as sent:
    CFG Type 1 | RESERVED | attr 8 len 0 | attr 8 len 17 | attr 16 len 0."""
    from ikev2.protocol.codec import encode_payloads

    cp = config_payload.request(CpConfig(vips=(V6("::"), V6("2001:db8::1")),
                                         request_home_prefix=True))
    first, body = encode_payloads([cp])
    assert first == 47
    assert body.hex() == ("00000025" "01000000" "00080000" "00080011"
                          "20010db8000000000000000000000001" "80" "00100000")
    assert cfgattr.encode_home_prefix(PREFIX, 600).hex() == (
        "00000258" "20010db8000500010000000000000000" "40")
    assert cfgattr.decode_home_prefix(bytes.fromhex(
        "00000258" "20010db8000500010000000000000000" "40")) == (PREFIX, 600)
    with pytest.raises(cfgattr.CfgAttrError, match="0 or 17 octets, not 5"):
        cfgattr.decode_ip6(b"\0" * 5)
