"""Strict Mobility Header parsing: each malformation raises its own exception (RFC 6275
§9.2 order: lengths, checksum, MH type; then Reserved/Payload Proto in strict mode)."""

from __future__ import annotations

import pytest

from mobility.errors import (
    MhChecksumError,
    MhLengthError,
    MhParseError,
    MhReservedError,
    MhValueError,
    OptionError,
    PayloadProtoError,
    UnknownMhType,
)
from mobility.mh import (
    BindingAck,
    BindingError,
    BindingRefreshRequest,
    BindingUpdate,
    HomeTestInit,
    binding_error_for,
    build_mh,
    min_length,
    parse_mh,
)
from mobility.options import BindingAuthorizationData, RawOption
from mobility.registry import BeStatus, BuFlags, MhType, OptionType

HOA, HA = "2001:db8:1::100", "2001:db8:1::1"


def raw_mh(mh_type: int, body: bytes, *, proto: int = 59, reserved: int = 0,
           hdr_len: int | None = None) -> bytes:
    total = 6 + len(body)
    if hdr_len is None:
        hdr_len = total // 8 - 1
    return bytes([proto, hdr_len, mh_type, reserved, 0, 0]) + body


BU_BODY = bytes.fromhex("0001c0000010") + bytes.fromhex("01020000")  # seq 1, A|H, PadN(4)


def test_valid_raw_bu_parses() -> None:
    msg = parse_mh(raw_mh(MhType.BU, BU_BODY))
    assert msg == BindingUpdate(1, BuFlags.A | BuFlags.H, 16)


@pytest.mark.parametrize("data", [b"", b"\x3b\x00\x05", b"\x3b" * 7])
def test_shorter_than_eight_octets(data: bytes) -> None:
    with pytest.raises(MhLengthError):
        parse_mh(data)


def test_header_len_disagrees_with_octets() -> None:
    """Header Len says 16 octets, 24 arrive (and the reverse)."""
    good = raw_mh(MhType.BU, BU_BODY)
    with pytest.raises(MhLengthError) as err:
        parse_mh(good + bytes(8))
    assert err.value.offset == 1
    with pytest.raises(MhLengthError):
        parse_mh(good[:8])


def test_header_len_below_minimum_for_type() -> None:
    """RFC 6275 §9.2: Header Len below the message's minimum → Parameter Problem (code 0).
    A Binding Error needs 24 octets, a BU 16."""
    assert (min_length(MhType.BE), min_length(MhType.BU), min_length(MhType.BRR)) == (24, 16, 8)
    with pytest.raises(MhLengthError, match="BE needs at least 24"):
        parse_mh(raw_mh(MhType.BE, bytes(10)))
    with pytest.raises(MhLengthError, match="BU needs at least 16"):
        parse_mh(raw_mh(MhType.BU, bytes(2)))


@pytest.mark.parametrize("mh_type", [8, 13, 17, 255])
def test_unknown_mh_type_maps_to_binding_error_status_2(mh_type: int) -> None:
    """RFC 6275 §9.2: unrecognized MH type → Binding Error, status 2, HoA from the HAO."""
    with pytest.raises(UnknownMhType) as err:
        parse_mh(raw_mh(mh_type, bytes(10)))
    assert err.value.mh_type == mh_type
    assert err.value.be_status == BeStatus.UNRECOGNIZED_MH_TYPE == 2
    be = binding_error_for(err.value, HOA)
    assert be == BindingError(2, HOA)
    assert parse_mh(build_mh(be, src=HA, dst=HOA), src=HA, dst=HOA) == be


def test_checksum_is_checked_before_the_type() -> None:
    """A corrupted packet of an unknown type is dropped (checksum), not answered (BE)."""
    with pytest.raises(MhChecksumError):
        parse_mh(raw_mh(200, bytes(10)) , src=HOA, dst=HA)


def test_reserved_and_payload_proto_strict_only() -> None:
    """RFC 6275 §6.1.1: Payload Proto is 59 and Reserved is 0 on send; strict parsing
    rejects other values, strict=False ignores them as the RFC tells receivers to."""
    with pytest.raises(MhReservedError) as err:
        parse_mh(raw_mh(MhType.BU, BU_BODY, reserved=1))
    assert err.value.offset == 3
    assert isinstance(parse_mh(raw_mh(MhType.BU, BU_BODY, reserved=1), strict=False),
                      BindingUpdate)
    with pytest.raises(PayloadProtoError):
        parse_mh(raw_mh(MhType.BU, BU_BODY, proto=6))
    assert isinstance(parse_mh(raw_mh(MhType.BU, BU_BODY, proto=6), strict=False),
                      BindingUpdate)


@pytest.mark.parametrize(("mh_type", "body", "offset"), [
    (MhType.BRR, b"\x00\x01", 6),
    (MhType.HOTI, b"\x80\x00" + bytes(8), 6),
    (MhType.BE, b"\x01\x01" + bytes(16), 7),
])
def test_message_reserved_fields(mh_type: int, body: bytes, offset: int) -> None:
    data = raw_mh(mh_type, body)
    with pytest.raises(MhReservedError) as err:
        parse_mh(data)
    assert err.value.offset == offset
    parse_mh(data, strict=False)


def test_option_length_runs_past_the_end() -> None:
    body = bytes.fromhex("0001c0000010") + bytes([5, 200, 0, 0])  # BAD with Length 200
    with pytest.raises(OptionError) as err:
        parse_mh(raw_mh(MhType.BU, body))
    assert err.value.option_type == OptionType.BINDING_AUTHORIZATION_DATA
    assert err.value.offset == 13


def test_option_without_length_octet() -> None:
    body = bytes.fromhex("0001c0000010") + bytes([0, 0, 0, 7])  # Pad1 x3, then type 7 alone
    with pytest.raises(OptionError, match="no Length"):
        parse_mh(raw_mh(MhType.BU, body))


@pytest.mark.parametrize(("opt", "name"), [
    (bytes([2, 3, 0, 0, 0]) + bytes([0] * 3), "BindingRefreshAdvice"),
    (bytes([3, 4]) + bytes(4) + bytes(2), "AlternateCareOfAddress"),
    (bytes([35, 5]) + bytes(5) + bytes(1), "BindingIdentifier"),
    (bytes([31, 4]) + bytes(4) + bytes(2), "NatDetection"),
])
def test_fixed_size_option_with_wrong_length(opt: bytes, name: str) -> None:
    body = bytes.fromhex("0001c0000010") + opt
    body += bytes(-(6 + len(body)) % 8)
    with pytest.raises(OptionError, match=name):
        parse_mh(raw_mh(MhType.BU, body))


def test_padn_with_nonzero_content() -> None:
    body = bytes.fromhex("0001c0000010") + bytes([1, 2, 0xAA, 0])
    with pytest.raises(MhReservedError):
        parse_mh(raw_mh(MhType.BU, body))
    assert parse_mh(raw_mh(MhType.BU, body), strict=False) == BindingUpdate(
        1, BuFlags.A | BuFlags.H, 16)


def test_unknown_option_is_kept_raw() -> None:
    """RFC 6275 §6.2.1: unrecognized options are skipped, never fatal; we keep them."""
    body = bytes.fromhex("0001c0000010") + bytes([200, 2, 0xDE, 0xAD])
    msg = parse_mh(raw_mh(MhType.BU, body))
    assert isinstance(msg, BindingUpdate)
    assert msg.options == (RawOption(200, b"\xde\xad"),)
    assert build_mh(msg) == raw_mh(MhType.BU, body)


def test_all_parse_errors_are_value_errors() -> None:
    for cls in (MhLengthError, MhReservedError, PayloadProtoError, OptionError, UnknownMhType,
                MhChecksumError):
        assert issubclass(cls, MhParseError)
        assert issubclass(cls, ValueError)


@pytest.mark.parametrize("make", [
    lambda: BindingUpdate(65536),
    lambda: BindingUpdate(1, lifetime=-1),
    lambda: BindingUpdate(1, BuFlags(0x10000)),
    lambda: BindingAck(256, 1),
    lambda: HomeTestInit(b"short"),
    lambda: RawOption(OptionType.ALTERNATE_COA, bytes(16)),
    lambda: RawOption(OptionType.PADN, b""),
    lambda: BindingRefreshRequest(("not an option",)),  # type: ignore[arg-type]
    lambda: BindingError(1, "not-an-address"),
    lambda: BindingAuthorizationData(bytes(256)),
])
def test_out_of_range_values_refused_at_construction(make: object) -> None:
    with pytest.raises(MhValueError):
        make()  # type: ignore[operator]


def test_too_long_and_half_addressed_builds_refused() -> None:
    big = BindingUpdate(1, options=tuple(BindingAuthorizationData(bytes(250)) for _ in range(9)))
    with pytest.raises(MhValueError, match="exceeds 2048"):
        build_mh(big)
    with pytest.raises(MhValueError, match="both src and dst"):
        build_mh(BindingRefreshRequest(), src=HOA)
