"""IKEv2 traffic selectors → XFRM policy selectors, and the policy priority scheme.

An XFRM selector is one prefix per side plus port/mask pairs, so a TS range becomes the
CIDR prefixes covering it and a port range the aligned port blocks covering it.

Port fields by protocol (REQUIREMENTS 7296-20, X-01, X-02):
- TCP/UDP/SCTP/...: sport/dport are the packet's ports; an outbound selector takes sport
  from the local TS and dport from the remote TS, inbound/forward the reverse.
- ICMP/ICMPv6: the TS port is type << 8 | code; the kernel matches the type against
  `sport` and the code against `dport`.
- Mobility Header (135): the TS port is MH type << 8; the kernel matches the MH type
  against `sport` (`dport` is always 0 for MH, so it stays unmasked).
For ICMP and MH the packets we send are described by our TS and those we receive by the
peer's: outbound selectors take the type from the local TS, inbound and forward selectors
from the remote TS (MN side of RFC 4877: BU out, BA in).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ikev2.kernel.xfrm.consts import PolicyDir
from ikev2.kernel.xfrm.cstruct import pack_addr, unpack_addr
from ikev2.protocol.ts import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_MH, TrafficSelector

_ICMP = frozenset({IPPROTO_ICMP, IPPROTO_ICMPV6})
PortBlock = tuple[int, int]  # (value, mask), both host order; (0, 0) = any
_ANY: tuple[PortBlock, ...] = ((0, 0),)


@dataclass(frozen=True, slots=True)
class XfrmSelector:
    """struct xfrm_selector as a value (ports in host order)."""

    family: int
    saddr: str
    prefixlen_s: int
    daddr: str
    prefixlen_d: int
    proto: int = 0
    sport: int = 0
    sport_mask: int = 0
    dport: int = 0
    dport_mask: int = 0
    ifindex: int = 0

    def to_struct(self) -> dict[str, Any]:
        return {
            "daddr": pack_addr(self.daddr), "saddr": pack_addr(self.saddr),
            "dport": self.dport, "dport_mask": self.dport_mask,
            "sport": self.sport, "sport_mask": self.sport_mask,
            "family": self.family, "prefixlen_d": self.prefixlen_d,
            "prefixlen_s": self.prefixlen_s, "proto": self.proto,
            "ifindex": self.ifindex, "user": 0,
        }

    @classmethod
    def from_struct(cls, d: dict[str, Any]) -> XfrmSelector:
        fam = d["family"] or socket.AF_INET6
        return cls(
            d["family"], unpack_addr(d["saddr"], fam), d["prefixlen_s"],
            unpack_addr(d["daddr"], fam), d["prefixlen_d"], d["proto"],
            d["sport"], d["sport_mask"], d["dport"], d["dport_mask"], d["ifindex"],
        )

    @classmethod
    def host_pair(cls, src: str, dst: str) -> XfrmSelector:
        fam = socket.AF_INET6 if ":" in src else socket.AF_INET
        bits = 128 if fam == socket.AF_INET6 else 32
        return cls(fam, src, bits, dst, bits)

    def __str__(self) -> str:
        s = f"{self.saddr}/{self.prefixlen_s} -> {self.daddr}/{self.prefixlen_d}"
        if self.proto:
            s += f" proto {self.proto}"
            if self.sport_mask:
                s += f" sport {self.sport}/{self.sport_mask:#x}"
            if self.dport_mask:
                s += f" dport {self.dport}/{self.dport_mask:#x}"
        return s


def port_blocks(lo: int, hi: int, bits: int = 16) -> tuple[PortBlock, ...]:
    """The fewest aligned (value, mask) blocks covering [lo, hi] ((0, 0) for the full
    range), as CIDR summarisation does for addresses."""
    top = (1 << bits) - 1
    full = 0xFFFF
    if lo <= 0 and hi >= top:
        return _ANY
    out: list[PortBlock] = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << bits
        while size > hi - lo + 1:
            size >>= 1
        out.append((lo, full & ~(size - 1)))
        lo += size
    return tuple(out)


def _type_code_blocks(lo: int, hi: int) -> list[tuple[PortBlock, PortBlock]]:
    """ICMP type/code range (type << 8 | code) → [(type block, code block)]."""
    if lo <= 0 and hi >= 0xFFFF:
        return [((0, 0), (0, 0))]
    t_lo, c_lo, t_hi, c_hi = lo >> 8, lo & 0xFF, hi >> 8, hi & 0xFF
    if t_lo == t_hi:
        return [((t_lo, 0xFFFF), c) for c in port_blocks(c_lo, c_hi, 8)]
    out: list[tuple[PortBlock, PortBlock]] = []
    first, last = t_lo, t_hi
    if c_lo:
        out += [((t_lo, 0xFFFF), c) for c in port_blocks(c_lo, 0xFF, 8)]
        first += 1
    tail = []
    if c_hi != 0xFF:
        tail = [((t_hi, 0xFFFF), c) for c in port_blocks(0, c_hi, 8)]
        last -= 1
    if first <= last:
        out += [(t, (0, 0)) for t in port_blocks(first, last, 8)]
    return out + tail


def _port_pairs(proto: int, own: TrafficSelector, peer: TrafficSelector
                ) -> list[tuple[PortBlock, PortBlock]]:
    """(sport block, dport block) pairs for packets sent by `own`'s side to `peer`'s."""
    if proto in _ICMP:
        return _type_code_blocks(own.start_port, own.end_port)
    if proto == IPPROTO_MH:
        return [(t, (0, 0)) for t in port_blocks(own.start_port >> 8, own.end_port >> 8, 8)]
    if proto == 0:
        return [((0, 0), (0, 0))]
    return [(s, d) for s in port_blocks(own.start_port, own.end_port)
            for d in port_blocks(peer.start_port, peer.end_port)]


@lru_cache(maxsize=8192)
def _prefixes(ts: TrafficSelector) -> tuple[tuple[str, int], ...]:
    """The TS address range as (network address, prefix length) CIDR blocks."""
    return tuple((str(n.network_address), n.prefixlen) for n in ts.to_networks())


def policy_selectors(local_ts: tuple[TrafficSelector, ...],
                     remote_ts: tuple[TrafficSelector, ...],
                     direction: PolicyDir) -> list[XfrmSelector]:
    """Every XFRM selector of one policy direction for a CHILD_SA's TS pairs."""
    out: list[XfrmSelector] = []
    for lts in local_ts:
        for rts in remote_ts:
            if lts.ts_type != rts.ts_type:
                continue
            if lts.ip_proto and rts.ip_proto and lts.ip_proto != rts.ip_proto:
                continue
            proto = lts.ip_proto or rts.ip_proto
            src_ts, dst_ts = (lts, rts) if direction == PolicyDir.OUT else (rts, lts)
            fam = socket.AF_INET if lts.version == 4 else socket.AF_INET6
            pairs = _port_pairs(proto, src_ts, dst_ts)
            for saddr, slen in _prefixes(src_ts):
                for daddr, dlen in _prefixes(dst_ts):
                    for (sp, spm), (dp, dpm) in pairs:
                        sel = XfrmSelector(
                            fam, saddr, slen, daddr, dlen, proto, sp, spm, dp, dpm,
                        )
                        if sel not in out:
                            out.append(sel)
    return out


# --- priorities -----------------------------------------------------------------------------

PRIORITY_BASE = 0x10000  # XFRM: lower = preferred; ikev2d's band is BASE .. BASE + 0x3FFF


def policy_priority(sel: XfrmSelector, base: int = PRIORITY_BASE) -> int:
    """More specific selectors get lower numbers (REQUIREMENTS X-16): address prefixes
    dominate, then protocol, then ports. Two host addresses with an MH type beat the same
    hosts without protocol, which beat any subnet pair."""
    maxbits = 64 if sel.family == socket.AF_INET else 256
    unspecific = maxbits - (sel.prefixlen_s + sel.prefixlen_d)
    score = unspecific * 8
    if not sel.proto:
        score += 4
    if not sel.sport_mask:
        score += 2
    if not sel.dport_mask:
        score += 1
    return base + score


def is_host(address: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return net.prefixlen == net.max_prefixlen and str(net.network_address) == address


def family_bits(family: int) -> int:
    return 32 if family == socket.AF_INET else 128


__all__ = [
    "PRIORITY_BASE",
    "XfrmSelector",
    "family_bits",
    "is_host",
    "policy_priority",
    "policy_selectors",
    "port_blocks",
]
