"""Configuration payload attributes for a dynamic home address (RFC 4877 §7, RFC 5026
§4.4; REQUIREMENTS 4877-17, 4877-27). The IKE codec (ikev2/protocol/payloads.py CP) carries
attributes as (type, bytes); these helpers give those bytes a meaning.

- INTERNAL_IP6_ADDRESS (8, RFC 7296 §3.15.1): empty in a request, or 16-octet address +
  1-octet prefix length (17 octets).
- MIP6_HOME_PREFIX (16, RFC 5026 §4.4.1 [M]): empty in a request (or a hint), or 21
  octets: prefix lifetime (4, seconds) | home prefix (16) | prefix length (1).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ikev2.protocol import cfgattr
from ikev2.protocol.enums import CfgAttr, CfgType
from ikev2.protocol.payloads import CP
from mobility.authorization import AuthorizationMap, IdentityLike
from mobility.errors import CpAttributeError

IPv6 = ipaddress.IPv6Address
IPv6Net = ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Ip6Address:
    """INTERNAL_IP6_ADDRESS value: an address and its prefix length."""

    address: IPv6
    prefix_len: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", IPv6(self.address))
        if not 0 <= self.prefix_len <= 128:
            raise CpAttributeError(f"prefix length {self.prefix_len} is not 0-128")


@dataclass(frozen=True, slots=True)
class HomePrefix:
    """MIP6_HOME_PREFIX value: the home prefix and how long it is valid (seconds)."""

    prefix: IPv6Net
    lifetime: int

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "prefix", IPv6Net(self.prefix, strict=True))
        except ValueError as exc:
            raise CpAttributeError(f"bad home prefix {self.prefix!r}: {exc}") from None
        if not 0 <= self.lifetime <= 0xFFFFFFFF:
            raise CpAttributeError(f"prefix lifetime {self.lifetime} is not 0-2^32-1")


def encode_ip6_address(value: Ip6Address | None) -> bytes:
    return b"" if value is None else cfgattr.encode_ip6(value.address, value.prefix_len)


def decode_ip6_address(data: bytes) -> Ip6Address | None:
    try:
        got = cfgattr.decode_ip6(data)
    except cfgattr.CfgAttrError as exc:
        raise CpAttributeError(str(exc)) from None
    return None if got is None else Ip6Address(*got)


def encode_home_prefix(value: HomePrefix | None) -> bytes:
    if value is None:
        return b""
    return cfgattr.encode_home_prefix(value.prefix, value.lifetime)


def decode_home_prefix(data: bytes) -> HomePrefix | None:
    try:
        got = cfgattr.decode_home_prefix(data)
    except cfgattr.CfgAttrError as exc:
        raise CpAttributeError(str(exc)) from None
    return None if got is None else HomePrefix(*got)


def home_request(*, address: bool = True, prefix: bool = True,
                 prefix_hint: HomePrefix | None = None) -> CP:
    """The MN's CFG_REQUEST in IKE_AUTH for a dynamic HoA and/or home prefix."""
    attrs: list[tuple[int, bytes]] = []
    if address:
        attrs.append((CfgAttr.INTERNAL_IP6_ADDRESS, b""))
    if prefix:
        attrs.append((CfgAttr.MIP6_HOME_PREFIX, encode_home_prefix(prefix_hint)))
    if not attrs:
        raise CpAttributeError("ask for an address, a prefix or both")
    return CP(CfgType.CFG_REQUEST, tuple(attrs))


def home_reply(address: Ip6Address | None, prefix: HomePrefix | None) -> CP:
    """The HA's CFG_REPLY carrying what it assigned."""
    attrs: list[tuple[int, bytes]] = []
    if address is not None:
        attrs.append((CfgAttr.INTERNAL_IP6_ADDRESS, encode_ip6_address(address)))
    if prefix is not None:
        attrs.append((CfgAttr.MIP6_HOME_PREFIX, encode_home_prefix(prefix)))
    return CP(CfgType.CFG_REPLY, tuple(attrs))


def read_home(cp: CP) -> tuple[Ip6Address | None, HomePrefix | None]:
    """The address and prefix in a CFG_REPLY (the first of each kind)."""
    address: Ip6Address | None = None
    prefix: HomePrefix | None = None
    for attr_type, value in cp.attributes:
        if attr_type == CfgAttr.INTERNAL_IP6_ADDRESS and address is None:
            address = decode_ip6_address(value)
        elif attr_type == CfgAttr.MIP6_HOME_PREFIX and prefix is None:
            prefix = decode_home_prefix(value)
    return address, prefix


def assign_home_prefix(auth: AuthorizationMap, identity: IdentityLike,
                       hint: HomePrefix | None, lifetime: int) -> HomePrefix:
    """The prefix the HA hands out: the hint if the identity is authorised for all of it,
    else the identity's first authorised prefix (4877-27: never one it may not use)."""
    grants = auth.grants_of(identity)
    if not grants:
        raise CpAttributeError(f"identity {identity} has no home prefix to assign")
    if hint is not None:
        for g in grants:
            if hint.prefix.subnet_of(g.network):
                return HomePrefix(hint.prefix, lifetime)
    return HomePrefix(grants[0].network, lifetime)


def home_address_in(prefix: IPv6Net | HomePrefix, interface_id: int) -> IPv6:
    """The HoA the MN forms in an assigned prefix from a host part (RFC 5026 §4.4: the MN
    builds its HoA from the home prefix)."""
    net = prefix.prefix if isinstance(prefix, HomePrefix) else prefix
    host_bits = 128 - net.prefixlen
    if not 0 < interface_id < (1 << host_bits):
        raise CpAttributeError(f"interface id {interface_id:#x} does not fit /{net.prefixlen}")
    return net.network_address + interface_id
