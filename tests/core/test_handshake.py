"""IKE_SA_INIT + IKE_AUTH + first CHILD_SA between two engines in memory (RFC 7296 §1.2)."""

from __future__ import annotations

import pytest

from ikev2.core.events import (
    ChildSaEstablished,
    ChildSaFailed,
    IkeSaEstablished,
    IkeSaFailed,
)
from ikev2.protocol.codec import parse_message
from ikev2.protocol.enums import ExchangeType, IdType, NotifyType
from ikev2.protocol.payloads import Notify
from tests.core.harness import Pair, esp, ike, make_conn, mirror

SUITES = [
    ("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
    ("aes256-sha256-modp2048", "aes256-sha256"),
    ("aes256gcm16-prfsha384-ecp384", "aes128gcm16"),
    ("chacha20poly1305-prfsha256-x448", "chacha20poly1305"),
    ("aes128-sha1-ecp256", "aes128-sha1"),
    ("aes256-sha512-ecp521", "aes256gcm16-esn"),
]


def established(pair: Pair) -> tuple:
    ea = pair.a.of(IkeSaEstablished)
    eb = pair.b.of(IkeSaEstablished)
    assert len(ea) == 1 and len(eb) == 1, (pair.a.events, pair.b.events)
    ca = pair.a.of(ChildSaEstablished)
    cb = pair.b.of(ChildSaEstablished)
    return ea[0].ike, eb[0].ike, ca, cb


def assert_children_match(pair: Pair) -> None:
    """7296-56: the initiator's outbound keys are the responder's inbound keys."""
    ka = list(pair.a.kernel.children.values())
    kb = list(pair.b.kernel.children.values())
    assert len(ka) == len(kb) == 1
    a, b = ka[0], kb[0]
    assert a.spi_out == b.spi_in and a.spi_in == b.spi_out
    assert a.encr_key_out == b.encr_key_in and a.encr_key_in == b.encr_key_out
    assert a.integ_key_out == b.integ_key_in and a.integ_key_in == b.integ_key_out
    assert a.encr_key_in != a.encr_key_out
    assert a.local_ts == b.remote_ts and a.remote_ts == b.local_ts


@pytest.mark.parametrize(("ike_p", "esp_p"), SUITES)
def test_7296_25_handshake_suites(ike_p: str, esp_p: str) -> None:
    pair = Pair()
    pair.connect(make_conn(ike_props=ike(ike_p), esp_props=esp(esp_p)))
    ia, ib, ca, cb = established(pair)
    assert ia.spi_i == ib.spi_i and ia.spi_r == ib.spi_r
    assert ia.suite == ib.suite
    assert ia.local_id == "user@example.org" and ib.remote_id == "user@example.org"
    assert ia.remote_id == "gw.example.org"
    assert len(ca) == len(cb) == 1
    assert ca[0].child.spi_out == cb[0].child.spi_in
    assert_children_match(pair)


def test_7296_10_responder_picks_second_proposal() -> None:
    pair = Pair()
    conn = make_conn(ike_props=ike("aes128gcm16-prfsha256-x25519", "aes256-sha256-ecp256"))
    pair.connect(conn, mirror(conn, ike_proposals=ike("aes256-sha256-ecp256")))
    ia, ib, _, _ = established(pair)
    assert ia.suite == ib.suite and "ecp256" in ia.suite
    # the answer carried proposal number 2
    answers = [parse_message(d.data) for s, d in pair.wire if s == "b"]
    sa = next(p for p in answers[-2][1] if type(p).__name__ == "SA")
    assert sa.proposals[0].num == 2


def test_7296_47_invalid_ke_retry() -> None:
    """KEi group 31, responder wants 19: INVALID_KE_PAYLOAD with data 0013, retry, success."""
    pair = Pair()
    conn = make_conn(ike_props=ike("aes128gcm16-prfsha256-x25519-ecp256"))
    pair.connect(conn, mirror(conn, ike_proposals=ike("aes128gcm16-prfsha256-ecp256")))
    ia, _ib, _, _ = established(pair)
    assert "ecp256" in ia.suite
    msgs = [(s, parse_message(d.data)) for s, d in pair.wire]
    first_answer = msgs[1]
    assert first_answer[0] == "b"
    notes = [p for p in first_answer[1][1] if isinstance(p, Notify)]
    assert notes[0].type == NotifyType.INVALID_KE_PAYLOAD and notes[0].data == b"\x00\x13"
    retry = msgs[2][1]
    assert retry[0].message_id == 0 and retry[0].spi_i == msgs[0][1][0].spi_i


def test_7296_47_refuses_group_not_offered() -> None:
    pair = Pair()
    conn = make_conn(ike_props=ike("aes128gcm16-prfsha256-x25519"))
    pair.connect(conn, mirror(conn, ike_proposals=ike("aes128gcm16-prfsha256-x25519-modp2048")))
    assert pair.a.of(IkeSaEstablished)  # x25519 preferred by KEi, no retry needed


def test_no_proposal_chosen() -> None:
    pair = Pair()
    conn = make_conn(ike_props=ike("aes128gcm16-prfsha256-x25519"))
    pair.connect(conn, mirror(conn, ike_proposals=ike("aes256-sha512-modp4096")))
    fa = pair.a.of(IkeSaFailed)
    assert fa and fa[0].notify == "NO_PROPOSAL_CHOSEN"
    assert not pair.b.engine.by_id and not pair.a.engine.by_id


def test_7296_60_wrong_psk_fails_both_sides() -> None:
    pair = Pair()
    conn = make_conn()
    pair.connect(conn, mirror(conn, local=conn.remote, remote=type(conn.local)(
        conn.local.id, psk=b"another psk")))
    fa, fb = pair.a.of(IkeSaFailed), pair.b.of(IkeSaFailed)
    assert fa and fa[0].notify == "AUTHENTICATION_FAILED"
    assert fb and fb[0].notify == "AUTHENTICATION_FAILED"
    assert not pair.a.kernel.children and not pair.b.kernel.children
    assert not pair.a.kernel.spis and not pair.b.kernel.spis
    assert not pair.a.engine.by_id and not pair.b.engine.by_id


def test_7296_61_unknown_identity_rejected() -> None:
    pair = Pair()
    conn = make_conn(local_id="mallory@example.org")
    pair.connect(conn, mirror(make_conn()))
    assert pair.a.of(IkeSaFailed)[0].notify == "AUTHENTICATION_FAILED"
    assert not pair.b.engine.by_id


@pytest.mark.parametrize(
    "ident",
    ["user@example.org", "mn.example.org", "192.0.2.7", "2001:db8::7", "keyid:0x0102abcd"],
)
def test_7296_14_identity_types(ident: str) -> None:
    pair = Pair()
    pair.connect(make_conn(local_id=ident))
    ia, ib, _, _ = established(pair)
    assert ib.remote_id == ia.local_id


def test_id_types_on_the_wire() -> None:
    from ikev2.config.model import Identity

    assert Identity.parse("user@example.org").id_type == IdType.ID_RFC822_ADDR
    assert Identity.parse("gw.example.org").id_type == IdType.ID_FQDN


def test_7296_78_narrowing() -> None:
    """The responder narrows 2001:db8::/32 to its policy 2001:db8:a::/48."""
    from tests.core.harness import ts

    pair = Pair()
    conn = make_conn(local_ts=ts("2001:db8::/32"), remote_ts=ts("2001:db8:b::/48"))
    resp = mirror(make_conn(local_ts=ts("2001:db8:a::/48"), remote_ts=ts("2001:db8:b::/48")))
    pair.connect(conn, resp)
    _, _, ca, cb = established(pair)
    assert ca[0].child.local_ts == ("2001:db8:a::/48",)
    assert cb[0].child.remote_ts == ("2001:db8:a::/48",)


def test_7296_83_ts_unacceptable_keeps_ike_sa() -> None:
    from tests.core.harness import ts

    pair = Pair()
    conn = make_conn(local_ts=ts("2001:db8:a::/48"), remote_ts=ts("2001:db8:b::/48"))
    resp = mirror(make_conn(local_ts=ts("2001:db8:c::/48"), remote_ts=ts("2001:db8:d::/48")))
    pair.connect(conn, resp)
    assert pair.a.of(IkeSaEstablished) and pair.b.of(IkeSaEstablished)
    fa = pair.a.of(ChildSaFailed)
    assert fa and fa[0].notify == "TS_UNACCEPTABLE"
    assert not pair.a.kernel.children and not pair.b.kernel.children
    assert not pair.a.kernel.spis  # the offered SPI was released


def test_7296_28_transport_mode() -> None:
    from ikev2.config.model import Mode

    pair = Pair()
    pair.connect(make_conn(mode=Mode.TRANSPORT))
    _, _, ca, cb = established(pair)
    assert ca[0].child.mode == cb[0].child.mode == "transport"


def test_transport_required_but_not_offered() -> None:
    from ikev2.config.model import Mode

    pair = Pair()
    conn = make_conn()
    pair.connect(conn, mirror(make_conn(mode=Mode.TRANSPORT)))
    assert pair.a.of(ChildSaFailed)[0].notify == "NO_PROPOSAL_CHOSEN"
    assert pair.a.of(IkeSaEstablished)


def test_kernel_install_failure_keeps_ike_sa() -> None:
    """As charon does: a CHILD_SA the kernel refuses → NO_PROPOSAL_CHOSEN, IKE SA up."""
    pair = Pair()
    pair.b.kernel.fail_install = "Requested type not found (no ESP in kernel)"
    pair.connect(make_conn())
    assert pair.a.of(IkeSaEstablished) and pair.b.of(IkeSaEstablished)
    assert pair.a.of(ChildSaFailed)[0].notify == "NO_PROPOSAL_CHOSEN"
    assert pair.b.of(ChildSaFailed)
    assert not pair.a.kernel.children and not pair.b.kernel.children


def test_exchange_types_in_order() -> None:
    pair = Pair()
    pair.connect(make_conn())
    kinds = [(s, parse_message(d.data)[0].exchange) for s, d in pair.wire]
    assert kinds == [
        ("a", ExchangeType.IKE_SA_INIT), ("b", ExchangeType.IKE_SA_INIT),
        ("a", ExchangeType.IKE_AUTH), ("b", ExchangeType.IKE_AUTH),
    ]


def test_default_proposals_both_sides() -> None:
    """No proposals configured on either side: the 'default' sets negotiate."""
    pair = Pair()
    pair.connect(make_conn())
    ia, ib, ca, cb = established(pair)
    assert ia.suite == ib.suite and ca[0].child.suite == cb[0].child.suite


# -- initiating from a chosen local address (the API's initiate ?local=) ----------------------
def test_initiate_from_a_chosen_local_address() -> None:
    from dataclasses import replace

    pair = Pair()
    a = make_conn(local="%any")
    pair.a.engine.load_connection(a)
    pair.b.engine.load_connection(replace(mirror(a), remote_addrs=("%any",)))
    chosen = "2001:db8:1::7"
    ike_id = pair.a.engine.initiate("home", pair.now, local="2001:0db8:1:0::7")
    pair.deliver_all()
    first = pair.wire[0][1]
    assert first.local[0] == chosen  # IKE_SA_INIT leaves from it
    ia, ib, ca, cb = established(pair)
    assert ia.ike_id == ike_id and ia.local[0] == chosen and ib.remote[0] == chosen
    assert (ca[0].child.local, cb[0].child.remote) == (chosen, chosen)
    assert {d.local[0] for s, d in pair.wire if s == "a"} == {chosen}
    # without `local`: the first concrete local_addrs entry, as before
    pair2 = Pair()
    pair2.connect(make_conn())
    assert pair2.a.of(IkeSaEstablished)[0].ike.local[0] == "2001:db8:1::1"


@pytest.mark.parametrize(("local", "words"), [
    ("192.0.2.1", "is IPv4 but connection 'home' initiates to 2001:db8:1::2"),
    ("2001:db8:1::7", "not in the local_addrs of connection 'home' (2001:db8:1::1)"),
    ("::", "cannot be the source"),
    ("ff02::1", "cannot be the source"),
    ("not-an-address", "is not an IP address"),
])
def test_initiate_refuses_an_unusable_local_address(local: str, words: str) -> None:
    from ikev2.errors import UnusableAddress

    pair = Pair()
    pair.a.engine.load_connection(make_conn())
    with pytest.raises(UnusableAddress) as err:
        pair.a.engine.initiate("home", pair.now, local=local)
    assert words in str(err.value) and err.value.address == local
    assert not pair.a.engine.by_id and not pair.a.engine.datagrams_to_send()
