"""The RFC 6275 raw-MH transport: packet construction only (the machine has no kernel
MIPv6; sending needs it). REQUIREMENTS 4877-20, 4877-22: BU with a Home Address option
from the CoA, BA with a type 2 routing header to the CoA, checksums per RFC 6275 §6.1.1.

The golden packets were cross-checked, when written, against scapy 2.8's IPv6 / HAO /
type 2 routing header / MIP6 layers (an independent encoder, not a dependency)."""

from __future__ import annotations

import ipaddress

import pytest

from mobility import raw_mh
from mobility.checksum import checksum_addresses
from mobility.errors import TransportError
from mobility.mh import BindingAck, BindingUpdate, parse_mh
from mobility.raw_mh import (
    RawMhSocket,
    build_ba_packet,
    build_bu_packet,
    destination_options,
    kernel_supports_mip6,
    type2_routing_header,
)
from mobility.registry import BaFlags, BuFlags

COA, HA, HOA = "2001:db8:2::10", "2001:db8:1::1", "2001:db8:1::100"
BU = BindingUpdate(7, BuFlags.A | BuFlags.H | BuFlags.K, 100)
BA = BindingAck(0, 7, BaFlags.K, 100)
BU_PACKET = (
    "6000000000283c40" "20010db8000200000000000000000010" "20010db8000100000000000000000001"
    "8702" "01020000" "c910" "20010db8000100000000000000000100"
    "3b01050091840007d000006401020000"
)
BA_PACKET = (
    "6000000000282b40" "20010db8000100000000000000000001" "20010db8000200000000000000000010"
    "87020201" "00000000" "20010db8000100000000000000000100"
    "3b010600600500800007006401020000"
)


def test_bu_packet_golden() -> None:
    """IPv6 src = CoA, next header 60; Destination Options (Hdr Ext Len 2: PadN(4), Home
    Address option 201 with the HoA at offset 8n+6); MH checksum with src = HoA."""
    pkt = build_bu_packet(BU, coa=COA, ha=HA, hoa=HOA)
    assert pkt.hex() == BU_PACKET
    assert pkt[40 + 6] == 0xC9  # HAO Type at offset 6 of its header: 8n+6
    src, dst = checksum_addresses(COA, HA, home_address_option=HOA)
    assert parse_mh(pkt[64:], src=src, dst=dst) == BU


def test_ba_packet_golden() -> None:
    """IPv6 dst = CoA, next header 43; type 2 routing header (segments left 1, HoA); MH
    checksum with dst = HoA, the final destination."""
    pkt = build_ba_packet(BA, ha=HA, coa=COA, hoa=HOA)
    assert pkt.hex() == BA_PACKET
    assert parse_mh(pkt[64:], src=HA, dst=HOA) == BA
    with pytest.raises(ValueError, match="checksum"):
        parse_mh(pkt[64:], src=HA, dst=COA)  # the CoA is not what the checksum covers


def test_extension_headers() -> None:
    assert destination_options(HOA, next_header=0)[:2] == b"\x00\x02"
    assert len(destination_options(HOA)) == 24
    rh = type2_routing_header(HOA)
    assert rh[:4] == bytes([135, 2, 2, 1]) and rh[8:] == ipaddress.IPv6Address(HOA).packed


def test_raw_socket_refuses_without_kernel_mip6(monkeypatch: pytest.MonkeyPatch) -> None:
    """The raw transport is marked as needing kernel MIPv6 and says so."""
    monkeypatch.setattr(raw_mh, "kernel_supports_mip6", lambda: (False, "no mip6 here"))
    with pytest.raises(TransportError, match="needs a kernel with Mobile IPv6"):
        RawMhSocket.open()
    ok, why = kernel_supports_mip6()
    assert isinstance(ok, bool) and why
