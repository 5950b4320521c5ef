"""Values of the configuration-payload attributes ikev2d uses (RFC 7296 §3.15.1, RFC 5026
§4.4.1; REQUIREMENTS 7296-23): raw bytes ↔ addresses. The CP payload itself carries
attributes as (type, bytes) (ikev2/protocol/payloads.py CP).

- INTERNAL_IP6_ADDRESS (8): empty (a request), or 16-octet address + 1-octet prefix length.
- MIP6_HOME_PREFIX (16): empty (a request), or prefix lifetime (4, seconds) | home prefix
  (16) | prefix length (1) — 21 octets.
"""

from __future__ import annotations

import ipaddress
import struct

IPv6 = ipaddress.IPv6Address
IPv6Net = ipaddress.IPv6Network


class CfgAttrError(ValueError):
    """An attribute value of the wrong length or out of range."""


def encode_ip6(address: IPv6 | None, prefix_len: int = 128) -> bytes:
    return b"" if address is None else address.packed + bytes([prefix_len])


def decode_ip6(data: bytes) -> tuple[IPv6, int] | None:
    """(address, prefix length), or None for an empty (request) attribute."""
    if not data:
        return None
    if len(data) != 17:
        raise CfgAttrError(f"INTERNAL_IP6_ADDRESS has 0 or 17 octets, not {len(data)}")
    if data[16] > 128:
        raise CfgAttrError(f"prefix length {data[16]} is not 0-128")
    return IPv6(data[:16]), data[16]


def encode_home_prefix(prefix: IPv6Net | None, lifetime: int = 0) -> bytes:
    if prefix is None:
        return b""
    return struct.pack("!I", lifetime) + prefix.network_address.packed + bytes(
        [prefix.prefixlen]
    )


def decode_home_prefix(data: bytes) -> tuple[IPv6Net, int] | None:
    """(home prefix, lifetime in seconds), or None for an empty (request) attribute."""
    if not data:
        return None
    if len(data) != 21:
        raise CfgAttrError(f"MIP6_HOME_PREFIX has 0 or 21 octets, not {len(data)}")
    (lifetime,) = struct.unpack("!I", data[:4])
    plen = data[20]
    if plen > 128:
        raise CfgAttrError(f"MIP6_HOME_PREFIX prefix length {plen} is over 128")
    try:
        prefix = IPv6Net((IPv6(data[4:20]), plen), strict=True)
    except ValueError as exc:
        raise CfgAttrError(f"MIP6_HOME_PREFIX: {exc}") from None
    return prefix, lifetime
