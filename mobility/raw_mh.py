"""The RFC 6275 transport: Mobility Header in raw IPv6, the BU with a Home Address
destination option (§6.3, §11.7.1), the BA with a type 2 routing header (§6.4, §9.5.4).

NEEDS A KERNEL WITH MOBILE IPv6 (CONFIG_IPV6_MIP6): Linux only accepts and processes the
Home Address option and the type 2 routing header with it, and only then are BU/BA
protected by the HoA-bound ESP transport SA (REQUIREMENTS 4877-01, 4877-20, 4877-22). The
machine this was written on has no MIPv6, so `RawMhSocket` is untested here; the packet
builders below are tested byte for byte.

Packet layouts built here:

    BU:  IPv6 (src CoA, dst HA, nh 60) | Destination Options (nh 135: PadN(4), Home
         Address option type 201, 16 octets = HoA at offset 8n+6) | MH, checksum with
         src = HoA (RFC 6275 §6.1.1)
    BA:  IPv6 (src HA, dst CoA, nh 43) | type 2 Routing header (nh 135, segments left 1,
         HoA) | MH, checksum with dst = HoA (final destination, RFC 8200 §8.1)
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from mobility.checksum import AddressLike, checksum_addresses
from mobility.errors import TransportError
from mobility.mh import BindingAck, BindingUpdate, Message, build_mh
from mobility.options import padding, v6
from mobility.registry import IPPROTO_MH

IPPROTO_ROUTING = 43
IPPROTO_DSTOPTS = 60
HOME_ADDRESS_OPTION = 201  # 0xC9, RFC 6275 §6.3
ROUTING_TYPE_2 = 2  # RFC 6275 §6.4
HOP_LIMIT = 64
_IPV6 = struct.Struct("!IHBB16s16s")
# Linux <linux/in6.h> values; the socket module has them on Linux builds
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RTHDR = getattr(socket, "IPV6_RTHDR", 57)
IPV6_RECVRTHDR = getattr(socket, "IPV6_RECVRTHDR", 56)
IPV6_DSTOPTS = getattr(socket, "IPV6_DSTOPTS", 59)
IPV6_RECVDSTOPTS = getattr(socket, "IPV6_RECVDSTOPTS", 58)


def destination_options(hoa: AddressLike, next_header: int = IPPROTO_MH) -> bytes:
    """A Destination Options header holding only the Home Address option (24 octets)."""
    body = padding(4) + bytes([HOME_ADDRESS_OPTION, 16]) + v6(hoa).packed  # type at 8n+6
    return bytes([next_header, (2 + len(body)) // 8 - 1]) + body


def type2_routing_header(hoa: AddressLike, next_header: int = IPPROTO_MH) -> bytes:
    """RFC 6275 §6.4: Hdr Ext Len 2, Routing Type 2, Segments Left 1, Reserved, HoA."""
    return struct.pack("!BBBB4x", next_header, 2, ROUTING_TYPE_2, 1) + v6(hoa).packed


def _ipv6(src: AddressLike, dst: AddressLike, next_header: int, payload: bytes) -> bytes:
    return _IPV6.pack(6 << 28, len(payload), next_header, HOP_LIMIT, v6(src).packed,
                      v6(dst).packed) + payload


def build_bu_packet(bu: BindingUpdate, *, coa: AddressLike, ha: AddressLike,
                    hoa: AddressLike) -> bytes:
    """The whole IPv6 packet of a BU sent from `coa` (RFC 6275 §11.7.1)."""
    src, dst = checksum_addresses(coa, ha, home_address_option=hoa)
    mh = build_mh(bu, src=src, dst=dst)
    return _ipv6(coa, ha, IPPROTO_DSTOPTS, destination_options(hoa) + mh)


def build_ba_packet(ba: BindingAck, *, ha: AddressLike, coa: AddressLike,
                    hoa: AddressLike) -> bytes:
    """The whole IPv6 packet of a BA to an away MN (RFC 6275 §9.5.4, §10.3.1)."""
    src, dst = checksum_addresses(ha, coa, type2_routing_address=hoa)
    mh = build_mh(ba, src=src, dst=dst)
    return _ipv6(ha, coa, IPPROTO_ROUTING, type2_routing_header(hoa) + mh)


def kernel_supports_mip6() -> tuple[bool, str]:
    """Whether this kernel does Mobile IPv6, and why we think so."""
    if Path("/sys/module/mip6").exists():
        return True, "the mip6 module is loaded"
    release = os.uname().release
    config = Path(f"/boot/config-{release}")
    if config.exists():
        text = config.read_text(errors="replace")
        if "CONFIG_IPV6_MIP6=y" in text:
            return True, f"{config}: CONFIG_IPV6_MIP6=y"
        if "CONFIG_IPV6_MIP6=m" in text:
            return False, f"{config}: CONFIG_IPV6_MIP6=m but mip6 is not loaded (modprobe mip6)"
        return False, f"{config}: CONFIG_IPV6_MIP6 is not set"
    return False, "no /sys/module/mip6 and no kernel config to check"


@dataclass(frozen=True, slots=True)
class RawReceived:
    msg: bytes  # the Mobility Header (the kernel has swapped HoA/CoA back already)
    src: ipaddress.IPv6Address
    ancillary: tuple[tuple[int, int, bytes], ...]


class RawMhSocket:
    """An IPPROTO_MH raw socket (kernel MIPv6 only, see the module docstring).

    The kernel fills in the MH checksum of raw MH sockets (Linux raw.c sets checksum
    offset 4 for IPPROTO_MH [M]); the HAO goes in an IPV6_DSTOPTS and the type 2 routing
    header in an IPV6_RTHDR control message."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def open(cls, *, check_kernel: bool = True) -> RawMhSocket:
        if check_kernel:
            ok, why = kernel_supports_mip6()
            if not ok:
                raise TransportError(
                    f"the raw Mobility Header transport needs a kernel with Mobile IPv6 "
                    f"({why}); use mobility.transport (MH over UDP) instead"
                )
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH)
        except PermissionError:
            raise TransportError("raw IPPROTO_MH sockets need CAP_NET_RAW (root)") from None
        for opt in (IPV6_RECVPKTINFO, IPV6_RECVDSTOPTS, IPV6_RECVRTHDR):
            sock.setsockopt(socket.IPPROTO_IPV6, opt, 1)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def _pktinfo(src: AddressLike) -> bytes:
        return v6(src).packed + struct.pack("@I", 0)

    def send_bu(self, bu: BindingUpdate, *, coa: AddressLike, ha: AddressLike,
                hoa: AddressLike) -> None:
        """Source HoA (IPV6_PKTINFO) with a Home Address option naming the CoA: the kernel
        swaps the two on output so the wire shows src = CoA, HAO = HoA (UMIP's convention
        [M: not verified on a MIPv6 kernel here])."""
        self.sock.sendmsg(
            [build_mh(bu)],
            [(socket.IPPROTO_IPV6, IPV6_DSTOPTS, destination_options(coa, next_header=0)),
             (socket.IPPROTO_IPV6, IPV6_PKTINFO, self._pktinfo(hoa))],
            0, (str(v6(ha)), 0),
        )

    def send_msg(self, msg: Message, *, src: AddressLike, dst: AddressLike,
                 type2_hoa: AddressLike | None = None) -> None:
        """Any MH; a BA to an away MN passes `dst=coa, type2_hoa=hoa`."""
        cmsgs = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, self._pktinfo(src))]
        if type2_hoa is not None:
            cmsgs.append((socket.IPPROTO_IPV6, IPV6_RTHDR, type2_routing_header(type2_hoa, 0)))
        self.sock.sendmsg([build_mh(msg)], cmsgs, 0, (str(v6(dst)), 0))

    def recv(self, size: int = 2048) -> RawReceived:
        data, anc, _flags, addr = self.sock.recvmsg(size, 1024)
        return RawReceived(data, ipaddress.IPv6Address(addr[0].split("%")[0]), tuple(anc))
