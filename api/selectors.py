"""The SPD↔SPI question (draft-laganier-mext-ipsec-spd-spi style): which CHILD_SA, and
which SPI, protects a packet given by source, destination, protocol and ports / MH type /
ICMP type.

A packet from `src` to `dst` leaves through a CHILD_SA (direction "out", SPI = spi-out)
when src is inside one of its local selectors and dst inside one of its remote ones; it
arrives through it (direction "in", SPI = spi-in) the other way round. As in RFC 4301
§4.4.1.1 and RFC 4877 §4.3, an ICMP or Mobility Header type sits in the port field of
the selector on the packet's source side (the high octet); the destination side's port
field is not consulted for those protocols.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from ikev2.core.events import ChildSaInfo
from ikev2.protocol.ts import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_MH

PROTOCOLS = {
    "any": 0, "icmp": IPPROTO_ICMP, "tcp": 6, "udp": 17, "gre": 47, "icmpv6": IPPROTO_ICMPV6,
    "ipv6-icmp": IPPROTO_ICMPV6, "sctp": 132, "mh": IPPROTO_MH, "ipv6-mh": IPPROTO_MH,
}
TYPE_IN_PORT = frozenset({IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_MH})


@dataclass(frozen=True, slots=True)
class Range:
    """A selector as numbers: address range (ints, one family), protocol, port range."""

    version: int
    start: int
    end: int
    proto: int
    port_lo: int
    port_hi: int


@lru_cache(maxsize=8192)
def parse_selector(text: str) -> Range:
    """Inverse of `str(TrafficSelector)`: `198.51.100.0/24`, `a-b`, with an optional
    `[mh/5]`, `[17]`, `[6/80]` or `[6/1000-2000]` suffix."""
    addr, _, rest = text.partition("[")
    proto, lo, hi = 0, 0, 65535
    if rest:
        inner = rest.rstrip("]")
        name, slash, ports = inner.partition("/")
        if name == "mh":
            proto = IPPROTO_MH
            lo = hi = int(ports) << 8
        else:
            proto = int(name)
            if slash:
                a, dash, b = ports.partition("-")
                lo, hi = int(a), int(b if dash else a)
    if "-" in addr and "/" not in addr:
        a_text, _, b_text = addr.partition("-")
        a, b = ipaddress.ip_address(a_text), ipaddress.ip_address(b_text)
        return Range(a.version, int(a), int(b), proto, lo, hi)
    net = ipaddress.ip_network(addr, strict=False)
    return Range(net.version, int(net.network_address), int(net.broadcast_address), proto, lo,
                 hi)


@dataclass(frozen=True, slots=True)
class Packet:
    src: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    proto: int | None  # None: any protocol
    src_port: int | None  # for ICMP/MH: type << 8 (and the code in the low octet: any)
    dst_port: int | None


def _side(selectors: tuple[str, ...], addr: object, proto: int | None, port: int | None,
          type_side: bool) -> bool:
    for text in selectors:
        try:
            r = parse_selector(text)
        except ValueError:
            continue
        if addr is not None:
            a = addr  # type: ignore[assignment]
            if a.version != r.version or not r.start <= int(a) <= r.end:  # type: ignore[attr-defined]
                continue
        if proto is not None and r.proto not in (0, proto):
            continue
        if port is not None and not (proto in TYPE_IN_PORT and not type_side):
            if proto in TYPE_IN_PORT:
                # a type selector covers port values type<<8 .. type<<8|0xff (any code)
                if r.port_hi < port or r.port_lo > (port | 0xFF):
                    continue
            elif not r.port_lo <= port <= r.port_hi:
                continue
        return True
    return False


def match(child: ChildSaInfo, pkt: Packet) -> list[str]:
    """The directions ("out", "in") in which `child` carries `pkt`."""
    out = []
    if _side(child.local_ts, pkt.src, pkt.proto, pkt.src_port, True) and _side(
        child.remote_ts, pkt.dst, pkt.proto, pkt.dst_port, False
    ):
        out.append("out")
    if _side(child.remote_ts, pkt.src, pkt.proto, pkt.src_port, True) and _side(
        child.local_ts, pkt.dst, pkt.proto, pkt.dst_port, False
    ):
        out.append("in")
    return out


def protocol_number(text: str) -> int:
    """'mh', 'udp', '135' → IP protocol number; ValueError otherwise."""
    text = text.strip().lower()
    if text.isdigit() and int(text) <= 255:
        return int(text)
    if text in PROTOCOLS:
        return PROTOCOLS[text]
    raise ValueError(f"unknown protocol {text!r}; use 0-255 or one of {', '.join(PROTOCOLS)}")
