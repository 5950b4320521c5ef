"""The home agent's authorisation map: IKE identity → home addresses / home prefixes.

RFC 4877 §4.3 and §7 (REQUIREMENTS 4877-05, 4877-16, 4877-21): the MN authenticates with a
user identity (IDi), never with its CoA, and the HA must check that this identity may use
the home address it registers. The IKE side enforces it on the CHILD_SA selectors (the
connection's remote_ts); this map is the same policy for the binding cache, where the BU
arrives: `check(identity, hoa)` raises an AuthorizationError subclass whose `status` is the
Binding Acknowledgement status to answer with.

One home address belongs to one identity: overlapping entries of two identities are
refused when the map is built (4877-07: an HA never accepts one MN's BU for another's HoA).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ikev2.config.model import Identity
from mobility.errors import (
    AuthorizationMapError,
    HomeAddressNotAuthorized,
    UnknownHomeAddress,
    UnknownIdentity,
)

IdentityLike = str | Identity
IPv6 = ipaddress.IPv6Address
IPv6Net = ipaddress.IPv6Network


def identity_key(identity: IdentityLike) -> Identity:
    """The identity as the IKE layer compares it (type and data), from a config string
    ('mn1@example.org', 'fqdn:mn1.example.org', ...) or an Identity."""
    if isinstance(identity, Identity):
        return identity
    try:
        return Identity.parse(identity)
    except ValueError as exc:
        raise AuthorizationMapError(f"bad identity {identity!r}: {exc}") from None


def _network(text: str) -> IPv6Net:
    """'2001:db8:1::100' (a /128) or '2001:db8:1::/64' as an IPv6 network."""
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise AuthorizationMapError(f"{text!r} is not an IPv6 address or prefix: {exc}") from None
    if not isinstance(net, IPv6Net):
        raise AuthorizationMapError(f"{text!r}: home addresses are IPv6 (RFC 6275)")
    if net.is_multicast or net.is_link_local or net.is_unspecified:
        raise AuthorizationMapError(f"{text!r} cannot be a home address or home prefix")
    return net


@dataclass(frozen=True, slots=True)
class Grant:
    """One authorised home address (a /128) or home prefix of one identity."""

    identity: Identity
    network: IPv6Net

    def covers(self, hoa: IPv6) -> bool:
        return hoa in self.network


class AuthorizationMap:
    """identity → home addresses or prefixes, with lookups both ways."""

    __slots__ = ("_by_identity", "_grants")

    def __init__(self, entries: Mapping[Any, Iterable[str] | str]) -> None:
        """`entries`: identity (str or Identity) → HoAs / prefixes (one str or several)."""
        grants: list[Grant] = []
        by_identity: dict[Identity, tuple[Grant, ...]] = {}
        for raw_id, texts in entries.items():
            ident = identity_key(raw_id)
            if isinstance(texts, str):
                texts = (texts,)
            mine = tuple(Grant(ident, _network(t)) for t in texts)
            if not mine:
                raise AuthorizationMapError(f"identity {ident} has no home address or prefix")
            for grant in mine:
                for other in grants:
                    if grant.network.overlaps(other.network) and other.identity != ident:
                        raise AuthorizationMapError(
                            f"{grant.network} of {ident} overlaps {other.network} of "
                            f"{other.identity}: one home address belongs to one mobile node"
                        )
            if ident in by_identity:
                raise AuthorizationMapError(f"identity {ident} is listed twice")
            by_identity[ident] = mine
            grants.extend(mine)
        self._grants = tuple(grants)
        self._by_identity = by_identity

    def __len__(self) -> int:
        return len(self._by_identity)

    def grants_of(self, identity: IdentityLike) -> tuple[Grant, ...]:
        return self._by_identity.get(identity_key(identity), ())

    def owner_of(self, hoa: str | IPv6) -> Identity | None:
        """The identity a home address belongs to, or None."""
        addr = IPv6(hoa)
        for grant in self._grants:
            if grant.covers(addr):
                return grant.identity
        return None

    def check(self, identity: IdentityLike | None, hoa: str | IPv6) -> Identity:
        """Raise unless `identity` may register `hoa`; return the matching identity.

        UnknownHomeAddress (BA 133): no MN has this HoA. UnknownIdentity (BA 129): the
        identity is absent or not in the map. HomeAddressNotAuthorized (BA 129): the
        identity exists but the HoA is someone else's or outside its grants."""
        addr = IPv6(hoa)
        owner = self.owner_of(addr)
        if owner is None:
            raise UnknownHomeAddress(f"no mobile node is authorised for home address {addr}")
        if identity is None:
            raise UnknownIdentity(
                f"home address {addr} needs an authenticated identity (RFC 4877 §4.3); the "
                "Binding Update came with none"
            )
        ident = identity_key(identity)
        if ident not in self._by_identity:
            raise UnknownIdentity(f"identity {ident} is not in the home agent's "
                                  "authorisation map")
        if owner != ident:
            mine = ", ".join(str(g.network) for g in self._by_identity[ident])
            raise HomeAddressNotAuthorized(
                f"identity {ident} may use {mine}, not home address {addr} (which belongs "
                f"to {owner})"
            )
        return ident
