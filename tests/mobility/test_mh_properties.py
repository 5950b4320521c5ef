"""Property tests: parse(build(x)) == x for every message and option (RFC 6275 §6.1-§6.2,
RFC 5648 §6.1, RFC 5555 §3), the encoding is always a multiple of 8 with every option on
its alignment, and the checksum verifies for the addresses it was built with."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mobility.checksum import mh_checksum
from mobility.errors import MhChecksumError, MhParseError
from mobility.mh import (
    BindingAck,
    BindingError,
    BindingRefreshRequest,
    BindingUpdate,
    CareOfTest,
    CareOfTestInit,
    HomeTest,
    HomeTestInit,
    Message,
    build_mh,
    parse_mh,
)
from mobility.options import (
    AlternateCareOfAddress,
    BindingAuthorizationData,
    BindingIdentifier,
    BindingRefreshAdvice,
    Ipv4CareOfAddress,
    MobilityOption,
    NatDetection,
    NonceIndices,
    RawOption,
)
from mobility.registry import BaFlags, BidFlags, BuFlags

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
v6 = st.builds(ipaddress.IPv6Address, st.integers(0, (1 << 128) - 1))
v4 = st.builds(ipaddress.IPv4Address, st.integers(0, (1 << 32) - 1))
cookie = st.binary(min_size=8, max_size=8)
raw_types = st.integers(0, 255).filter(lambda t: t not in (0, 1, 2, 3, 4, 5, 31, 32, 35))

options: st.SearchStrategy[MobilityOption] = st.one_of(
    st.builds(BindingRefreshAdvice, u16),
    st.builds(AlternateCareOfAddress, v6),
    st.builds(NonceIndices, u16, u16),
    st.builds(BindingAuthorizationData, st.binary(max_size=40)),
    st.builds(NatDetection, st.booleans(), u32),
    st.builds(Ipv4CareOfAddress, v4),
    st.builds(BindingIdentifier, u16, u8, st.builds(BidFlags, u8),
              st.none() | v4 | v6),
    st.builds(RawOption, raw_types, st.binary(max_size=40)),
)
option_lists = st.lists(options, max_size=6).map(tuple)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(BindingRefreshRequest, option_lists),
    st.builds(HomeTestInit, cookie, option_lists),
    st.builds(CareOfTestInit, cookie, option_lists),
    st.builds(HomeTest, u16, cookie, cookie, option_lists),
    st.builds(CareOfTest, u16, cookie, cookie, option_lists),
    st.builds(BindingUpdate, u16, st.builds(BuFlags, u16), u16, option_lists),
    st.builds(BindingAck, u8, u16, st.builds(BaFlags, u8), u16, option_lists),
    st.builds(BindingError, u8, v6, option_lists),
)


@settings(max_examples=400, deadline=None)
@given(msg=messages, src=v6, dst=v6)
def test_round_trip_with_checksum(msg: Message, src: ipaddress.IPv6Address,
                                  dst: ipaddress.IPv6Address) -> None:
    """parse(build(x)) == x, strict, checksum verified (RFC 6275 §6.1.1)."""
    wire = build_mh(msg, src=src, dst=dst)
    assert len(wire) % 8 == 0 and wire[1] == len(wire) // 8 - 1
    assert parse_mh(wire, src=src, dst=dst, strict=True) == msg


@settings(max_examples=200, deadline=None)
@given(msg=messages)
def test_encoding_is_canonical(msg: Message) -> None:
    """build(parse(b)) == b for every b we build: padding placement is deterministic."""
    wire = build_mh(msg)
    assert build_mh(parse_mh(wire)) == wire


@settings(max_examples=200, deadline=None)
@given(msg=messages, src=v6, dst=v6, flip=st.integers(0, 10_000))
def test_any_single_bit_flip_is_caught(msg: Message, src: ipaddress.IPv6Address,
                                       dst: ipaddress.IPv6Address, flip: int) -> None:
    """One flipped bit anywhere either fails the checksum or another strict check: a
    one's-complement sum always detects single-bit errors (RFC 1071)."""
    wire = bytearray(build_mh(msg, src=src, dst=dst))
    bit = flip % (len(wire) * 8)
    wire[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(MhParseError):
        parse_mh(bytes(wire), src=src, dst=dst)


def _junk(units: int) -> st.SearchStrategy[bytes]:
    """Random octets with a consistent Header Len and a known MH type, so the option and
    message decoders (not just the length check) see them."""
    n = (units + 1) * 8
    return st.tuples(st.integers(0, 7), st.integers(0, 1), st.binary(min_size=n, max_size=n)).map(
        lambda t: bytes([59 if t[1] else t[2][0], units, t[0]]) + t[2][3:]
    )


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=80) | st.integers(0, 5).flatmap(_junk),
       strict=st.booleans())
def test_parser_never_crashes_on_junk(data: bytes, strict: bool) -> None:
    """Arbitrary octets give a message or an MhParseError, never another exception; what
    parses re-encodes to something that parses to the same message."""
    with contextlib.suppress(MhParseError):
        msg = parse_mh(data, strict=strict)
        assert parse_mh(build_mh(msg)) == msg


@settings(max_examples=100, deadline=None)
@given(msg=messages, src=v6, dst=v6, other=v6)
def test_checksum_binds_the_addresses(msg: Message, src: ipaddress.IPv6Address,
                                      dst: ipaddress.IPv6Address,
                                      other: ipaddress.IPv6Address) -> None:
    wire = build_mh(msg, src=src, dst=dst)
    if other == src:
        return
    # another source fails the checksum unless its 16-bit words sum to the same value
    same = mh_checksum(other, dst, wire) == mh_checksum(src, dst, wire)
    try:
        parse_mh(wire, src=other, dst=dst)
    except MhChecksumError:
        assert not same
    else:
        assert same
