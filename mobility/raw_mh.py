"""The RFC 6275 transport: Mobility Header in raw IPv6, the BU with a Home Address
destination option (§6.3, §11.7.1), the BA with a type 2 routing header (§6.4, §9.5.4).

NEEDS A KERNEL WITH MOBILE IPv6 (CONFIG_IPV6_MIP6): Linux only accepts and processes the
Home Address option and the type 2 routing header with it, and only then are BU/BA
protected by the HoA-bound ESP transport SA (REQUIREMENTS 4877-01, 4877-20, 4877-22). The
development machine has no MIPv6; the qemu guest check `mip6_raw_mh_bu_ba_esp`
(tests/kernel/guest_checks.py, Debian's 6.1 kernel, MIPv6 built in) runs `RawMhSocket`
between an MN and an HA namespace with ikev2d (kernel = "xfrm", RFC 4877 layout) on both:

* Linux swaps HoA and CoA only through xfrm "route optimisation" states, never from a
  socket option: on the MN a `proto hao mode ro coa <CoA>` state (HoA -> HA) inserts the
  HAO and puts the CoA in the source (so `send_bu` sends from the HoA, with no
  IPV6_DSTOPTS), and a `proto route2` state (HA -> HoA, coa CoA) is needed to accept the
  BA's type 2 routing header, whose address must also be a `home`-flagged address
  (`ip addr add <HoA>/128 dev lo home`); on the HA a `proto hao` state (HoA -> HA) is
  needed to accept the HAO (else XfrmInNoStates). The states also enter the packet's
  secpath, so the inbound BU (HA) and BA (MN) policies, and the MN's outbound BU policy,
  need the route-optimisation template after the ESP one. A MIPv6 daemon (UMIP) installs
  all of this; the guest check does it with `ip xfrm`, replacing ikev2d's MH type 5/6
  policies with ones of the same selector and ESP reqid.
* The BA's type 2 routing header goes as an IPV6_RTHDR control message naming the CoA,
  with the HoA as the sendmsg destination: the kernel moves the destination into the
  header (ipv6_push_rthdr0), computes the checksum over the HoA and looks the ESP policy
  up for HA -> HoA.
* On the wire (MN link): BU = IPv6 CoA -> HA | Destination Options (HAO = HoA) | ESP,
  BA = IPv6 HA -> CoA | type 2 routing header (HoA) | ESP, no cleartext MH; the HA's
  socket gets the BU from the HoA with the CoA in the delivered HAO (`RawReceived.hao`),
  the MN's gets the BA to the HoA with the CoA in the delivered header
  (`RawReceived.type2`); the BU/BA SAs count one packet each way on both sides.
* Debian builds mip6 in, so there is no /sys/module/mip6: `kernel_supports_mip6` probes
  whether the kernel takes a type 2 routing header as a socket option.

The agents (`ikev2-mip6 mn/ha`) speak MH over UDP (mobility/transport.py) and cannot be
configured for this transport.

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


def _rthdr2_accepted() -> bool | None:
    """Whether the kernel takes a type 2 routing header as a sticky socket option: Linux
    only knows that routing type when built with CONFIG_IPV6_MIP6 (y or m; ipv6/ipv6_
    sockglue.c), EINVAL otherwise. None when no IPv6 socket can be made."""
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        return None
    try:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RTHDR, type2_routing_header("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def kernel_supports_mip6() -> tuple[bool, str]:
    """Whether this kernel does Mobile IPv6, and why we think so. A built-in mip6 (Debian's
    kernels: CONFIG_IPV6_MIP6=y) has no /sys/module/mip6, so the type 2 routing header
    probe decides before the kernel config is looked for."""
    if Path("/sys/module/mip6").exists():
        return True, "the mip6 module is loaded"
    if _rthdr2_accepted():
        return True, "the kernel accepts a type 2 routing header (CONFIG_IPV6_MIP6)"
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


def home_address_option(dstopts: bytes) -> ipaddress.IPv6Address | None:
    """The address in the Home Address option of a Destination Options header (the data
    of an IPV6_DSTOPTS control message), or None when it has none."""
    end = min(len(dstopts), (dstopts[1] + 1) * 8) if len(dstopts) >= 2 else 0
    i = 2
    while i < end:
        kind = dstopts[i]
        if kind == 0:  # Pad1
            i += 1
            continue
        if i + 2 > end:
            break
        length = dstopts[i + 1]
        if kind == HOME_ADDRESS_OPTION and length == 16 and i + 18 <= end:
            return ipaddress.IPv6Address(dstopts[i + 2:i + 18])
        i += 2 + length
    return None


def type2_address(rthdr: bytes) -> ipaddress.IPv6Address | None:
    """The address of a type 2 routing header (the data of an IPV6_RTHDR control message),
    or None when it is not one."""
    if len(rthdr) < 24 or rthdr[1] != 2 or rthdr[2] != ROUTING_TYPE_2:
        return None
    return ipaddress.IPv6Address(rthdr[8:24])


@dataclass(frozen=True, slots=True)
class RawReceived:
    msg: bytes  # the Mobility Header (the kernel has swapped HoA/CoA back already)
    src: ipaddress.IPv6Address
    ancillary: tuple[tuple[int, int, bytes], ...]

    def _cmsg(self, kind: int) -> bytes | None:
        return next((data for level, k, data in self.ancillary
                     if level == socket.IPPROTO_IPV6 and k == kind), None)

    @property
    def dst(self) -> ipaddress.IPv6Address | None:
        """The destination (IPV6_PKTINFO): the HoA for a BA that came with a type 2
        routing header, the kernel having swapped it in."""
        data = self._cmsg(IPV6_PKTINFO)
        return ipaddress.IPv6Address(data[:16]) if data and len(data) >= 16 else None

    @property
    def hao(self) -> ipaddress.IPv6Address | None:
        """The Home Address option's address as delivered: after the kernel's swap
        (`src` is then the HoA) this is the CoA the packet came from."""
        data = self._cmsg(IPV6_DSTOPTS)
        return home_address_option(data) if data else None

    @property
    def type2(self) -> ipaddress.IPv6Address | None:
        """The type 2 routing header's address as delivered: after the kernel's swap
        (`dst` is then the HoA) this is the CoA the packet was sent to."""
        data = self._cmsg(IPV6_RTHDR)
        return type2_address(data) if data else None


class RawMhSocket:
    """An IPPROTO_MH raw socket (kernel MIPv6 only, see the module docstring).

    The kernel fills in the MH checksum of raw MH sockets (Linux raw.c sets checksum
    offset 4 for IPPROTO_MH), over the flow's addresses: the HoA and the HA. The type 2
    routing header goes in an IPV6_RTHDR control message; the Home Address option is added
    by the kernel's xfrm `hao` state (see send_bu)."""

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

    def send_bu(self, bu: BindingUpdate, *, ha: AddressLike, hoa: AddressLike) -> None:
        """A BU from the HoA to the HA. Linux adds the Home Address option on output only
        through xfrm: a state `proto hao mode ro coa <CoA>` (src HoA, dst HA) named by a
        template of the BU flow's policy; mip6_destopt_output moves the HoA into the option
        and puts the CoA in the source (UMIP's way). The flow (HoA -> HA, MH type 5) is
        what the RFC 4877 BU/BA transport SA's selectors match, so the same policy's ESP
        template protects it: on the wire IPv6 (CoA -> HA) | Destination Options (HAO =
        HoA) | ESP | MH."""
        self.sock.sendmsg([build_mh(bu)],
                          [(socket.IPPROTO_IPV6, IPV6_PKTINFO, self._pktinfo(hoa))],
                          0, (str(v6(ha)), 0))

    def send_msg(self, msg: Message, *, src: AddressLike, dst: AddressLike,
                 via_coa: AddressLike | None = None) -> None:
        """Any MH from `src` to `dst`; a BA to an away MN passes `dst=hoa, via_coa=coa`:
        Linux puts the IPV6_RTHDR address in the IPv6 destination and the final
        destination (the HoA) in the routing header (ipv6_push_rthdr0), so the wire shows
        dst = CoA, type 2 routing header = HoA, and the checksum and the xfrm policy
        lookup use the HoA."""
        cmsgs = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, self._pktinfo(src))]
        if via_coa is not None:
            cmsgs.append((socket.IPPROTO_IPV6, IPV6_RTHDR, type2_routing_header(via_coa, 0)))
        self.sock.sendmsg([build_mh(msg)], cmsgs, 0, (str(v6(dst)), 0))

    def recv(self, size: int = 2048) -> RawReceived:
        data, anc, _flags, addr = self.sock.recvmsg(size, 1024)
        return RawReceived(data, ipaddress.IPv6Address(addr[0].split("%")[0]), tuple(anc))
