"""Mobility options: the xn+y alignment rules (RFC 6275 §6.2), padding, Binding
Identifier forms (RFC 5648 §6.1), DSMIPv6 options (RFC 5555, REQUIREMENTS 5555-01)."""

from __future__ import annotations

import ipaddress

import pytest

from mobility.mh import BindingAck, BindingUpdate, build_mh, parse_mh
from mobility.options import (
    AlternateCareOfAddress,
    BindingAuthorizationData,
    BindingIdentifier,
    BindingRefreshAdvice,
    Ipv4CareOfAddress,
    MobilityOption,
    NatDetection,
    NonceIndices,
    RawOption,
    decode_options,
    encode_options,
    padding,
)
from mobility.registry import BaStatus, BidFlags, BuFlags, OptionType

EXAMPLES: list[MobilityOption] = [
    BindingRefreshAdvice(30),
    AlternateCareOfAddress("2001:db8:2::10"),
    NonceIndices(1, 2),
    BindingAuthorizationData(b"\xaa" * 12),
    NatDetection(True, 110),
    Ipv4CareOfAddress("192.0.2.7"),
    BindingIdentifier(1),
    BindingIdentifier(2, coa="198.51.100.9"),
    BindingIdentifier(3, flags=BidFlags.H | 5, coa="2001:db8:3::1"),
    RawOption(200, b"\x01\x02\x03"),
]


def test_registry_values() -> None:
    """5555-01 (option numbers 29-32) and RFC 5648 BID = 35, RFC 6275 = 0..5."""
    assert [int(t) for t in OptionType] == [0, 1, 2, 3, 4, 5, 29, 30, 31, 32, 35]


def test_padding_forms() -> None:
    assert padding(0) == b""
    assert padding(1) == b"\x00"  # Pad1
    assert padding(2) == b"\x01\x00"  # PadN, no data
    assert padding(6) == b"\x01\x04\x00\x00\x00\x00"


@pytest.mark.parametrize("opt", EXAMPLES, ids=lambda o: type(o).__name__)
@pytest.mark.parametrize("start", range(6, 30))
def test_each_option_lands_on_its_alignment(opt: MobilityOption, start: int) -> None:
    """RFC 6275 §6.2 / RFC 8200 §4.2: the Type octet sits at xn+y from the MH start and the
    encoded run ends on an 8-octet boundary; decoding gives the option back."""
    enc = encode_options((opt,), start)
    assert (start + len(enc)) % 8 == 0
    x, y = opt.alignment()
    i = 0  # skip the leading padding: Pad1 (0) or PadN (1, len, zeros)
    while enc[i] in (OptionType.PAD1, OptionType.PADN):
        i += 1 if enc[i] == OptionType.PAD1 else 2 + enc[i + 1]
    assert (start + i) % x == y
    fake_mh = bytes(start) + enc
    assert decode_options(fake_mh, start, strict=True) == (opt,)


def test_documented_alignments() -> None:
    """RFC 6275 §6.2.4-§6.2.7: BRA 2n, Alternate CoA 8n+6, Nonce Indices 2n, BAD 8n+2;
    RFC 5555: NAT Detection and IPv4 CoA 4n; BID [M] 2n / 4n+2 / 8n+2 by CoA family."""
    assert BindingRefreshAdvice(1).alignment() == (2, 0)
    assert AlternateCareOfAddress("2001:db8::1").alignment() == (8, 6)
    assert NonceIndices(0, 0).alignment() == (2, 0)
    assert BindingAuthorizationData(b"").alignment() == (8, 2)
    assert NatDetection(False, 0).alignment() == (4, 0)
    assert Ipv4CareOfAddress("192.0.2.1").alignment() == (4, 0)
    assert BindingIdentifier(1).alignment() == (2, 0)
    assert BindingIdentifier(1, coa="192.0.2.1").alignment() == (4, 2)
    assert BindingIdentifier(1, coa="2001:db8::1").alignment() == (8, 2)


def test_bu_with_binding_authorization_data_golden() -> None:
    """A correspondent BU layout: Nonce Indices (2n) then BAD (8n+2) with a 96-bit
    authenticator (RFC 6275 §5.2.6, §6.2.7); and the other order, which needs padding."""
    swapped = BindingUpdate(1, BuFlags.A, 1, (BindingAuthorizationData(b"\xaa" * 12),
                                              NonceIndices(1, 2)))
    assert build_mh(swapped).hex() == (
        "3b0405000000" "000180000001"  # Header Len 4: 40 octets
        "0104" "00000000"  # PadN, 6 octets: BAD's Type at 12 + 6 = 18 = 8n+2
        "050c" + "aa" * 12 + "0404" "00010002"  # Nonce Indices at 32 (2n), ends at 38
        "0100"  # PadN, 2 octets: to 40
    )
    assert parse_mh(build_mh(swapped)) == swapped
    bu = BindingUpdate(0x1234, BuFlags.A, 15, (NonceIndices(1, 2),
                                               BindingAuthorizationData(b"\xaa" * 12)))
    wire = build_mh(bu)
    assert wire.hex() == (
        "3b0305000000" "12348000000f"  # header (checksum 0), seq, flags A, lifetime 15
        "0404" "00010002"  # Nonce Indices at offset 12 (2n)
        "050c" + "aa" * 12  # BAD at offset 18 = 8n+2: no padding needed; ends at 32
    )
    assert parse_mh(wire) == bu


def test_binding_identifier_forms() -> None:
    """RFC 5648 §6.1: Length 4 (no CoA), 8 (IPv4 CoA), 20 (IPv6 CoA); H flag 0x80; the
    other 7 bits (RFC 6089 BID-PRI) are kept."""
    assert BindingIdentifier(7).encode_data() == bytes.fromhex("00070000")
    v4 = BindingIdentifier(7, BaStatus.MCOA_PROHIBITED, BidFlags.H, "192.0.2.1")
    assert v4.encode_data() == bytes.fromhex("0007a680c0000201")
    v6 = BindingIdentifier(0x102, 0, BidFlags(0x05), "2001:db8::1")
    assert v6.encode_data() == bytes.fromhex("01020005") + ipaddress.IPv6Address(
        "2001:db8::1").packed
    assert v6.priority == 5 and not v6.simultaneous_home_and_foreign
    assert v4.simultaneous_home_and_foreign and v4.status == BaStatus.MCOA_PROHIBITED


def test_several_bids_in_one_bu_round_trip() -> None:
    """Bulk registration: several BID options, each with its own CoA (RFC 5648 §5.3)."""
    bu = BindingUpdate(9, BuFlags.A | BuFlags.H | BuFlags.K, 75, (
        BindingIdentifier(1),
        BindingIdentifier(2, coa="2001:db8:2::20"),
        BindingIdentifier(3, coa="192.0.2.30"),
    ))
    wire = build_mh(bu, src="2001:db8:1::100", dst="2001:db8:1::1")
    assert len(wire) % 8 == 0
    assert parse_mh(wire, src="2001:db8:1::100", dst="2001:db8:1::1") == bu
    ba = BindingAck(0, 9, options=(BindingIdentifier(1), BindingIdentifier(2, 167)))
    assert parse_mh(build_mh(ba)) == ba


def test_dsmipv6_options_encoding() -> None:
    """5555-01 / 5555-03: NAT Detection = F flag (0x8000) + 15 reserved bits + 32-bit
    refresh time; IPv4 CoA = 2 reserved octets + address."""
    assert NatDetection(True, 110).encode_data() == bytes.fromhex("80000000006e")
    assert NatDetection(False, 1).encode_data() == bytes.fromhex("000000000001")
    assert Ipv4CareOfAddress("203.0.113.5").encode_data() == bytes.fromhex("0000cb007105")
    assert NatDetection.decode_data(bytes.fromhex("80010000006e"), 0, False) == NatDetection(
        True, 110)
