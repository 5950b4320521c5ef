"""Traffic selectors (RFC 7296 §3.13.1) as values, with the set operations narrowing needs.

Addresses are kept as packed bytes (4 or 16 octets) so the codec copies them straight
from the wire. For ICMP/ICMPv6 the port fields carry type<<8|code, for the MIPv6 Mobility
Header (IP protocol 135) the MH type in the high octet (REQUIREMENTS 7296-20).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

IPPROTO_ANY = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_MH = 135


class TsType(IntEnum):
    """IKEv2 Traffic Selector Types (IANA)."""

    TS_IPV4_ADDR_RANGE = 7
    TS_IPV6_ADDR_RANGE = 8


_V4_ANY = (b"\x00" * 4, b"\xff" * 4)
_V6_ANY = (b"\x00" * 16, b"\xff" * 16)


@dataclass(frozen=True, slots=True)
class TrafficSelector:
    ts_type: TsType
    ip_proto: int
    start_port: int
    end_port: int
    start_addr: bytes
    end_addr: bytes

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_network(
        cls, network: str, ip_proto: int = 0, start_port: int = 0, end_port: int = 65535
    ) -> TrafficSelector:
        """A selector for a CIDR prefix or a single address, e.g. '2001:db8::/32'."""
        if ip_proto == 0 and start_port == 0 and end_port == 65535:
            return _host_or_net(network)
        return cls._from_network(network, ip_proto, start_port, end_port)

    @classmethod
    def _from_network(
        cls, network: str, ip_proto: int, start_port: int, end_port: int
    ) -> TrafficSelector:
        net = ipaddress.ip_network(network, strict=False)
        ts_type = TsType.TS_IPV4_ADDR_RANGE if net.version == 4 else TsType.TS_IPV6_ADDR_RANGE
        return cls(
            ts_type,
            ip_proto,
            start_port,
            end_port,
            net.network_address.packed,
            net.broadcast_address.packed,
        )

    @classmethod
    def from_range(
        cls, start: str, end: str, ip_proto: int = 0, start_port: int = 0, end_port: int = 65535
    ) -> TrafficSelector:
        a, b = ipaddress.ip_address(start), ipaddress.ip_address(end)
        if a.version != b.version:
            raise ValueError(f"address range {start}-{end} mixes IPv4 and IPv6")
        ts_type = TsType.TS_IPV4_ADDR_RANGE if a.version == 4 else TsType.TS_IPV6_ADDR_RANGE
        return cls(ts_type, ip_proto, start_port, end_port, a.packed, b.packed)

    @classmethod
    def any(cls, version: int) -> TrafficSelector:
        if version == 4:
            return cls(TsType.TS_IPV4_ADDR_RANGE, 0, 0, 65535, *_V4_ANY)
        return cls(TsType.TS_IPV6_ADDR_RANGE, 0, 0, 65535, *_V6_ANY)

    @classmethod
    def mh_type(cls, network: str, mh_type: int) -> TrafficSelector:
        """Selector for one MIPv6 Mobility Header type (RFC 4877 §4.3: type in the high octet)."""
        port = (mh_type & 0xFF) << 8
        return cls.from_network(network, IPPROTO_MH, port, port)

    # -- views ------------------------------------------------------------------------
    @property
    def version(self) -> int:
        return 4 if self.ts_type == TsType.TS_IPV4_ADDR_RANGE else 6

    @property
    def start(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.start_addr)

    @property
    def end(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.end_addr)

    def to_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The address range as the smallest list of CIDR prefixes (for the kernel SPD)."""
        return list(ipaddress.summarize_address_range(self.start, self.end))

    def is_valid(self) -> bool:
        return self.start_addr <= self.end_addr and self.start_port <= self.end_port

    def __str__(self) -> str:
        return _format(self)

    def _format(self) -> str:
        nets = self.to_networks()
        addr = (
            str(nets[0])
            if len(nets) == 1
            else f"{self.start}-{self.end}"
        )
        if self.ip_proto == 0 and self.start_port == 0 and self.end_port == 65535:
            return addr
        if self.ip_proto == IPPROTO_MH and self.start_port == self.end_port:
            return f"{addr}[mh/{self.start_port >> 8}]"
        if self.start_port == 0 and self.end_port == 65535:
            return f"{addr}[{self.ip_proto}]"
        ports = (
            str(self.start_port)
            if self.start_port == self.end_port
            else f"{self.start_port}-{self.end_port}"
        )
        return f"{addr}[{self.ip_proto}/{ports}]"

    # -- set operations ---------------------------------------------------------------
    def contains(self, other: TrafficSelector) -> bool:
        """True if every packet `other` selects is also selected by self."""
        return (
            self.ts_type == other.ts_type
            and (self.ip_proto == 0 or self.ip_proto == other.ip_proto)
            and self.start_port <= other.start_port
            and other.end_port <= self.end_port
            and self.start_addr <= other.start_addr
            and other.end_addr <= self.end_addr
        )

    def intersect(self, other: TrafficSelector) -> TrafficSelector | None:
        """The largest selector inside both, or None (RFC 7296 §2.9 narrowing)."""
        if self.ts_type != other.ts_type:
            return None
        if self.ip_proto and other.ip_proto and self.ip_proto != other.ip_proto:
            return None
        start_addr = max(self.start_addr, other.start_addr)
        end_addr = min(self.end_addr, other.end_addr)
        start_port = max(self.start_port, other.start_port)
        end_port = min(self.end_port, other.end_port)
        if start_addr > end_addr or start_port > end_port:
            return None
        return TrafficSelector(
            self.ts_type, self.ip_proto or other.ip_proto, start_port, end_port, start_addr,
            end_addr,
        )


@lru_cache(maxsize=4096)
def _host_or_net(network: str) -> TrafficSelector:
    return TrafficSelector._from_network(network, 0, 0, 65535)


@lru_cache(maxsize=8192)
def _format(ts: TrafficSelector) -> str:
    return ts._format()


def narrow(
    offered: tuple[TrafficSelector, ...], allowed: tuple[TrafficSelector, ...]
) -> tuple[TrafficSelector, ...]:
    """Intersect the peer's offered selectors with our policy, keeping order, no duplicates."""
    out: list[TrafficSelector] = []
    for mine in allowed:
        for theirs in offered:
            ts = mine.intersect(theirs)
            if ts is not None and ts not in out:
                out.append(ts)
    return tuple(out)


def is_subset(
    got: tuple[TrafficSelector, ...], allowed: tuple[TrafficSelector, ...]
) -> bool:
    """Every selector in `got` lies inside one of `allowed` (RFC 7296 §2.9 initiator check)."""
    return all(any(a.contains(g) for a in allowed) for g in got)
