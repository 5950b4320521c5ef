"""The Mobility Header checksum (RFC 6275 §6.1.1): the Internet checksum over an IPv6
pseudo-header (RFC 8200 §8.1, next header 135) followed by the whole MH.

Which addresses go in the pseudo-header (RFC 6275 §6.1.1, §11.3.1; RFC 8200 §8.1):
- a message with a Home Address destination option (a BU sent from a CoA) uses the home
  address from that option as the source;
- a message with a type 2 routing header (a BA to an away MN) uses the final destination,
  the home address in the routing header, as the destination.
`checksum_addresses` applies both rules; our UDP transport carries the inner IPv6 header
with the HoA already in place, so it passes those addresses directly.
"""

from __future__ import annotations

import ipaddress
import struct

from mobility.registry import IPPROTO_MH

AddressLike = str | bytes | ipaddress.IPv6Address
CHECKSUM_OFFSET = 4  # Payload Proto, Header Len, MH Type, Reserved, then Checksum


def _packed(addr: AddressLike) -> bytes:
    if isinstance(addr, bytes):
        if len(addr) != 16:
            raise ValueError(f"an IPv6 address has 16 octets, not {len(addr)}")
        return addr
    return ipaddress.IPv6Address(addr).packed


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo_header(src: AddressLike, dst: AddressLike, length: int,
                  next_header: int = IPPROTO_MH) -> bytes:
    """RFC 8200 §8.1: source, destination, upper-layer length (32 bits), 3 zero octets,
    next header."""
    return _packed(src) + _packed(dst) + struct.pack("!I3xB", length, next_header)


def mh_checksum(src: AddressLike, dst: AddressLike, mh: bytes) -> int:
    """The checksum for `mh` (its checksum field is treated as zero)."""
    zeroed = mh[:CHECKSUM_OFFSET] + b"\x00\x00" + mh[CHECKSUM_OFFSET + 2:]
    return internet_checksum(pseudo_header(src, dst, len(mh)) + zeroed)


def with_checksum(src: AddressLike, dst: AddressLike, mh: bytes) -> bytes:
    """`mh` with its checksum field filled in."""
    value = mh_checksum(src, dst, mh)
    return mh[:CHECKSUM_OFFSET] + value.to_bytes(2, "big") + mh[CHECKSUM_OFFSET + 2:]


def checksum_addresses(
    ip_src: AddressLike, ip_dst: AddressLike, *,
    home_address_option: AddressLike | None = None,
    type2_routing_address: AddressLike | None = None,
) -> tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]:
    """(source, destination) for the pseudo-header of an MH carried in an IPv6 packet with
    these header addresses and, optionally, a Home Address option / type 2 routing header
    (RFC 6275 §6.1.1 and §6.4; RFC 8200 §8.1 final destination)."""
    src = home_address_option if home_address_option is not None else ip_src
    dst = type2_routing_address if type2_routing_address is not None else ip_dst
    return ipaddress.IPv6Address(_packed(src)), ipaddress.IPv6Address(_packed(dst))
