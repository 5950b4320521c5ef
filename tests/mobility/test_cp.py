"""CP attributes for a dynamic HoA / home prefix (RFC 7296 §3.15.1, RFC 5026 §4.4;
REQUIREMENTS 4877-17, 4877-27), through the real IKE payload codec."""

from __future__ import annotations

import ipaddress

import pytest

from ikev2.protocol.codec import decode_payloads, encode_payloads
from ikev2.protocol.enums import CfgAttr, CfgType
from ikev2.protocol.payloads import CP
from mobility.authorization import AuthorizationMap
from mobility.cp import (
    HomePrefix,
    Ip6Address,
    assign_home_prefix,
    decode_home_prefix,
    decode_ip6_address,
    encode_home_prefix,
    encode_ip6_address,
    home_address_in,
    home_reply,
    home_request,
    read_home,
)
from mobility.errors import CpAttributeError

PREFIX = HomePrefix(ipaddress.IPv6Network("2001:db8:1:100::/64"), 3600)


def test_attribute_encodings() -> None:
    """INTERNAL_IP6_ADDRESS: 16 + 1 octets; MIP6_HOME_PREFIX: lifetime(4) | prefix(16) |
    length(1) = 21 octets [M: RFC 5026 layout from memory]; both empty in a request."""
    addr = Ip6Address(ipaddress.IPv6Address("2001:db8:1::100"), 64)
    assert encode_ip6_address(addr).hex() == "20010db8000100000000000000000100" "40"
    assert encode_home_prefix(PREFIX).hex() == (
        "00000e10" "20010db8000101000000000000000000" "40")
    assert decode_ip6_address(encode_ip6_address(addr)) == addr
    assert decode_home_prefix(encode_home_prefix(PREFIX)) == PREFIX
    assert encode_ip6_address(None) == encode_home_prefix(None) == b""
    assert decode_ip6_address(b"") is None and decode_home_prefix(b"") is None


@pytest.mark.parametrize("data", [bytes(16), bytes(18)])
def test_bad_address_lengths(data: bytes) -> None:
    with pytest.raises(CpAttributeError, match="0 or 17"):
        decode_ip6_address(data)


@pytest.mark.parametrize(("data", "message"), [
    (bytes(20), "0 or 21"),
    (bytes(4) + ipaddress.IPv6Address("2001:db8::1").packed + b"\x40", "host bits"),
    (bytes(20) + b"\x81", "over 128"),
])
def test_bad_prefixes(data: bytes, message: str) -> None:
    with pytest.raises(CpAttributeError, match=message):
        decode_home_prefix(data)


def test_request_and_reply_through_the_ike_codec() -> None:
    """4877-17: CFG_REQUEST with empty INTERNAL_IP6_ADDRESS + MIP6_HOME_PREFIX; the reply
    carries the assignment; both survive the IKE payload encoder/decoder."""
    req = home_request()
    assert req.cfg_type == CfgType.CFG_REQUEST
    assert req.attributes == ((CfgAttr.INTERNAL_IP6_ADDRESS, b""),
                              (CfgAttr.MIP6_HOME_PREFIX, b""))
    hoa = home_address_in(PREFIX, 0x100)
    reply = home_reply(Ip6Address(hoa, 64), PREFIX)
    first, data = encode_payloads([reply])
    (decoded,) = decode_payloads(first, data)
    assert isinstance(decoded, CP)
    assert read_home(decoded) == (Ip6Address(hoa, 64), PREFIX)
    assert str(hoa) == "2001:db8:1:100::100"
    with pytest.raises(CpAttributeError):
        home_request(address=False, prefix=False)


def test_assigned_prefix_is_always_authorised() -> None:
    """4877-27: a hint inside the identity's grant is honoured, one outside is replaced by
    the authorised prefix."""
    auth = AuthorizationMap({"mr@example.org": ["2001:db8:1:100::/56"]})
    inside = HomePrefix(ipaddress.IPv6Network("2001:db8:1:1ff::/64"), 10)
    outside = HomePrefix(ipaddress.IPv6Network("2001:db8:2::/64"), 10)
    assert assign_home_prefix(auth, "mr@example.org", inside, 600).prefix == inside.prefix
    got = assign_home_prefix(auth, "mr@example.org", outside, 600)
    assert got == HomePrefix(ipaddress.IPv6Network("2001:db8:1:100::/56"), 600)
    assert assign_home_prefix(auth, "mr@example.org", None, 1).prefix == got.prefix
    with pytest.raises(CpAttributeError):
        assign_home_prefix(auth, "nobody@example.org", None, 1)


def test_home_address_in_prefix_bounds() -> None:
    with pytest.raises(CpAttributeError):
        home_address_in(PREFIX, 0)
    with pytest.raises(CpAttributeError):
        home_address_in(PREFIX, 1 << 64)
    with pytest.raises(CpAttributeError):
        HomePrefix(ipaddress.IPv6Network("2001:db8::/64"), -1)
    with pytest.raises(CpAttributeError):
        Ip6Address(ipaddress.IPv6Address("2001:db8::1"), 129)
