"""Golden bytes of every Mobility Header message (RFC 6275 §6.1) with its checksum.

The hex strings were cross-checked, when written, against an independent encoder (the
MIP6 layers of scapy 2.8, not a dependency of this project): same octets, same checksums.
Pseudo-header addresses: src = HoA 2001:db8:1::100, dst = HA 2001:db8:1::1.
"""

from __future__ import annotations

import ipaddress

import pytest

from mobility.checksum import checksum_addresses, internet_checksum, mh_checksum
from mobility.errors import MhChecksumError
from mobility.mh import (
    BindingAck,
    BindingError,
    BindingRefreshRequest,
    BindingUpdate,
    HomeTest,
    HomeTestInit,
    build_mh,
    parse_mh,
)
from mobility.options import AlternateCareOfAddress, BindingRefreshAdvice
from mobility.registry import BaFlags, BaStatus, BeStatus, BuFlags

HOA, HA, COA = "2001:db8:1::100", "2001:db8:1::1", "2001:db8:2::10"
COOKIE = bytes(range(1, 9))

GOLDEN = [
    ("bu_ahk", BindingUpdate(7, BuFlags.A | BuFlags.H | BuFlags.K, 100),
     "3b01050091840007d000006401020000"),
    ("bu_altcoa", BindingUpdate(7, BuFlags.A | BuFlags.H | BuFlags.K, 100,
                                (AlternateCareOfAddress(COA),)),
     "3b03050060990007d00000640100031020010db8000200000000000000000010"),
    ("bu_refresh_advice", BindingUpdate(7, BuFlags.A | BuFlags.H | BuFlags.K, 100,
                                        (BindingRefreshAdvice(30),)),
     "3b01050090660007d00000640202001e"),
    ("ba_k", BindingAck(BaStatus.ACCEPTED, 7, BaFlags.K, 100),
     "3b010600600500800007006401020000"),
    ("brr", BindingRefreshRequest(), "3b00000067fb0000"),
    ("hoti", HomeTestInit(COOKIE), "3b01010056de00000102030405060708"),
    ("hot", HomeTest(0x1234, COOKIE, b"\x11" * 8),
     "3b020300fe5c123401020304050607081111111111111111"),
    ("be", BindingError(BeStatus.UNRECOGNIZED_MH_TYPE, HOA),
     "3b020700302f020020010db8000100000000000000000100"),
]


@pytest.mark.parametrize(("name", "msg", "hexstr"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_build_and_parse(name: str, msg: object, hexstr: str) -> None:
    """RFC 6275 §6.1.1-§6.1.9 layouts, Header Len in 8-octet units, padding to 8n, the
    checksum over the pseudo-header (REQUIREMENTS 4877-09 for the BU/BA K flags)."""
    wire = bytes.fromhex(hexstr)
    assert build_mh(msg, src=HOA, dst=HA) == wire  # type: ignore[arg-type]
    assert parse_mh(wire, src=HOA, dst=HA) == msg


def test_flag_constants() -> None:
    """4877-09: BU A 0x8000, H 0x4000, L 0x2000, K 0x1000 (flags word); BA K 0x80."""
    assert (BuFlags.A, BuFlags.H, BuFlags.L, BuFlags.K) == (0x8000, 0x4000, 0x2000, 0x1000)
    assert BaFlags.K == 0x80
    bu = parse_mh(bytes.fromhex(GOLDEN[0][2]))
    assert isinstance(bu, BindingUpdate)
    assert (bu.ack, bu.home, bu.link_local, bu.key_mgmt) == (True, True, False, True)
    assert bu.lifetime_seconds == 400  # 4-second units (RFC 6275 §6.1.7)


def test_unknown_flag_bits_preserved() -> None:
    """Bits without a name here (NEMO R, PMIPv6 P, DSMIPv6 F/T, reserved) survive a round
    trip unchanged (RFC 6275 §6.1.7; 5555-04 F flag is carried even if not interpreted)."""
    bu = BindingUpdate(1, BuFlags(0x8000 | 0x0400 | 0x0100 | 0x0001), 1)
    again = parse_mh(build_mh(bu))
    assert isinstance(again, BindingUpdate)
    assert int(again.flags) == 0x8501
    ba = BindingAck(0, 1, BaFlags(0x80 | 0x10 | 0x01))
    again_ba = parse_mh(build_mh(ba))
    assert isinstance(again_ba, BindingAck)
    assert int(again_ba.flags) == 0x91 and again_ba.key_mgmt


def test_checksum_verifies_and_detects_corruption() -> None:
    """RFC 6275 §6.1.1 / §9.2: a wrong checksum is an error (silently dropped upstream)."""
    wire = bytearray(bytes.fromhex(GOLDEN[0][2]))
    assert internet_checksum(
        ipaddress.IPv6Address(HOA).packed + ipaddress.IPv6Address(HA).packed
        + len(wire).to_bytes(4, "big") + b"\x00\x00\x00\x87" + bytes(wire)
    ) == 0
    wire[9] ^= 0x01
    with pytest.raises(MhChecksumError) as err:
        parse_mh(bytes(wire), src=HOA, dst=HA)
    assert err.value.offset == 4
    # the same octets verify for no other address pair
    with pytest.raises(MhChecksumError):
        parse_mh(bytes.fromhex(GOLDEN[0][2]), src=COA, dst=HA)


def test_checksum_address_rules() -> None:
    """RFC 6275 §6.1.1: with a Home Address option the HoA is the pseudo-header source;
    with a type 2 routing header the HoA (final destination) is the destination."""
    assert checksum_addresses(COA, HA, home_address_option=HOA) == (
        ipaddress.IPv6Address(HOA), ipaddress.IPv6Address(HA))
    assert checksum_addresses(HA, COA, type2_routing_address=HOA) == (
        ipaddress.IPv6Address(HA), ipaddress.IPv6Address(HOA))
    assert checksum_addresses(COA, HA) == (ipaddress.IPv6Address(COA),
                                           ipaddress.IPv6Address(HA))
    wire = build_mh(GOLDEN[0][1], src=HOA, dst=HA)  # type: ignore[arg-type]
    assert mh_checksum(HOA, HA, wire) == int.from_bytes(wire[4:6], "big")


def test_build_without_addresses_leaves_checksum_zero() -> None:
    wire = build_mh(BindingRefreshRequest())
    assert wire[4:6] == b"\x00\x00"
    assert parse_mh(wire) == BindingRefreshRequest()  # no addresses: not verified
