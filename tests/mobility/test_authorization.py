"""The HA's identity → home address map (REQUIREMENTS 4877-05, 4877-07, 4877-16, 4877-21)."""

from __future__ import annotations

import pytest

from ikev2.config.model import Identity
from mobility.authorization import AuthorizationMap
from mobility.errors import (
    AuthorizationError,
    AuthorizationMapError,
    HomeAddressNotAuthorized,
    UnknownHomeAddress,
    UnknownIdentity,
)
from mobility.registry import BaStatus

AUTH = AuthorizationMap({
    "alice@example.org": ["2001:db8:1::a/128"],
    "bob@example.org": "2001:db8:1::b",
    "fqdn:router.example.org": ["2001:db8:1:100::/56", "2001:db8:1::c"],
})


def test_authorised_pairs_pass() -> None:
    assert AUTH.check("alice@example.org", "2001:db8:1::a") == Identity.parse(
        "alice@example.org")
    assert AUTH.check("email:bob@example.org", "2001:db8:1::b")  # same identity, spelled out
    assert AUTH.check(Identity.parse("router.example.org"), "2001:db8:1:1ff::42")
    assert len(AUTH) == 3


def test_another_mns_home_address_is_refused() -> None:
    """4877-05: MN A may not register MN B's HoA over A's SA → 129."""
    with pytest.raises(HomeAddressNotAuthorized, match=r"belongs to bob@example\.org") as err:
        AUTH.check("alice@example.org", "2001:db8:1::b")
    assert err.value.status == BaStatus.ADMINISTRATIVELY_PROHIBITED


def test_unknown_home_address() -> None:
    """No MN owns this HoA: the HA is not its home agent → 133."""
    with pytest.raises(UnknownHomeAddress) as err:
        AUTH.check("alice@example.org", "2001:db8:1::99")
    assert err.value.status == BaStatus.NOT_HOME_AGENT_FOR_THIS_MN


@pytest.mark.parametrize("identity", [None, "mallory@example.org", "ipv6:2001:db8:1::a"])
def test_unknown_or_missing_identity(identity: str | None) -> None:
    """4877-16/21: the authenticated IDi must be in the map; the HoA as an identity (an
    ID_IPV6_ADDR) is not the same identity as the email → 129."""
    with pytest.raises(UnknownIdentity) as err:
        AUTH.check(identity, "2001:db8:1::a")
    assert err.value.status == BaStatus.ADMINISTRATIVELY_PROHIBITED
    assert isinstance(err.value, AuthorizationError)


def test_identity_type_matters() -> None:
    """'router.example.org' is an FQDN identity; the same text as a key id is another one."""
    with pytest.raises(UnknownIdentity):
        AUTH.check("keyid:router.example.org", "2001:db8:1::c")


@pytest.mark.parametrize(("entries", "message"), [
    ({"a@x": ["2001:db8::/64"], "b@x": ["2001:db8::5"]}, "overlaps"),
    ({"a@x": ["2001:db8::/64"], "b@x": ["2001:db8::/48"]}, "overlaps"),
    ({"a@x": []}, "no home address"),
    ({"a@x": ["192.0.2.1"]}, "IPv6"),
    ({"a@x": ["2001:db8::1/64"]}, "not an IPv6 address or prefix"),
    ({"a@x": ["ff02::1"]}, "cannot be a home address"),
    ({"a@x": ["fe80::1"]}, "cannot be a home address"),
    ({"a@x": ["nonsense"]}, "not an IPv6"),
    ({"": ["2001:db8::1"]}, "bad identity"),
])
def test_inconsistent_maps_are_refused(entries: dict[str, list[str]], message: str) -> None:
    """4877-07: one home address belongs to one MN; clear errors for bad entries."""
    with pytest.raises(AuthorizationMapError, match=message):
        AuthorizationMap(entries)


def test_same_identity_spelled_twice_is_refused() -> None:
    with pytest.raises(AuthorizationMapError, match="listed twice"):
        AuthorizationMap({"a@x": ["2001:db8::1"], "email:a@x": ["2001:db8::2"]})
