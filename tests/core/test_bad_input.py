"""Malformed, unauthenticated and out-of-window input (REQUIREMENTS A12, A14): a notify
where RFC 7296 says so, silence otherwise, never an exception, never state."""

from __future__ import annotations

import random
import struct

import pytest

from ikev2.core.events import IkeSaEstablished
from ikev2.protocol.codec import build_message, parse_message
from ikev2.protocol.enums import ExchangeType, NotifyType
from ikev2.protocol.header import parse_header
from ikev2.protocol.payloads import KE, SA, Unknown
from tests.core.harness import A_ADDR, B_ADDR, Pair, make_conn, mirror

SRC, DST = (A_ADDR, 500), (B_ADDR, 500)


def _responder() -> Pair:
    pair = Pair()
    pair.b.engine.load_connection(mirror(make_conn()))
    pair.a.engine.load_connection(make_conn())
    return pair


def _first_init(pair: Pair) -> bytes:
    pair.a.engine.initiate("home", pair.now)
    return pair.a.engine.datagrams_to_send()[0].data


def _feed(pair: Pair, data: bytes) -> list:
    pair.b.engine.receive_datagram(data, DST, SRC, pair.now)
    return pair.b.engine.datagrams_to_send()


def _no_state(pair: Pair) -> None:
    assert not pair.b.engine.by_id and not pair.b.engine.half_open


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\xff" * 27, b"\x00" * 28, b"\x01" * 500, bytes(range(256)) * 4],
)
def test_garbage_is_dropped(data: bytes) -> None:
    pair = _responder()
    assert _feed(pair, data) == []
    _no_state(pair)


def test_7296_01_length_mismatch_dropped() -> None:
    pair = _responder()
    data = _first_init(pair)
    assert _feed(pair, data + b"\x00") == []
    assert _feed(pair, data[:-1]) == []
    _no_state(pair)


def test_7296_81_major_version_3() -> None:
    pair = _responder()
    data = bytearray(_first_init(pair))
    data[17] = 0x30
    out = _feed(pair, bytes(data))
    assert len(out) == 1
    hdr, payloads = parse_message(out[0].data)
    assert hdr.version == 0x20 and hdr.flags & 0x20
    assert payloads[0].type == NotifyType.INVALID_MAJOR_VERSION
    _no_state(pair)


def test_7296_81_minor_version_ignored() -> None:
    pair = _responder()
    data = bytearray(_first_init(pair))
    data[17] = 0x21
    out = _feed(pair, bytes(data))
    assert len(out) == 1 and pair.b.engine.half_open


@pytest.mark.parametrize(
    ("offset", "value", "why"),
    [
        (0, b"\0" * 8, "zero SPIi"),
        (8, b"\1" * 8, "non-zero SPIr"),
        (19, b"\x00", "I flag clear"),
        (20, b"\0\0\0\1", "message ID 1"),
    ],
)
def test_7296_93_init_requests_silently_dropped(offset: int, value: bytes, why: str) -> None:
    pair = _responder()
    data = bytearray(_first_init(pair))
    data[offset:offset + len(value)] = value
    assert _feed(pair, bytes(data)) == [], why
    _no_state(pair)


def test_7296_85_stray_response_ignored() -> None:
    pair = _responder()
    data = bytearray(_first_init(pair))
    data[19] |= 0x20
    assert _feed(pair, bytes(data)) == []
    _no_state(pair)


def test_7296_02_unknown_exchange_type_not_answered() -> None:
    pair = _responder()
    data = bytearray(_first_init(pair))
    data[18] = 99
    assert _feed(pair, bytes(data)) == []


def _init_with(payloads: list) -> bytes:
    return build_message(b"\x11" * 8, b"\0" * 8, ExchangeType.IKE_SA_INIT, 0x08, 0, payloads)


def test_7296_08_unknown_critical_payload_in_init() -> None:
    pair = _responder()
    _, payloads = parse_message(_first_init(pair))
    data = _init_with([*payloads, Unknown(200, True, b"abc")])
    out = _feed(pair, data)
    note = parse_message(out[0].data)[1][0]
    assert note.type == NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD and note.data == b"\xc8"
    _no_state(pair)


def test_7296_08_unknown_noncritical_payload_ignored() -> None:
    pair = _responder()
    _, payloads = parse_message(_first_init(pair))
    out = _feed(pair, _init_with([*payloads, Unknown(200, False, b"abc")]))
    assert any(isinstance(p, SA) for p in parse_message(out[0].data)[1])


def test_7296_25_missing_ke_gets_invalid_syntax() -> None:
    pair = _responder()
    _, payloads = parse_message(_first_init(pair))
    out = _feed(pair, _init_with([p for p in payloads if not isinstance(p, KE)]))
    assert parse_message(out[0].data)[1][0].type == NotifyType.INVALID_SYNTAX
    _no_state(pair)


def test_6989_04_all_zero_x25519_rejected() -> None:
    pair = _responder()
    _, payloads = parse_message(_first_init(pair))
    bad = [KE(p.group, b"\0" * 32) if isinstance(p, KE) else p for p in payloads]
    out = _feed(pair, _init_with(bad))
    assert parse_message(out[0].data)[1][0].type == NotifyType.NO_PROPOSAL_CHOSEN
    _no_state(pair)


def _established() -> Pair:
    pair = Pair()
    pair.connect(make_conn())
    assert pair.b.of(IkeSaEstablished)
    return pair


def test_7296_22_tampered_request_dropped_then_genuine_accepted() -> None:
    pair2 = Pair()
    pair2.a.engine.load_connection(make_conn())
    pair2.b.engine.load_connection(mirror(make_conn()))
    pair2.filter = lambda d, s: [] if s == "a" and parse_header(d.data).exchange == 35 else [d]
    pair2.a.engine.initiate("home", pair2.now)
    pair2.deliver_all()
    auth = next(d for s, d in pair2.wire if s == "a" and parse_header(d.data).exchange == 35)
    for pos in (5, 40, len(auth.data) - 1):
        bad = bytearray(auth.data)
        bad[pos] ^= 0x01
        pair2.b.engine.receive_datagram(bytes(bad), auth.remote, auth.local, pair2.now)
        assert pair2.b.engine.datagrams_to_send() == []
    pair2.filter = None
    pair2.b.engine.receive_datagram(auth.data, auth.remote, auth.local, pair2.now)
    pair2.deliver_all()
    assert pair2.b.of(IkeSaEstablished) and pair2.a.of(IkeSaEstablished)


def test_7296_86_request_outside_window_not_answered() -> None:
    pair = _established()
    sa = next(iter(pair.a.engine.by_id.values()))
    sa.next_id_out += 5
    pair.a.engine.send_request(sa, ExchangeType.INFORMATIONAL, [], None, pair.now)
    pair.collect()
    batch, pair.in_flight = pair.in_flight, []
    for _, d in batch:
        pair.b.engine.receive_datagram(d.data, d.remote, d.local, pair.now)
    assert pair.b.engine.datagrams_to_send() == []


def test_7296_88_malformed_protected_request_is_fatal() -> None:
    """An authenticated request whose inner payloads are malformed gets INVALID_SYNTAX
    and the IKE SA is deleted."""
    from ikev2.protocol.payloads import Nonce

    pair = _established()
    sa = next(iter(pair.a.engine.by_id.values()))
    pair.a.engine.send_request(
        sa, ExchangeType.INFORMATIONAL, [Nonce(b"short")], None, pair.now
    )
    pair.deliver_all()
    resp = [d for s, d in pair.wire if s == "b"][-1]
    sb = pair.a.engine.by_id.get(sa.ike_id)
    assert not pair.b.engine.by_id and not pair.b.kernel.children
    assert resp is not None and sb is not None


def test_mutation_fuzz_never_raises() -> None:
    """Every recorded message with random bit flips, truncations and extensions is fed to
    both engines at every stage: nothing raises, nothing half-open outlives its timeout."""
    rng = random.Random(7)
    pair = Pair()
    pair.connect(make_conn())
    recorded = [(s, d) for s, d in pair.wire]
    for _ in range(1500):
        sender, d = rng.choice(recorded)
        data = bytearray(d.data)
        op = rng.randrange(4)
        if op == 0:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op == 1:
            del data[rng.randrange(len(data)):]
        elif op == 2:
            data += rng.randbytes(rng.randint(1, 40))
        else:  # keep the header, scramble a length field
            pos = rng.randrange(28, len(data) - 2)
            data[pos:pos + 2] = struct.pack("!H", rng.randrange(65536))
        dst = pair.b if sender == "a" else pair.a
        dst.engine.receive_datagram(bytes(data), d.remote, d.local, pair.now)
        dst.engine.datagrams_to_send()
    pair.advance(120)
    for n in (pair.a, pair.b):
        assert all(sa.state.value == "ESTABLISHED" for sa in n.engine.by_id.values())
    assert len(pair.a.engine.by_id) == 1 and len(pair.b.engine.by_id) == 1


def test_unauthenticated_init_does_not_disturb_established_sa() -> None:
    """7296-89: an IKE_SA_INIT reusing a live SPIi from elsewhere changes nothing."""
    pair = _established()
    init = pair.wire[0][1]
    pair.b.engine.receive_datagram(init.data, init.remote, ("2001:db8:9::9", 500), pair.now)
    pair.b.engine.datagrams_to_send()
    established = [sa for sa in pair.b.engine.by_id.values() if sa.state.value == "ESTABLISHED"]
    assert len(established) == 1
