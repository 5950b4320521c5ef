"""Binding the peer's IKE ID to its certificate (ikev2.crypto.certs.match_identity):
RFC 7296 §3.5 ID types against subjectAltName / subject (RFC 4945 §3.1 style), and the
distinguished-name helpers."""

from __future__ import annotations

import ipaddress

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs.build import Validity
from ikev2.crypto.certs import IdentityMismatch, format_dn, match_identity, name_dn, parse_dn
from ikev2.protocol.enums import IdType, NotifyType

V = Validity.days(__import__("datetime").datetime(2030, 1, 1, tzinfo=__import__("datetime").UTC),
                  30)


def _cert(subject: x509.Name, sans: list[x509.GeneralName]) -> x509.Certificate:
    k = ec.generate_private_key(ec.SECP256R1())
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parse_dn("CN=CA"))
        .public_key(k.public_key())
        .serial_number(1)
        .not_valid_before(V.not_before)
        .not_valid_after(V.not_after)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(k, hashes.SHA256())


@pytest.fixture(scope="module")
def cert() -> x509.Certificate:
    return _cert(
        parse_dn("C=DE, O=Example, CN=mn"),
        [
            x509.RFC822Name("user@Example.org"),
            x509.DNSName("mn.example.org"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
            x509.IPAddress(ipaddress.ip_address("2001:db8::7")),
            x509.DirectoryName(parse_dn("O=Example, CN=alias")),
        ],
    )


V4 = ipaddress.ip_address("192.0.2.7").packed
V6 = ipaddress.ip_address("2001:db8::7").packed


@pytest.mark.parametrize(
    ("id_type", "data"),
    [
        (IdType.ID_RFC822_ADDR, b"user@example.org"),  # host part case-insensitive
        (IdType.ID_RFC822_ADDR, b"user@EXAMPLE.ORG"),
        (IdType.ID_FQDN, b"mn.example.org"),
        (IdType.ID_FQDN, b"MN.Example.ORG."),  # case and a trailing dot do not matter
        (IdType.ID_IPV4_ADDR, V4),
        (IdType.ID_IPV6_ADDR, V6),
        (IdType.ID_DER_ASN1_DN, parse_dn("C=DE, O=Example, CN=mn").public_bytes()),
        (IdType.ID_DER_ASN1_DN, parse_dn("O=Example, CN=alias").public_bytes()),  # dirName SAN
    ],
)
def test_identity_matches(cert: x509.Certificate, id_type: IdType, data: bytes) -> None:
    """7296-14 / 4877-16: each ID type is bound by its own certificate field."""
    match_identity(cert, id_type, data)


def test_dn_match_is_rfc5280_normalised(cert: x509.Certificate) -> None:
    """ID_DER_ASN1_DN compares as RFC 5280 §7.1 (case, whitespace, string type)."""
    other = x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                           "  example ")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "MN")]),
    ])
    assert other.public_bytes() != cert.subject.public_bytes()
    match_identity(cert, IdType.ID_DER_ASN1_DN, other.public_bytes())


@pytest.mark.parametrize(
    ("id_type", "data", "reason"),
    [
        (IdType.ID_RFC822_ADDR, b"other@example.org",
         "ID_RFC822_ADDR 'other@example.org' does not match the certificate's rfc822Name"),
        (IdType.ID_RFC822_ADDR, b"USER@example.org", "rfc822Name"),  # local part is exact
        (IdType.ID_FQDN, b"ha.example.org", "ID_FQDN 'ha.example.org' does not match"),
        (IdType.ID_FQDN, b"user@example.org", "dNSName"),  # an email is not a DNS name
        (IdType.ID_IPV4_ADDR, bytes([192, 0, 2, 8]), "ID_IPV4_ADDR '192.0.2.8'"),
        (IdType.ID_IPV6_ADDR, ipaddress.ip_address("2001:db8::8").packed,
         "ID_IPV6_ADDR '2001:db8::8'"),
        (IdType.ID_IPV4_ADDR, V6, "16 octets is not an IPv4 address"),
        (IdType.ID_IPV6_ADDR, V4, "4 octets is not an IPv6 address"),
        (IdType.ID_DER_ASN1_DN, parse_dn("C=DE, O=Example, CN=ha").public_bytes(),
         "ID_DER_ASN1_DN 'C=DE, O=Example, CN=ha' does not match the certificate's subject"),
        (IdType.ID_DER_ASN1_DN, b"\x30\x03\x02\x01", "not a DER distinguished name"),
        (IdType.ID_KEY_ID, b"\x01\x02", "ID_KEY_ID cannot be bound to a certificate"),
        (IdType.ID_RFC822_ADDR, "üser@example.org".encode(), "not ASCII"),
    ],
)
def test_identity_mismatch_reasons(cert: x509.Certificate, id_type: IdType, data: bytes,
                                   reason: str) -> None:  # fmt: skip
    """4877-16: a certificate for one identity cannot authenticate another; the reason
    names the ID and what the certificate carries."""
    with pytest.raises(IdentityMismatch) as ei:
        match_identity(cert, id_type, data)
    assert reason in str(ei.value)
    assert ei.value.notify == NotifyType.AUTHENTICATION_FAILED


def test_mismatch_lists_the_certificate_names(cert: x509.Certificate) -> None:
    with pytest.raises(IdentityMismatch) as ei:
        match_identity(cert, IdType.ID_FQDN, b"gw.example.org")
    msg = str(ei.value)
    for part in ("subject C=DE, O=Example, CN=mn", "rfc822Name user@Example.org",
                 "dNSName mn.example.org", "iPAddress 192.0.2.7", "iPAddress 2001:db8::7"):
        assert part in msg


def test_certificate_without_san() -> None:
    """A CN is not a dNSName: FQDN IDs need the SAN (RFC 4945)."""
    c = _cert(parse_dn("CN=gw.example.org"), [])
    with pytest.raises(IdentityMismatch, match="subjectAltName none"):
        match_identity(c, IdType.ID_FQDN, b"gw.example.org")
    match_identity(c, IdType.ID_DER_ASN1_DN, parse_dn("CN=gw.example.org").public_bytes())


def test_no_wildcards(cert: x509.Certificate) -> None:
    c = _cert(parse_dn("CN=x"), [x509.DNSName("*.example.org")])
    with pytest.raises(IdentityMismatch):
        match_identity(c, IdType.ID_FQDN, b"mn.example.org")


@pytest.mark.parametrize(
    ("gn", "ok"),
    [
        (asn1_x509.GeneralName(name="dns_name", value="mn.example.org"), True),
        (asn1_x509.GeneralName(name="rfc822_name", value="user@example.org"), True),
        (asn1_x509.GeneralName(name="ip_address", value="192.0.2.7"), True),
        (asn1_x509.GeneralName(name="directory_name",
                               value=asn1_x509.Name.load(parse_dn("C=DE, O=Example, CN=mn")
                                                         .public_bytes())), True),
        (asn1_x509.GeneralName(name="dns_name", value="ha.example.org"), False),
        (asn1_x509.GeneralName(name="uniform_resource_identifier", value="http://x/"), False),
    ],
)
def test_der_asn1_gn(cert: x509.Certificate, gn: asn1_x509.GeneralName, ok: bool) -> None:
    """ID_DER_ASN1_GN is matched by the rules of the GeneralName kind it carries."""
    if ok:
        match_identity(cert, IdType.ID_DER_ASN1_GN, gn.dump())
    else:
        with pytest.raises(IdentityMismatch):
            match_identity(cert, IdType.ID_DER_ASN1_GN, gn.dump())


def test_der_asn1_gn_garbage(cert: x509.Certificate) -> None:
    with pytest.raises(IdentityMismatch, match="not a DER GeneralName"):
        match_identity(cert, IdType.ID_DER_ASN1_GN, b"\xff\xff")


# -- distinguished names ------------------------------------------------------------------
def test_parse_and_format_dn_round_trip() -> None:
    text = r"C=DE, ST=Bavaria, L=Munich, O=Example\, Inc., OU=Lab, CN=Testbed CA, E=ca@example.org"
    name = parse_dn(text)
    assert format_dn(name) == text
    assert [a.oid for a in name] [:2] == [NameOID.COUNTRY_NAME, NameOID.STATE_OR_PROVINCE_NAME]
    assert name_dn(name.public_bytes()) == text


def test_parse_dn_order_and_slash_form() -> None:
    """RDNs stay in the order written (strongSwan style), '/' form as OpenSSL prints it."""
    assert parse_dn("/C=DE/O=Example/CN=x") == parse_dn("C=DE, O=Example, CN=x")
    assert parse_dn("CN=x, C=DE").rdns[0].get_attributes_for_oid(NameOID.COMMON_NAME)
    assert parse_dn("2.5.4.3=oid") == parse_dn("CN=oid")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("CN", "not KEY=value"),
        ("CN=", "empty value"),
        ("XX=1", "unknown distinguished name attribute 'XX'"),
        ("C=Germany", "2 letters"),
    ],
)
def test_parse_dn_errors(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_dn(text)


def test_name_dn_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        name_dn(b"\x04\x01x")
