"""Property tests: decode(encode(x)) == x for every payload type and whole messages, and
arbitrary or mutated input never raises anything but ikev2.errors (RFC 7296 §3)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ikev2.errors import IkeError
from ikev2.protocol.codec import build_message, decode_payloads, encode_payloads, parse_message
from ikev2.protocol.enums import PayloadType
from ikev2.protocol.header import parse_header
from ikev2.protocol.payloads import (
    AUTH,
    CERT,
    CERTREQ,
    CP,
    EAP,
    KE,
    SA,
    SK,
    SKF,
    Delete,
    IDi,
    IDr,
    Nonce,
    Notify,
    Payload,
    Proposal,
    Transform,
    TSi,
    TSr,
    Unknown,
    VendorId,
)
from ikev2.protocol.sk import unprotect
from ikev2.protocol.ts import TrafficSelector, TsType

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
blob = st.binary(max_size=40)

tv_attr = st.tuples(
    st.integers(0x8000, 0xFFFF).filter(lambda t: t != 0x800E), st.binary(min_size=2, max_size=2)
)
tlv_attr = st.tuples(st.integers(0, 0x7FFF), st.binary(max_size=12))
transforms = st.builds(
    Transform, u8, u16, st.none() | u16, st.lists(tv_attr | tlv_attr, max_size=3).map(tuple)
)
proto_spi = st.one_of(
    st.tuples(st.just(1), st.sampled_from([b"", b"12345678"])),
    st.tuples(st.sampled_from([2, 3]), st.binary(min_size=4, max_size=4)),
    st.tuples(st.integers(4, 255) | st.just(0), st.binary(max_size=16)),
)


@st.composite
def sas(draw: st.DrawFn) -> SA:
    n = draw(st.integers(1, 4))
    first = 1 if n > 1 else draw(st.integers(1, 255))
    props = []
    for i in range(n):
        proto, spi = draw(proto_spi)
        props.append(Proposal(first + i, proto, spi, tuple(draw(st.lists(transforms, max_size=5)))))
    return SA(tuple(props))


@st.composite
def selectors(draw: st.DrawFn) -> TrafficSelector:
    ts_type = draw(st.sampled_from(list(TsType)))
    size = 4 if ts_type == TsType.TS_IPV4_ADDR_RANGE else 16
    addr = st.binary(min_size=size, max_size=size)
    return TrafficSelector(ts_type, draw(u8), draw(u16), draw(u16), draw(addr), draw(addr))


@st.composite
def eaps(draw: st.DrawFn) -> EAP:
    head, rest = draw(st.binary(min_size=2, max_size=2)), draw(blob)
    return EAP(head + (4 + len(rest)).to_bytes(2, "big") + rest)


@st.composite
def deletes(draw: st.DrawFn) -> Delete:
    proto = draw(st.sampled_from([1, 2, 3]))
    if proto == 1:
        return Delete(1)
    return Delete(proto, tuple(draw(st.lists(st.binary(min_size=4, max_size=4), max_size=5))))


KNOWN = {int(t) for t in PayloadType} - {0, int(PayloadType.GSPM)}
plain_payloads: st.SearchStrategy[Payload] = st.one_of(
    sas(),
    st.builds(KE, u16, blob),
    st.builds(IDi, u8, blob),
    st.builds(IDr, u8, blob),
    st.builds(CERT, u8, blob),
    st.builds(CERTREQ, u8, blob),
    st.builds(AUTH, u8, blob),
    st.builds(Nonce, st.binary(min_size=16, max_size=256)),
    st.builds(Notify, u8, u16, st.binary(max_size=16), blob),
    deletes(),
    st.builds(VendorId, blob),
    st.builds(TSi, st.lists(selectors(), min_size=1, max_size=4).map(tuple)),
    st.builds(TSr, st.lists(selectors(), min_size=1, max_size=4).map(tuple)),
    st.builds(CP, u8, st.lists(st.tuples(st.integers(0, 0x7FFF), blob), max_size=4).map(tuple)),
    eaps(),
    st.builds(Unknown, st.integers(1, 255).filter(lambda t: t not in KNOWN), st.just(False), blob),
)
sealed = st.builds(SK, u8, blob) | st.builds(
    SKF, u8, st.integers(1, 10), st.integers(10, 20), blob
)


@given(plain_payloads | sealed)
def test_7296_07_payload_round_trip(p: Payload) -> None:
    first, wire = encode_payloads([p])
    assert decode_payloads(first, wire) == [p]
    assert decode_payloads(first, memoryview(wire)) == [p]


@settings(max_examples=200)
@given(st.lists(plain_payloads, max_size=8), st.none() | sealed, st.binary(min_size=8, max_size=8),
       u8, u8, st.integers(0, 0xFFFFFFFF))
def test_7296_01_message_round_trip(
    chain: list[Payload], tail: Payload | None, spi: bytes, exchange: int, flags: int, mid: int
) -> None:
    payloads = chain + ([tail] if tail is not None else [])
    msg = build_message(spi, bytes(8), exchange, flags, mid, payloads)
    hdr, got = parse_message(msg)
    assert got == payloads
    assert (hdr.spi_i, hdr.exchange, hdr.flags, hdr.message_id) == (spi, exchange, flags, mid)
    assert encode_payloads(got)[1] == msg[28:]


class _NullCrypter:
    iv_size = 4
    block_size = 4
    icv_size = 4

    def seal(self, aad: bytes, iv: bytes, plaintext: bytes) -> bytes:
        return plaintext + bytes(4)

    def open(self, aad: bytes, iv: bytes, ciphertext_and_icv: bytes) -> bytes:
        return ciphertext_and_icv[:-4]


def _only_ike_errors(first: int, data: bytes) -> None:
    with contextlib.suppress(IkeError):
        decode_payloads(first, data)


@settings(max_examples=500)
@given(st.sampled_from([*sorted(KNOWN), 1, 200]), st.binary(max_size=200))
def test_7296_88_random_bytes_only_ike_errors(first: int, data: bytes) -> None:
    _only_ike_errors(first, data)


@settings(max_examples=500)
@given(st.lists(plain_payloads, min_size=1, max_size=5), st.data())
def test_7296_88_mutated_messages_only_ike_errors(
    chain: list[Payload], data: st.DataObject
) -> None:
    first, wire = encode_payloads(chain)
    buf = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(u8)
    cut = data.draw(st.integers(0, len(buf)))
    _only_ike_errors(first, bytes(buf[:cut]))
    _only_ike_errors(first, bytes(buf))


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_7296_88_random_protected_messages_only_ike_errors(body: bytes) -> None:
    msg = bytes(8) * 2 + bytes((46, 0x20, 35, 8)) + bytes(4) + (28 + len(body)).to_bytes(4, "big")
    msg += body
    with contextlib.suppress(IkeError):
        unprotect(msg, parse_header(msg), _NullCrypter())


@pytest.mark.parametrize("p", [SK(35, b""), SKF(0, 1, 1, b"")])
def test_sealed_payload_ends_chain(p: Payload) -> None:
    first, wire = encode_payloads([Nonce(bytes(16)), p])
    assert decode_payloads(first, wire) == [Nonce(bytes(16)), p]
