"""IKE header (RFC 7296 §3.1): REQUIREMENTS 7296-01, 7296-03/04, 7296-81."""

from __future__ import annotations

import pytest

from ikev2.errors import DropMessage, InvalidMajorVersion
from ikev2.protocol.codec import build_message, parse_message
from ikev2.protocol.header import HEADER_LEN, Header, parse_header
from ikev2.protocol.payloads import Nonce

SPI_I = bytes.fromhex("0102030405060708")
SPI_R = bytes(8)
GOLDEN = bytes.fromhex("0102030405060708 0000000000000000 21 20 22 08 00000000 0000001c")


def test_7296_01_golden_header() -> None:
    hdr = Header(SPI_I, SPI_R, 33, 0x20, 34, 0x08, 0, 28)
    assert hdr.pack() == GOLDEN
    assert parse_header(GOLDEN) == hdr
    assert parse_header(memoryview(GOLDEN)) == hdr
    assert HEADER_LEN == 28


def test_7296_03_04_flags() -> None:
    hdr = parse_header(GOLDEN)
    assert hdr.is_initiator and not hdr.is_response and hdr.major == 2
    resp = Header(SPI_I, SPI_I, 0, 0x20, 37, 0x20, 7, 28)
    assert resp.is_response and not resp.is_initiator


def test_7296_01_truncated_header_dropped() -> None:
    for n in (0, 1, 27):
        with pytest.raises(DropMessage, match="shorter than 28"):
            parse_header(GOLDEN[:n])


@pytest.mark.parametrize("length", [0, 27, 29, 0xFFFFFFFF])
def test_7296_01_length_field_mismatch_dropped(length: int) -> None:
    data = GOLDEN[:24] + length.to_bytes(4, "big")
    with pytest.raises(DropMessage, match="Length field"):
        parse_header(data)


def test_7296_01_datagram_longer_than_length_dropped() -> None:
    with pytest.raises(DropMessage):
        parse_header(GOLDEN + b"\x00")


def test_7296_81_major_version_3_answered() -> None:
    data = GOLDEN[:17] + b"\x30" + GOLDEN[18:]
    with pytest.raises(InvalidMajorVersion) as ei:
        parse_header(data)
    assert ei.value.header.message_id == 0  # type: ignore[attr-defined]
    assert ei.value.header.spi_i == SPI_I  # type: ignore[attr-defined]


def test_7296_81_major_version_1_dropped() -> None:
    data = GOLDEN[:17] + b"\x10" + GOLDEN[18:]
    with pytest.raises(DropMessage, match="major version 1"):
        parse_header(data)


def test_7296_81_minor_version_ignored() -> None:
    data = GOLDEN[:17] + b"\x2f" + GOLDEN[18:]
    hdr = parse_header(data)
    assert hdr.major == 2 and hdr.minor == 15


def test_7296_02_unknown_exchange_and_flags_not_judged_here() -> None:
    data = GOLDEN[:18] + bytes([99, 0xFF]) + GOLDEN[20:]
    hdr = parse_header(data)
    assert hdr.exchange == 99 and hdr.flags == 0xFF


def test_build_message_header_fields() -> None:
    msg = build_message(SPI_I, SPI_R, 34, 0x08, 5, [Nonce(bytes(16))])
    hdr, payloads = parse_message(msg)
    assert hdr == Header(SPI_I, SPI_R, 40, 0x20, 34, 0x08, 5, 28 + 20)
    assert payloads == [Nonce(bytes(16))]
    with pytest.raises(ValueError):
        build_message(b"short", SPI_R, 34, 0, 0, [])
