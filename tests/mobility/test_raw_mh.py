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


class _FakeSock:
    def __init__(self, answer: tuple[bytes, list[tuple[int, int, bytes]]] | None = None) -> None:
        self.sent: list[tuple[list[bytes], list[tuple[int, int, bytes]], int, object]] = []
        self.answer = answer

    def sendmsg(self, bufs: list[bytes], cmsgs: list[tuple[int, int, bytes]], flags: int,
                addr: object) -> int:
        self.sent.append((bufs, cmsgs, flags, addr))
        return sum(map(len, bufs))

    def recvmsg(self, size: int, ancsize: int) -> tuple[bytes, list[tuple[int, int, bytes]],
                                                        int, tuple[str, int, int, int]]:
        assert self.answer is not None
        return self.answer[0], self.answer[1], 0, (HA, 0, 0, 0)


def test_send_bu_is_from_the_hoa_without_socket_options() -> None:
    """The BU goes from the HoA to the HA; the kernel's xfrm `hao` state adds the Home
    Address option and puts the CoA in the source (checked in the qemu guest,
    mip6_raw_mh_bu_ba_esp), so no IPV6_DSTOPTS is passed."""
    fake = _FakeSock()
    RawMhSocket(fake).send_bu(BU, ha=HA, hoa=HOA)  # type: ignore[arg-type]
    [(bufs, cmsgs, _flags, addr)] = fake.sent
    assert addr == (HA, 0)
    assert [(level, kind) for level, kind, _ in cmsgs] == [(41, raw_mh.IPV6_PKTINFO)]
    assert cmsgs[0][2][:16] == ipaddress.IPv6Address(HOA).packed
    assert parse_mh(bufs[0]) == BU  # checksum left to the kernel


def test_ba_routing_header_names_the_coa() -> None:
    """Linux writes the IPV6_RTHDR address into the IPv6 destination and the sendmsg
    destination into the routing header (ipv6_push_rthdr0): a BA for HoA via CoA passes
    dst=HoA and the CoA in the control message; the wire then shows dst CoA, RH2 HoA."""
    fake = _FakeSock()
    RawMhSocket(fake).send_msg(BA, src=HA, dst=HOA, via_coa=COA)  # type: ignore[arg-type]
    [(_bufs, cmsgs, _flags, addr)] = fake.sent
    assert addr == (HOA, 0)
    rthdr = dict(((level, kind), data) for level, kind, data in cmsgs)[(41, raw_mh.IPV6_RTHDR)]
    assert rthdr == type2_routing_header(COA, 0)
    assert raw_mh.type2_address(rthdr) == ipaddress.IPv6Address(COA)


def test_received_extension_headers() -> None:
    """What the kernel delivers after its swaps: the HAO holds the CoA (src is the HoA),
    the type 2 routing header the CoA (the PKTINFO destination is the HoA)."""
    pktinfo = ipaddress.IPv6Address(HOA).packed + b"\x01\x00\x00\x00"
    anc = [(41, raw_mh.IPV6_PKTINFO, pktinfo),
           (41, raw_mh.IPV6_DSTOPTS, destination_options(COA, next_header=135)),
           (41, raw_mh.IPV6_RTHDR, type2_routing_header(COA))]
    got = RawMhSocket(_FakeSock((b"mh", anc))).recv()  # type: ignore[arg-type]
    assert got.msg == b"mh" and str(got.src) == HA
    assert str(got.dst) == HOA and str(got.hao) == COA and str(got.type2) == COA
    bare = RawMhSocket(_FakeSock((b"mh", []))).recv()  # type: ignore[arg-type]
    assert bare.dst is None and bare.hao is None and bare.type2 is None


def test_home_address_option_walks_padding() -> None:
    """Pad1 and PadN before the option, another option first, a truncated header."""
    addr = ipaddress.IPv6Address(HOA)
    body = b"\x00" + b"\x01\x01\x00" + b"\x1e\x00" + b"\xc9\x10" + addr.packed
    body += b"\x00" * (-(2 + len(body)) % 8)
    hdr = bytes([135, (2 + len(body)) // 8 - 1]) + body
    assert raw_mh.home_address_option(hdr) == addr
    assert raw_mh.home_address_option(destination_options(HOA)) == addr
    assert raw_mh.home_address_option(hdr[:12]) is None
    assert raw_mh.home_address_option(b"") is None
    assert raw_mh.type2_address(b"\x00" * 8) is None


def test_builtin_mip6_found_by_the_type2_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's kernels build MIPv6 in (no /sys/module/mip6, found in the qemu guest): the
    type 2 routing header probe decides; this host's kernel refuses the header."""
    monkeypatch.setattr(raw_mh, "_rthdr2_accepted", lambda: True)
    ok, why = kernel_supports_mip6()
    assert ok and ("type 2" in why or "mip6 module" in why)
