"""SK / SKF protection (RFC 7296 §3.14, RFC 5282 §5, RFC 7383 §2.5; REQUIREMENTS 7296-21/22,
7634-03, 7383-02..06) with test crypters built on `cryptography`."""

from __future__ import annotations

import os

import pytest
from test_protocol_support import CbcHmacCrypter, GcmCrypter

from ikev2.errors import DropMessage, IntegrityError, InvalidSyntax, UnsupportedCriticalPayload
from ikev2.protocol.codec import GENERIC, encode_payloads, parse_message
from ikev2.protocol.header import HEADER, parse_header
from ikev2.protocol.payloads import (
    AUTH,
    CERT,
    SA,
    SK,
    SKF,
    IDi,
    IDr,
    Notify,
    Payload,
    Proposal,
    Transform,
    TSi,
    TSr,
    Unknown,
)
from ikev2.protocol.sk import (
    protect,
    protect_fragments,
    reassemble,
    unprotect,
    unprotect_fragment,
)
from ikev2.protocol.ts import TrafficSelector

SPI_I = bytes.fromhex("1111111111111111")
SPI_R = bytes.fromhex("2222222222222222")
IKE_AUTH = 35

INNER: list[Payload] = [
    IDi(3, b"user@example.org"),
    AUTH(2, bytes(range(32))),
    SA((Proposal(1, 3, b"\x01\x02\x03\x04", (Transform(1, 20, 128), Transform(5, 0))),)),
    TSi((TrafficSelector.from_network("2001:db8:a::1/128"),)),
    TSr((TrafficSelector.from_network("2001:db8:b::1/128"),)),
    Notify(0, 16396),
]

CRYPTERS = {
    "gcm": lambda: GcmCrypter(bytes(range(20))),
    "cbc": lambda: CbcHmacCrypter(bytes(range(16)), bytes(range(32, 64))),
}


@pytest.fixture(params=sorted(CRYPTERS))
def crypter(request: pytest.FixtureRequest) -> GcmCrypter | CbcHmacCrypter:
    return CRYPTERS[request.param]()


def seal(crypter, payloads=INNER, pad_len=0, **kw) -> bytes:  # type: ignore[no-untyped-def]
    iv = bytes(range(crypter.iv_size))
    return protect(SPI_I, SPI_R, IKE_AUTH, 0x08, 1, payloads, crypter, iv, pad_len, **kw)


def test_7296_21_round_trip(crypter) -> None:  # type: ignore[no-untyped-def]
    msg = seal(crypter)
    hdr = parse_header(msg)
    assert hdr.next_payload == 46 and hdr.exchange == IKE_AUTH and hdr.message_id == 1
    assert unprotect(msg, hdr, crypter) == INNER
    assert unprotect(memoryview(msg), hdr, crypter) == INNER
    # outer parse leaves the SK sealed, its header naming the first inner payload
    _, [sk] = parse_message(msg)
    assert isinstance(sk, SK) and sk.next_type == 35


@pytest.mark.parametrize("pad_len", [0, 1, 5])
def test_7296_21_padding_and_alignment(crypter, pad_len: int) -> None:  # type: ignore[no-untyped-def]
    msg = seal(crypter, pad_len=pad_len)
    hdr = parse_header(msg)
    enc = len(msg) - 28 - 4 - crypter.iv_size - crypter.icv_size
    assert enc % crypter.block_size == 0
    _, inner = encode_payloads(INNER)
    assert enc == len(inner) + (-(len(inner) + 1)) % crypter.block_size + 1 + pad_len * (
        crypter.block_size
    )
    assert unprotect(msg, hdr, crypter) == INNER


def test_7296_21_any_padding_content_accepted() -> None:
    """The receiver accepts any pad octets and any aligned pad length."""
    c = CbcHmacCrypter(bytes(16), bytes(32))
    first, inner = encode_payloads(INNER)
    pad = 16 + (-(len(inner) + 1)) % 16
    plaintext = inner + bytes(range(0xA0, 0xA0 + pad)) + bytes((pad,))
    msg = _hand_seal(c, first, plaintext)
    assert unprotect(msg, parse_header(msg), c) == INNER


def _hand_seal(c, first: int, plaintext: bytes, iv: bytes | None = None) -> bytes:  # type: ignore[no-untyped-def]
    iv = iv if iv is not None else bytes(c.iv_size)
    sk_len = 4 + len(iv) + len(plaintext) + c.icv_size
    aad = HEADER.pack(SPI_I, SPI_R, 46, 0x20, IKE_AUTH, 0x08, 1, 28 + sk_len) + GENERIC.pack(
        first, 0, sk_len
    )
    return aad + iv + c.seal(aad, iv, plaintext)


def test_7296_21_bad_pad_length(crypter) -> None:  # type: ignore[no-untyped-def]
    first, inner = encode_payloads([Notify(0, 16396)])
    bs = crypter.block_size
    body = inner + bytes((-(len(inner) + 1)) % bs)
    plaintext = body + bytes((len(body) + 1,))  # Pad Length past the start
    msg = _hand_seal(crypter, first, plaintext)
    with pytest.raises(InvalidSyntax, match=r"Pad Length \d+ exceeds"):
        unprotect(msg, parse_header(msg), crypter)


def test_7296_22_flipped_icv_bit(crypter) -> None:  # type: ignore[no-untyped-def]
    msg = bytearray(seal(crypter))
    msg[-1] ^= 0x01
    with pytest.raises(IntegrityError):
        unprotect(bytes(msg), parse_header(bytes(msg)), crypter)


@pytest.mark.parametrize("where", [0, 19, 22, 28, 40, -20])
def test_7296_22_flipped_bit_anywhere(crypter, where: int) -> None:  # type: ignore[no-untyped-def]
    """Header (SPI, flags, Message ID), SK header (Next Payload), IV, ciphertext: all covered."""
    msg = bytearray(seal(crypter))
    msg[where] ^= 0x80
    with pytest.raises(IntegrityError):
        unprotect(bytes(msg), parse_header(bytes(msg)), crypter)


def test_7296_22_sk_too_short_or_misaligned() -> None:
    c = CbcHmacCrypter(bytes(16), bytes(32))
    for body in (bytes(32), bytes(33 + 16 + 1)):
        msg = HEADER.pack(SPI_I, SPI_R, 46, 0x20, 35, 8, 1, 32 + len(body)) + GENERIC.pack(
            35, 0, 4 + len(body)
        ) + body
        with pytest.raises(IntegrityError):
            unprotect(msg, parse_header(msg), c)


def test_7296_22_structural_damage_dropped(crypter) -> None:  # type: ignore[no-untyped-def]
    msg = bytearray(seal(crypter))
    msg[30] ^= 0x01  # SK Payload Length: the chain no longer adds up
    with pytest.raises(DropMessage, match="unauthenticated part"):
        unprotect(bytes(msg), parse_header(bytes(msg)), crypter)


def test_7296_21_sk_not_last_dropped(crypter) -> None:  # type: ignore[no-untyped-def]
    """Outer structure is unauthenticated: any fault there is a silent drop."""
    msg = seal(crypter)
    bad = msg[:28] + msg[28:] + bytes(4)
    bad = bad[:24] + len(bad).to_bytes(4, "big") + bad[28:]
    with pytest.raises(DropMessage, match="not the last payload"):
        unprotect(bad, parse_header(bad), crypter)


def test_no_sk_payload_dropped(crypter) -> None:  # type: ignore[no-untyped-def]
    from ikev2.protocol.codec import build_message

    msg = build_message(SPI_I, SPI_R, 37, 0x08, 2, [Notify(0, 16396)])
    with pytest.raises(DropMessage, match="no SK payload"):
        unprotect(msg, parse_header(msg), crypter)


def test_unprotected_payloads_before_sk(crypter) -> None:  # type: ignore[no-untyped-def]
    before = [Unknown(200, False, b"abc"), Notify(0, 16430)]
    msg = seal(crypter, unprotected=before)
    hdr = parse_header(msg)
    assert hdr.next_payload == 200
    assert unprotect(msg, hdr, crypter) == before + INNER


def test_7296_08_inner_unknown_critical(crypter) -> None:  # type: ignore[no-untyped-def]
    msg = seal(crypter, payloads=[Notify(0, 16396), Unknown(200, True, b"x")])
    with pytest.raises(UnsupportedCriticalPayload) as ei:
        unprotect(msg, parse_header(msg), crypter)
    assert ei.value.data == b"\xc8"


def test_7634_03_aead_aad_is_header_and_sk_header() -> None:
    """AAD = IKE header + SK generic header: 32 octets when SK is the first payload."""
    seen: list[bytes] = []

    class Spy(GcmCrypter):
        def seal(self, aad: bytes, iv: bytes, plaintext: bytes) -> bytes:
            seen.append(aad)
            return super().seal(aad, iv, plaintext)

    msg = seal(Spy(bytes(20)))
    assert seen == [msg[:32]]


def test_protect_rejects_bad_arguments() -> None:
    c = GcmCrypter(bytes(20))
    with pytest.raises(ValueError, match="IV of 4 octets"):
        protect(SPI_I, SPI_R, 35, 8, 1, INNER, c, bytes(4))
    with pytest.raises(ValueError, match="padding"):
        protect(SPI_I, SPI_R, 35, 8, 1, INNER, c, bytes(8), 300)


# ------------------------------------------------------------------ fragments (RFC 7383)

BIG: list[Payload] = [
    IDi(3, b"user@example.org"),
    CERT(4, os.urandom(1500)),
    IDr(2, b"gw.example.org"),
    AUTH(1, os.urandom(256)),
    *INNER[2:],
]


def frag(crypter, payloads=BIG, max_size=576):  # type: ignore[no-untyped-def]
    ivs = [bytes([i]) * crypter.iv_size for i in range(1, 100)]
    return protect_fragments(SPI_I, SPI_R, IKE_AUTH, 0x08, 1, payloads, crypter, ivs, max_size)


def test_7383_02_03_fragment_layout(crypter) -> None:  # type: ignore[no-untyped-def]
    msgs = frag(crypter)
    assert len(msgs) > 3
    for i, m in enumerate(msgs, 1):
        assert len(m) <= 576
        hdr = parse_header(m)
        assert hdr.next_payload == 53 and hdr.message_id == 1 and hdr.exchange == IKE_AUTH
        _, [skf] = parse_message(m)
        assert isinstance(skf, SKF)
        assert (skf.fragment_number, skf.total_fragments) == (i, len(msgs))
        assert skf.next_type == (35 if i == 1 else 0)


def test_7383_06_reassembly_any_order(crypter) -> None:  # type: ignore[no-untyped-def]
    msgs = frag(crypter)
    got = [unprotect_fragment(m, parse_header(m), crypter) for m in reversed(msgs)]
    assert reassemble(got) == BIG
    assert reassemble(got + got[:1]) == BIG  # a retransmitted fragment is harmless


def test_7383_06_each_fragment_authenticated(crypter) -> None:  # type: ignore[no-untyped-def]
    m = bytearray(frag(crypter)[1])
    m[34] ^= 1  # Total Fragments high octet (covered by the AAD)
    with pytest.raises(IntegrityError):
        unprotect_fragment(bytes(m), parse_header(bytes(m)), crypter)


def test_7383_06_reassembly_errors(crypter) -> None:  # type: ignore[no-untyped-def]
    msgs = frag(crypter)
    got = [unprotect_fragment(m, parse_header(m), crypter) for m in msgs]
    with pytest.raises(InvalidSyntax, match="missing"):
        reassemble(got[:-1])
    with pytest.raises(InvalidSyntax, match="Total Fragments"):
        reassemble([*got, SKF(0, 1, 99, b"")])
    with pytest.raises(InvalidSyntax, match="two different fragments"):
        reassemble([*got, SKF(0, 2, len(got), b"other")])
    with pytest.raises(InvalidSyntax, match="no fragments"):
        reassemble([])


def test_7383_single_fragment_and_callable_ivs() -> None:
    c = GcmCrypter(bytes(20))
    counter = iter(range(1, 1000))
    msgs = protect_fragments(
        SPI_I, SPI_R, 37, 0, 2, [Notify(0, 16396)], c,
        lambda: next(counter).to_bytes(8, "big"), 1280,
    )
    assert len(msgs) == 1
    skf = unprotect_fragment(msgs[0], parse_header(msgs[0]), c)
    assert (skf.fragment_number, skf.total_fragments, skf.next_type) == (1, 1, 41)
    assert reassemble([skf]) == [Notify(0, 16396)]
    with pytest.raises(ValueError, match="no room"):
        protect_fragments(SPI_I, SPI_R, 37, 0, 2, [Notify(0, 1)], c, lambda: bytes(8), 60)


def test_unprotect_on_fragment_is_dropped(crypter) -> None:  # type: ignore[no-untyped-def]
    m = frag(crypter)[0]
    with pytest.raises(DropMessage, match="use unprotect_fragment"):
        unprotect(m, parse_header(m), crypter)
    plain = seal(crypter)
    with pytest.raises(DropMessage, match="no SKF"):
        unprotect_fragment(plain, parse_header(plain), crypter)
