"""X.509 for IKE_AUTH: CERT/CERTREQ payload data (RFC 7296 §3.6/§3.7), chain validation to
configured trust anchors with CRLs, and matching the peer's IKE ID against its certificate.

No I/O and no clock: callers pass bytes and the wall-clock time. The engine's `now` is
time.monotonic(); validity periods need real time, so pass `datetime.now(UTC)` (or a POSIX
timestamp) taken by the daemon, never the engine clock.

API for IKE_AUTH:

    # configuration time (daemon/config): load bytes the daemon read from files
    anchors = load_certificates(ca_pem, source="ca.pem")
    trust = TrustStore(tuple(anchors), crls=(load_crl(crl_der),))
    ours = CertChain(load_certificate(cert_pem), intermediates=(...), anchor=root_or_None)
    key = load_private_key(key_pem, passphrase=None)

    # IKE_SA_INIT response / IKE_AUTH request: ask for certificates from our anchors
    CERTREQ payload = certreq_payload(trust.anchors)

    # building our IKE_AUTH message: answer the peer's CERTREQs
    requested = requested_authorities(peer_certreq_payloads)   # frozenset of SHA-1 hashes
    chain = select_chain([ours, ...], requested)
    payloads += chain_payloads(chain, requested)                # [CERT(4, EE), CERT(4, CA)...]

    # the peer's IKE_AUTH: validate its CERTs and bind its ID, then verify AUTH with
    # ikev2.crypto.signature.verify_auth(validated.public_key, ...)
    validated = verify_peer_certificates(cert_payloads, idi.id_type, idi.data, trust, wall_now)

Every failure raises a CertificateError (an ikev2.errors.AuthenticationFailed, so the core
answers AUTHENTICATION_FAILED) whose message is a one-line reason naming the certificate:
CertificateParseError, UnsupportedCertEncoding, TooManyCertificates, IdentityMismatch, and the
ChainError family — UntrustedCertificate, BadCertificateSignature, CertificateExpired,
CertificateNotYetValid, CertificateRevoked, CrlError, NotACa, PathLengthExceeded,
ChainTooLong, ChainLoop, PathBuildingLimit, KeyUsageError, WeakKey,
UnsupportedCriticalExtension. A CERTREQ whose length is not a multiple of 20 raises
MalformedCertReq (an ikev2.errors.InvalidSyntax). Loading our own key raises KeyLoadError.

Work is bounded: at most `ValidationPolicy.max_cert_payloads` CERT payloads are accepted
(more is an error, checked before any parsing), paths are at most `max_path_length`
certificates long and path building stops after `max_signature_checks` signature checks.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID, ObjectIdentifier

from ikev2.crypto.signature import PrivateKey, PublicKey, UnsupportedKey, key_type
from ikev2.errors import AuthenticationFailed, InvalidSyntax
from ikev2.protocol.enums import CertEncoding, IdType
from ikev2.protocol.payloads import CERT, CERTREQ

__all__ = [
    "DEFAULT_VALIDATION",
    "IKE_EKUS",
    "OID_IKE_INTERMEDIATE",
    "BadCertificateSignature",
    "CertChain",
    "CertificateError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateParseError",
    "CertificateRevoked",
    "ChainError",
    "ChainLoop",
    "ChainTooLong",
    "CrlError",
    "IdentityMismatch",
    "KeyLoadError",
    "KeyUsageError",
    "MalformedCertReq",
    "NotACa",
    "PathBuildingLimit",
    "PathLengthExceeded",
    "TooManyCertificates",
    "TrustStore",
    "UnsupportedCertEncoding",
    "UnsupportedCriticalExtension",
    "UntrustedCertificate",
    "ValidatedChain",
    "ValidationPolicy",
    "WeakKey",
    "cert_payload",
    "certificates_from_payloads",
    "certreq_data",
    "certreq_payload",
    "chain_payloads",
    "describe_names",
    "format_dn",
    "load_certificate",
    "load_certificates",
    "load_crl",
    "load_private_key",
    "match_identity",
    "parse_certreq",
    "parse_dn",
    "requested_authorities",
    "select_chain",
    "spki_sha1",
    "validate_chain",
    "verify_peer_certificates",
]

#: 1.3.6.1.5.5.8.2.2, iKEIntermediate (RFC 4945 era; what Windows/macOS clients look for)
OID_IKE_INTERMEDIATE = ObjectIdentifier("1.3.6.1.5.5.8.2.2")
#: extended key usages that make a certificate usable for IKE when an EKU is present
IKE_EKUS: frozenset[ObjectIdentifier] = frozenset(
    {
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
        ExtendedKeyUsageOID.IPSEC_IKE,
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
        OID_IKE_INTERMEDIATE,
    }
)


# -- errors -------------------------------------------------------------------------------
class CertificateError(AuthenticationFailed):
    """A certificate could not be used to authenticate the peer. str(e) is the reason."""


class CertificateParseError(CertificateError):
    """Not a PEM or DER certificate (or CRL)."""


class UnsupportedCertEncoding(CertificateError):
    """The first CERT payload is not X.509 Certificate - Signature (4) (RFC 7296 §3.6)."""


class TooManyCertificates(CertificateError):
    """More CERT payloads than ValidationPolicy.max_cert_payloads."""


class IdentityMismatch(CertificateError):
    """The IKE ID is not bound to the end-entity certificate (RFC 7296 §3.5, RFC 4945)."""


class ChainError(CertificateError):
    """The certificate path to a trust anchor is missing or invalid."""


class UntrustedCertificate(ChainError):
    """No path to a configured trust anchor (wrong CA, missing intermediate, self-signed)."""


class BadCertificateSignature(ChainError):
    """A certificate's signature does not verify with its issuer's key."""


class CertificateExpired(ChainError):
    pass


class CertificateNotYetValid(ChainError):
    pass


class CertificateRevoked(ChainError):
    pass


class CrlError(ChainError):
    """A CRL for the chain is unusable (bad signature, expired, issuer may not sign CRLs) or,
    with require_crl, missing."""


class NotACa(ChainError):
    """An issuing certificate lacks basicConstraints cA=TRUE."""


class PathLengthExceeded(ChainError):
    """basicConstraints pathLenConstraint of a CA is exceeded."""


class ChainTooLong(ChainError):
    """The path would be longer than ValidationPolicy.max_path_length."""


class ChainLoop(ChainError):
    """The issuer relation loops (A issued by B issued by A) without reaching an anchor."""


class PathBuildingLimit(ChainError):
    """Path building gave up after ValidationPolicy.max_signature_checks checks."""


class KeyUsageError(ChainError):
    """keyUsage / extendedKeyUsage does not allow the use."""


class WeakKey(ChainError):
    """RSA key shorter than ValidationPolicy.min_rsa_bits, or an unsupported key type."""


class UnsupportedCriticalExtension(ChainError):
    """A critical extension this validator does not process (RFC 5280 §4.2)."""


class MalformedCertReq(InvalidSyntax):
    """CERTREQ Certification Authority data whose length is not a multiple of 20."""


class KeyLoadError(ValueError):
    """Our own private key could not be loaded (not a key, wrong or missing passphrase)."""


# -- loading ------------------------------------------------------------------------------
def _where(source: str) -> str:
    return f"{source}: " if source else ""


def load_certificates(data: bytes, *, source: str = "") -> list[x509.Certificate]:
    """All certificates in `data`: one DER certificate, or PEM with one or more blocks."""
    try:
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CertificateParseError(f"{_where(source)}not a PEM or DER certificate") from None


def load_certificate(data: bytes, *, source: str = "") -> x509.Certificate:
    """The first certificate in `data` (PEM or DER)."""
    return load_certificates(data, source=source)[0]


def load_crl(data: bytes, *, source: str = "") -> x509.CertificateRevocationList:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CertificateParseError(f"{_where(source)}not a PEM or DER CRL") from None


def load_private_key(
    data: bytes, passphrase: bytes | None = None, *, source: str = ""
) -> PrivateKey:
    """A private key in PEM (PKCS#8 or traditional) or DER, optionally encrypted."""
    pem = b"-----BEGIN" in data
    loader = (
        serialization.load_pem_private_key if pem else serialization.load_der_private_key
    )
    try:
        key = loader(data, password=passphrase)
    except TypeError as e:
        msg = str(e).lower()
        where = _where(source)
        if "password was not given" in msg:
            raise KeyLoadError(f"{where}key is encrypted; a passphrase is needed") from None
        if "password was given" in msg:
            raise KeyLoadError(f"{where}key is not encrypted; no passphrase needed") from None
        raise KeyLoadError(f"{where}not a PEM or DER private key") from None
    except ValueError as e:
        if passphrase is not None and ("decrypt" in str(e).lower() or "password" in str(e).lower()):
            raise KeyLoadError(f"{_where(source)}wrong passphrase") from None
        raise KeyLoadError(f"{_where(source)}not a PEM or DER private key") from None
    except UnsupportedAlgorithm:
        raise KeyLoadError(f"{_where(source)}unsupported private key algorithm") from None
    try:
        key_type(key)
    except UnsupportedKey as e:
        raise KeyLoadError(f"{_where(source)}{e}") from None
    return key  # type: ignore[return-value]


def spki_sha1(cert_or_key: x509.Certificate | PublicKey) -> bytes:
    """SHA-1 of the DER SubjectPublicKeyInfo: the CERTREQ CA identifier (RFC 7296 §3.7)."""
    key = cert_or_key.public_key() if isinstance(cert_or_key, x509.Certificate) else cert_or_key
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(spki).digest()


# -- distinguished names ------------------------------------------------------------------
_DN_KEYS: dict[str, ObjectIdentifier] = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "EMAIL": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "SN": NameOID.SURNAME,
    "G": NameOID.GIVEN_NAME,
    "GN": NameOID.GIVEN_NAME,
    "T": NameOID.TITLE,
    "TITLE": NameOID.TITLE,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "UID": NameOID.USER_ID,
    "DNQUALIFIER": NameOID.DN_QUALIFIER,
    "PSEUDONYM": NameOID.PSEUDONYM,
    "STREET": NameOID.STREET_ADDRESS,
    "POSTALCODE": NameOID.POSTAL_CODE,
}
_DN_SHORT: dict[ObjectIdentifier, str] = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "G",
    NameOID.TITLE: "T",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.USER_ID: "UID",
    NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.STREET_ADDRESS: "street",
    NameOID.POSTAL_CODE: "postalCode",
}


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i + 1])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def parse_dn(text: str) -> x509.Name:
    """'C=DE, O=Example, CN=Testbed CA' (or '/C=DE/O=Example/CN=Testbed CA') → Name, RDNs in
    the order written (strongSwan's order; the reverse of RFC 4514 strings). Keys: C ST L O
    OU CN E DC SN G T serialNumber UID dnQualifier pseudonym street postalCode or a dotted
    OID; ',' inside a value is written '\\,'. Raises ValueError with the reason."""
    text = text.strip()
    if not text:
        raise ValueError("empty distinguished name")
    raw = _split_unescaped(text[1:], "/") if text.startswith("/") else _split_unescaped(text, ",")
    rdns: list[x509.RelativeDistinguishedName] = []
    for part in raw:
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"distinguished name part {part.strip()!r} is not KEY=value")
        if not value:
            raise ValueError(f"distinguished name part {key}= has an empty value")
        oid = _DN_KEYS.get(key.upper())
        if oid is None:
            try:
                oid = ObjectIdentifier(key)
            except ValueError:
                raise ValueError(
                    f"unknown distinguished name attribute {key!r} "
                    "(use C, ST, L, O, OU, CN, E, DC, SN, G, T, serialNumber, UID or an OID)"
                ) from None
        if oid == NameOID.COUNTRY_NAME and len(value) != 2:
            raise ValueError(f"country C={value!r} must be 2 letters")
        try:
            rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)]))
        except ValueError as e:
            raise ValueError(f"distinguished name part {key}={value}: {e}") from None
    return x509.Name(rdns)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,")


def format_dn(name: x509.Name) -> str:
    """'C=DE, O=Example, CN=Testbed CA': RDNs in DER order, as parse_dn reads them."""
    out = []
    for rdn in name.rdns:
        vals = []
        for attr in rdn:
            key = _DN_SHORT.get(attr.oid, attr.oid.dotted_string)
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            vals.append(f"{key}={_escape(value)}")
        out.append("+".join(vals))
    return ", ".join(out) if out else "(empty DN)"


@functools.lru_cache(maxsize=4096)
def _name_key(name: x509.Name) -> tuple[tuple[tuple[str, str], ...], ...]:
    """RFC 5280 §7.1-style comparison key: case-folded, whitespace collapsed, any string
    type, attributes of an RDN in any order."""
    return tuple(
        tuple(sorted((a.oid.dotted_string, " ".join(str(a.value).split()).casefold()) for a in rdn))
        for rdn in name.rdns
    )


def _same_name(a: x509.Name, b: x509.Name) -> bool:
    """Name chaining (RFC 5280 §4.1.2.4): issuer of one certificate vs subject of another."""
    return a == b or _name_key(a) == _name_key(b)


def _dn_equal(a_der: bytes, b_der: bytes) -> bool:
    """RFC 5280 §7.1 comparison (case/whitespace folding) via asn1crypto."""
    if a_der == b_der:
        return True
    try:
        return bool(
            asn1_x509.Name.load(a_der, strict=True) == asn1_x509.Name.load(b_der, strict=True)
        )
    except (ValueError, TypeError):
        return False


# -- describing names ---------------------------------------------------------------------
def _sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    except ValueError as e:
        raise CertificateParseError(
            f"certificate {_subject(cert)}: malformed extensions: {e}"
        ) from None
    return list(ext.value)


def _gn_text(gn: x509.GeneralName) -> str:
    if isinstance(gn, x509.RFC822Name):
        return f"rfc822Name {gn.value}"
    if isinstance(gn, x509.DNSName):
        return f"dNSName {gn.value}"
    if isinstance(gn, x509.IPAddress):
        return f"iPAddress {gn.value}"
    if isinstance(gn, x509.DirectoryName):
        return f"directoryName {format_dn(gn.value)}"
    if isinstance(gn, x509.UniformResourceIdentifier):
        return f"URI {gn.value}"
    return type(gn).__name__


def describe_names(cert: x509.Certificate) -> str:
    """'subject CN=mn; subjectAltName rfc822Name user@example.org, dNSName mn.example.org'."""
    try:
        sans = _sans(cert)
    except CertificateParseError:
        sans = []
    alt = ", ".join(_gn_text(g) for g in sans) or "none"
    return f"subject {_subject(cert)}; subjectAltName {alt}"


def _subject(cert: x509.Certificate) -> str:
    try:
        return format_dn(cert.subject)
    except ValueError:
        return "(unparsable subject)"


# -- identity -----------------------------------------------------------------------------
def _id_text(id_type: int, data: bytes) -> tuple[str, str]:
    """(type name, printable value) for messages."""
    name = IdType(id_type).name if id_type in IdType._value2member_map_ else f"ID type {id_type}"
    if id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
        try:
            return name, str(ipaddress.ip_address(data))
        except ValueError:
            return name, data.hex()
    if id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
        return name, data.decode("ascii", "replace")
    if id_type == IdType.ID_DER_ASN1_DN:
        try:
            return name, name_dn(data)
        except ValueError:
            return name, data.hex()
    return name, data.hex()


def name_dn(der: bytes) -> str:
    """format_dn-style text of a DER Name (ID_DER_ASN1_DN data); ValueError if not one."""
    try:
        parsed = asn1_x509.Name.load(der, strict=True)
        out = []
        for rdn in parsed.chosen:
            vals = []
            for attr in rdn:
                oid = ObjectIdentifier(attr["type"].dotted)
                key = _DN_SHORT.get(oid, oid.dotted_string)
                value = attr["value"].native
                vals.append(f"{key}={_escape(value if isinstance(value, str) else str(value))}")
            out.append("+".join(vals))
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"not a DER distinguished name: {e}") from None
    return ", ".join(out) if out else "(empty DN)"


def _ascii(data: bytes, what: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise IdentityMismatch(f"{what} identity is not ASCII") from None


def _match_rfc822(sans: list[x509.GeneralName], data: bytes) -> bool:
    want = _ascii(data, "ID_RFC822_ADDR")
    local, _, domain = want.rpartition("@")
    for g in sans:
        if isinstance(g, x509.RFC822Name):
            gl, _, gd = g.value.rpartition("@")
            # RFC 5280 §4.2.1.6: local part case-sensitive, host part case-insensitive
            if gl == local and gd.lower() == domain.lower():
                return True
    return False


def _match_fqdn(sans: list[x509.GeneralName], data: bytes) -> bool:
    want = _ascii(data, "ID_FQDN").rstrip(".").lower()
    return any(
        isinstance(g, x509.DNSName) and g.value.rstrip(".").lower() == want for g in sans
    )


def _match_ip(sans: list[x509.GeneralName], data: bytes, version: int) -> bool:
    if len(data) != (4 if version == 4 else 16):
        raise IdentityMismatch(
            f"ID_IPV{version}_ADDR data of {len(data)} octets is not an IPv{version} address"
        )
    want = ipaddress.ip_address(data)
    return any(isinstance(g, x509.IPAddress) and g.value == want for g in sans)


def _match_dn(cert: x509.Certificate, sans: list[x509.GeneralName], data: bytes) -> bool:
    try:
        asn1_x509.Name.load(data, strict=True).native  # noqa: B018 - forces a full parse
    except (ValueError, TypeError) as e:
        raise IdentityMismatch(
            f"ID_DER_ASN1_DN data is not a DER distinguished name ({e})"
        ) from None
    if _dn_equal(cert.subject.public_bytes(), data):
        return True
    return any(
        isinstance(g, x509.DirectoryName) and _dn_equal(g.value.public_bytes(), data)
        for g in sans
    )


def _gn_to_id(data: bytes) -> tuple[int, bytes]:
    try:
        gn = asn1_x509.GeneralName.load(data, strict=True)
        kind = gn.name
        if kind == "rfc822_name":
            return IdType.ID_RFC822_ADDR, gn.chosen.native.encode("ascii")
        if kind == "dns_name":
            return IdType.ID_FQDN, gn.chosen.native.encode("ascii")
        if kind == "ip_address":
            raw = gn.chosen.contents
            if len(raw) in (4, 16):
                return (IdType.ID_IPV4_ADDR if len(raw) == 4 else IdType.ID_IPV6_ADDR), raw
        if kind == "directory_name":
            return IdType.ID_DER_ASN1_DN, gn.chosen.untag().dump(force=True)
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        raise IdentityMismatch(f"ID_DER_ASN1_GN data is not a DER GeneralName ({e})") from None
    raise IdentityMismatch(f"ID_DER_ASN1_GN of kind {gn.name} cannot be matched")


def match_identity(cert: x509.Certificate, id_type: int, data: bytes) -> None:
    """Raise IdentityMismatch unless the IKE ID is bound to `cert` (RFC 4945 §3.1 style):
    ID_RFC822_ADDR ↔ rfc822Name SAN, ID_FQDN ↔ dNSName SAN (case-insensitive, no wildcards),
    ID_IPV4/6_ADDR ↔ iPAddress SAN, ID_DER_ASN1_DN ↔ subject DN (or a directoryName SAN),
    ID_DER_ASN1_GN ↔ the same rules by its kind. ID_KEY_ID is never bound to a certificate."""
    sans = _sans(cert)
    orig_type = id_type
    if id_type == IdType.ID_DER_ASN1_GN:
        id_type, data = _gn_to_id(data)
    if id_type == IdType.ID_RFC822_ADDR:
        ok, kind = _match_rfc822(sans, data), "rfc822Name subjectAltName"
    elif id_type == IdType.ID_FQDN:
        ok, kind = _match_fqdn(sans, data), "dNSName subjectAltName"
    elif id_type == IdType.ID_IPV4_ADDR:
        ok, kind = _match_ip(sans, data, 4), "iPAddress subjectAltName"
    elif id_type == IdType.ID_IPV6_ADDR:
        ok, kind = _match_ip(sans, data, 6), "iPAddress subjectAltName"
    elif id_type == IdType.ID_DER_ASN1_DN:
        ok, kind = _match_dn(cert, sans, data), "subject"
    else:
        tname, _ = _id_text(orig_type, data)
        raise IdentityMismatch(f"identity of type {tname} cannot be bound to a certificate")
    if not ok:
        tname, value = _id_text(id_type, data)
        if orig_type != id_type:
            tname = f"ID_DER_ASN1_GN ({tname})"
        raise IdentityMismatch(
            f"{tname} {value!r} does not match the certificate's {kind} "
            f"({describe_names(cert)})"
        )


# -- CERT / CERTREQ payloads --------------------------------------------------------------
def cert_payload(cert: x509.Certificate) -> CERT:
    """CERT payload, encoding 4 (X.509 Certificate - Signature): the DER (RFC 7296 §3.6)."""
    return CERT(CertEncoding.X509_SIGNATURE, cert.public_bytes(serialization.Encoding.DER))


def certreq_data(anchors: Iterable[x509.Certificate]) -> bytes:
    """Concatenated SHA-1 hashes of the anchors' SubjectPublicKeyInfo (RFC 7296 §3.7)."""
    seen: list[bytes] = []
    for a in anchors:
        h = spki_sha1(a)
        if h not in seen:
            seen.append(h)
    return b"".join(seen)


def certreq_payload(anchors: Iterable[x509.Certificate]) -> CERTREQ:
    return CERTREQ(CertEncoding.X509_SIGNATURE, certreq_data(anchors))


def parse_certreq(data: bytes, *, max_hashes: int = 64) -> tuple[bytes, ...]:
    """The 20-octet CA hashes in CERTREQ data; at most `max_hashes` are kept."""
    if len(data) % 20:
        raise MalformedCertReq(
            f"CERTREQ data of {len(data)} octets is not a list of 20-octet SHA-1 hashes"
        )
    n = min(len(data) // 20, max_hashes)
    return tuple(data[i * 20 : (i + 1) * 20] for i in range(n))


def requested_authorities(
    payloads: Iterable[CERTREQ], *, max_hashes: int = 64
) -> frozenset[bytes]:
    """All CA hashes the peer asked for in its X.509 (encoding 4) CERTREQ payloads; others
    are ignored. Bounded: at most `max_hashes` in total."""
    out: set[bytes] = set()
    for p in payloads:
        if p.encoding != CertEncoding.X509_SIGNATURE:
            continue
        for h in parse_certreq(p.data, max_hashes=max_hashes):
            if len(out) >= max_hashes:
                return frozenset(out)
            out.add(h)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class CertChain:
    """Our credentials for one identity: the end-entity certificate, the intermediates that
    lead from it towards a root (issuer order), and optionally that root (never sent)."""

    end_entity: x509.Certificate
    intermediates: tuple[x509.Certificate, ...] = ()
    anchor: x509.Certificate | None = None

    @property
    def authority_hashes(self) -> tuple[bytes, ...]:
        """SPKI SHA-1 of every CA in the chain: the CERTREQ hashes this chain answers."""
        cas = [*self.intermediates, *([self.anchor] if self.anchor is not None else [])]
        return tuple(spki_sha1(c) for c in cas)


def select_chain(
    chains: Sequence[CertChain], requested: Iterable[bytes] | None
) -> CertChain:
    """The first chain that leads to a CA the peer asked for (RFC 7296 §3.7); the first
    chain when the peer asked for none we have (we send it anyway, §3.6)."""
    if not chains:
        raise ValueError("no certificate chains configured")
    wanted = frozenset(requested or ())
    if wanted:
        for c in chains:
            if wanted.intersection(c.authority_hashes):
                return c
    return chains[0]


def chain_payloads(chain: CertChain, requested: Iterable[bytes] | None = None) -> list[CERT]:
    """CERT payloads to send: the end-entity certificate first (its key verifies AUTH,
    RFC 7296 §3.6), then intermediates up to the first CA the peer already trusts."""
    wanted = frozenset(requested or ())
    out = [cert_payload(chain.end_entity)]
    for c in chain.intermediates:
        if spki_sha1(c) in wanted:
            break
        out.append(cert_payload(c))
    return out


# -- validation ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TrustStore:
    """Trust anchors (CA certificates we trust) and the CRLs we hold."""

    anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    def certreq_payload(self) -> CERTREQ:
        return certreq_payload(self.anchors)


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """Limits and checks. `ike_ekus`: if an end-entity certificate has extendedKeyUsage, it
    must contain one of these (empty set: no EKU check)."""

    max_cert_payloads: int = 16
    max_path_length: int = 8
    max_signature_checks: int = 64
    min_rsa_bits: int = 2048
    require_crl: bool = False
    check_key_usage: bool = True
    ike_ekus: frozenset[ObjectIdentifier] = field(default=IKE_EKUS)


DEFAULT_VALIDATION = ValidationPolicy()


@dataclass(frozen=True, slots=True)
class ValidatedChain:
    """A path from the end-entity certificate (first) to a trust anchor (last)."""

    path: tuple[x509.Certificate, ...]

    @property
    def end_entity(self) -> x509.Certificate:
        return self.path[0]

    @property
    def anchor(self) -> x509.Certificate:
        return self.path[-1]

    @property
    def public_key(self) -> PublicKey:
        """The key that verifies the peer's AUTH payload."""
        return self.path[0].public_key()  # type: ignore[return-value]

    def describe(self) -> str:
        return " <- ".join(_subject(c) for c in self.path)


def _as_datetime(now: datetime | float) -> datetime:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("validation time must be timezone-aware (UTC)")
        return now.astimezone(UTC)
    return datetime.fromtimestamp(float(now), UTC)


def _fmt_time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ext(cert: x509.Certificate, cls: type) -> x509.ExtensionType | None:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as e:
        raise CertificateParseError(
            f"certificate {_subject(cert)}: malformed extensions: {e}"
        ) from None


_PROCESSED_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.CERTIFICATE_POLICIES,
    }
)


def _verify_signature(child: x509.Certificate, parent: x509.Certificate) -> None:
    """The child's signature with the parent's key (names are chained by the caller, with
    RFC 5280 folding that cryptography's verify_directly_issued_by does not do)."""
    key = parent.public_key()
    params = child.signature_algorithm_parameters
    sig, tbs = child.signature, child.tbs_certificate_bytes
    if isinstance(key, rsa.RSAPublicKey):
        if not isinstance(params, padding.PKCS1v15 | padding.PSS):
            raise InvalidSignature
        key.verify(sig, tbs, params, child.signature_hash_algorithm)  # type: ignore[arg-type]
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(params, ec.ECDSA):
            raise InvalidSignature
        key.verify(sig, tbs, params)
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        if params is not None or child.signature_algorithm_oid.dotted_string not in (
            "1.3.101.112", "1.3.101.113"
        ):
            raise InvalidSignature
        key.verify(sig, tbs)
    else:
        raise UnsupportedAlgorithm(f"issuer key type {type(key).__name__}")


class _PathBuilder:
    def __init__(
        self,
        anchors: Sequence[x509.Certificate],
        pool: Sequence[x509.Certificate],
        policy: ValidationPolicy,
    ) -> None:
        self.anchors = anchors
        self.pool = pool
        self.policy = policy
        self.checks = 0
        self.bad_signature: dict[int, str] = {}

    def issued_by(self, child: x509.Certificate, parent: x509.Certificate) -> bool:
        if not _same_name(child.issuer, parent.subject):
            return False
        self.checks += 1
        if self.checks > self.policy.max_signature_checks:
            raise PathBuildingLimit(
                f"gave up building a path for {_subject(child)} after "
                f"{self.policy.max_signature_checks} signature checks"
            )
        try:
            _verify_signature(child, parent)
        except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
            self.bad_signature.setdefault(
                id(child),
                f"signature of certificate {_subject(child)} does not verify with the key of "
                f"{_subject(parent)}",
            )
            return False
        return True

    def build(self, path: list[x509.Certificate]) -> list[x509.Certificate]:
        cert = path[-1]
        if len(path) >= self.policy.max_path_length:
            raise ChainTooLong(
                f"no trust anchor within {self.policy.max_path_length} certificates of "
                f"{_subject(path[0])}"
            )
        for a in self.anchors:
            if a != cert and self.issued_by(cert, a):
                return [*path, a]
        first_error: ChainError | None = None
        loop: x509.Certificate | None = None
        for c in self.pool:
            if c == cert or not _same_name(c.subject, cert.issuer):
                continue
            if c in path:
                loop = c
                continue
            if not self.issued_by(cert, c):
                continue
            try:
                return self.build([*path, c])
            except (PathBuildingLimit, ChainTooLong):
                raise
            except ChainError as e:
                first_error = first_error or e
        if first_error is not None:
            raise first_error
        if loop is not None:
            raise ChainLoop(
                "certificate loop: " + " <- ".join(_subject(c) for c in [*path, loop])
                + " never reaches a trust anchor"
            )
        if id(cert) in self.bad_signature:
            raise BadCertificateSignature(self.bad_signature[id(cert)])
        if _same_name(cert.issuer, cert.subject):
            raise UntrustedCertificate(
                f"self-signed certificate {_subject(cert)} is not a trust anchor"
            )
        raise UntrustedCertificate(
            f"issuer {format_dn(cert.issuer)} of {_subject(cert)} is not a trusted CA "
            f"(and no intermediate certificate for it was offered)"
        )


def _check_time(cert: x509.Certificate, now: datetime, what: str) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateNotYetValid(
            f"{what} {_subject(cert)} is not valid before {_fmt_time(cert.not_valid_before_utc)}"
        )
    if now > cert.not_valid_after_utc:
        raise CertificateExpired(
            f"{what} {_subject(cert)} expired at {_fmt_time(cert.not_valid_after_utc)}"
        )


def _check_key(cert: x509.Certificate, policy: ValidationPolicy, what: str) -> None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise WeakKey(f"{what} {_subject(cert)}: unusable public key ({e})") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < policy.min_rsa_bits:
        raise WeakKey(
            f"{what} {_subject(cert)} has an RSA key of {key.key_size} bits "
            f"(minimum {policy.min_rsa_bits})"
        )


def _check_critical(cert: x509.Certificate, what: str) -> None:
    try:
        exts = list(cert.extensions)
    except ValueError as e:
        raise CertificateParseError(
            f"{what} {_subject(cert)}: malformed extensions: {e}"
        ) from None
    for e in exts:
        if e.critical and e.oid not in _PROCESSED_CRITICAL:
            name = getattr(e.oid, "_name", None) or e.oid.dotted_string
            raise UnsupportedCriticalExtension(
                f"{what} {_subject(cert)} has critical extension {name} ({e.oid.dotted_string}),"
                " which is not supported"
            )


def _check_issuer(
    cert: x509.Certificate, below: int, is_anchor: bool, policy: ValidationPolicy
) -> None:
    """`cert` issued the certificate below it; `below` intermediate CAs sit under it."""
    what = "trust anchor" if is_anchor else "CA certificate"
    bc = _ext(cert, x509.BasicConstraints)
    if bc is None:
        if not is_anchor:  # v1 roots configured as anchors are tolerated
            raise NotACa(f"{what} {_subject(cert)} has no basicConstraints (not a CA)")
    else:
        assert isinstance(bc, x509.BasicConstraints)
        if not bc.ca:
            raise NotACa(f"{what} {_subject(cert)} is not a CA (basicConstraints cA=FALSE)")
        if bc.path_length is not None and below > bc.path_length:
            raise PathLengthExceeded(
                f"{what} {_subject(cert)} allows {bc.path_length} intermediate CA(s) below "
                f"it (pathLenConstraint), the chain has {below}"
            )
    if policy.check_key_usage:
        ku = _ext(cert, x509.KeyUsage)
        if ku is not None:
            assert isinstance(ku, x509.KeyUsage)
            if not ku.key_cert_sign:
                raise KeyUsageError(
                    f"{what} {_subject(cert)} keyUsage lacks keyCertSign"
                )


def _check_end_entity(cert: x509.Certificate, policy: ValidationPolicy) -> None:
    if not policy.check_key_usage:
        return
    ku = _ext(cert, x509.KeyUsage)
    if ku is not None:
        assert isinstance(ku, x509.KeyUsage)
        if not (ku.digital_signature or ku.content_commitment):
            raise KeyUsageError(
                f"certificate {_subject(cert)} keyUsage lacks digitalSignature "
                "(needed to sign the IKE AUTH payload)"
            )
    eku = _ext(cert, x509.ExtendedKeyUsage)
    if eku is not None and policy.ike_ekus:
        assert isinstance(eku, x509.ExtendedKeyUsage)
        usages = set(eku)
        if not usages & policy.ike_ekus:
            names = ", ".join(getattr(o, "_name", o.dotted_string) for o in eku) or "none"
            raise KeyUsageError(
                f"certificate {_subject(cert)} extendedKeyUsage ({names}) allows no IKE use "
                "(want ipsecIKE, serverAuth, clientAuth, ikeIntermediate or anyExtendedKeyUsage)"
            )


_REASONS = {
    x509.ReasonFlags.key_compromise: "keyCompromise",
    x509.ReasonFlags.ca_compromise: "cACompromise",
    x509.ReasonFlags.affiliation_changed: "affiliationChanged",
    x509.ReasonFlags.superseded: "superseded",
    x509.ReasonFlags.cessation_of_operation: "cessationOfOperation",
    x509.ReasonFlags.certificate_hold: "certificateHold",
    x509.ReasonFlags.privilege_withdrawn: "privilegeWithdrawn",
    x509.ReasonFlags.aa_compromise: "aACompromise",
    x509.ReasonFlags.remove_from_crl: "removeFromCRL",
    x509.ReasonFlags.unspecified: "unspecified",
}


def _revocation_reason(entry: x509.RevokedCertificate) -> str:
    try:
        ext = entry.extensions.get_extension_for_class(x509.CRLReason)
    except (x509.ExtensionNotFound, ValueError):
        return "unspecified"
    return _REASONS.get(ext.value.reason, ext.value.reason.value)


def _check_revocation(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    crls: Sequence[x509.CertificateRevocationList],
    now: datetime,
    policy: ValidationPolicy,
) -> None:
    relevant = [c for c in crls if _same_name(c.issuer, issuer.subject)]
    if not relevant:
        if policy.require_crl:
            raise CrlError(f"no CRL from {_subject(issuer)} to check {_subject(cert)}")
        return
    problems: list[str] = []
    usable: list[x509.CertificateRevocationList] = []
    for crl in relevant:
        try:
            ok = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        except (TypeError, ValueError, UnsupportedAlgorithm):
            ok = False
        if not ok:
            problems.append(f"CRL from {_subject(issuer)} has a bad signature")
            continue
        if now < crl.last_update_utc:
            problems.append(
                f"CRL from {_subject(issuer)} is not valid before {_fmt_time(crl.last_update_utc)}"
            )
            continue
        nxt = crl.next_update_utc
        if nxt is not None and now > nxt:
            problems.append(f"CRL from {_subject(issuer)} expired at {_fmt_time(nxt)}")
            continue
        usable.append(crl)
    if not usable:
        raise CrlError(problems[0])
    if policy.check_key_usage:
        ku = _ext(issuer, x509.KeyUsage)
        if ku is not None:
            assert isinstance(ku, x509.KeyUsage)
            if not ku.crl_sign:
                raise CrlError(f"{_subject(issuer)} keyUsage lacks cRLSign; its CRL is not usable")
    for crl in usable:
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            raise CertificateRevoked(
                f"certificate {_subject(cert)} (serial {cert.serial_number:x}) was revoked at "
                f"{_fmt_time(entry.revocation_date_utc)} ({_revocation_reason(entry)})"
            )


def validate_chain(
    end_entity: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trust: TrustStore,
    now: datetime | float,
    *,
    policy: ValidationPolicy = DEFAULT_VALIDATION,
) -> ValidatedChain:
    """Build and check a path from `end_entity` through `intermediates` (any order, any
    extras) to one of `trust.anchors` at time `now` (aware datetime or POSIX seconds).

    Checks (RFC 5280 §6 subset): signatures, validity periods of every certificate incl.
    the anchor, basicConstraints cA and pathLenConstraint, keyUsage (keyCertSign on CAs,
    digitalSignature on the end entity, cRLSign on CRL issuers), extendedKeyUsage for IKE,
    RSA key size, unknown critical extensions, revocation against `trust.crls`."""
    at = _as_datetime(now)
    if len(intermediates) + 1 > policy.max_cert_payloads:
        raise TooManyCertificates(
            f"{len(intermediates) + 1} certificates offered, at most "
            f"{policy.max_cert_payloads} are considered"
        )
    if end_entity in trust.anchors:
        path = [end_entity]
    else:
        builder = _PathBuilder(trust.anchors, intermediates, policy)
        path = builder.build([end_entity])
    n = len(path)
    for i, cert in enumerate(path):
        is_anchor = i == n - 1
        what = "trust anchor" if is_anchor and n > 1 else (
            "certificate" if i == 0 else "CA certificate"
        )
        _check_time(cert, at, what)
        _check_key(cert, policy, what)
        if not is_anchor or n == 1:
            _check_critical(cert, what)
        if i == 0:
            _check_end_entity(cert, policy)
        else:
            _check_issuer(cert, i - 1, is_anchor, policy)
        if not is_anchor:
            _check_revocation(cert, path[i + 1], trust.crls, at, policy)
    return ValidatedChain(tuple(path))


def certificates_from_payloads(
    payloads: Sequence[CERT], *, policy: ValidationPolicy = DEFAULT_VALIDATION
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    """(end entity, other certificates) from the peer's CERT payloads, bounded by
    policy.max_cert_payloads (checked before parsing). The first CERT must be X.509
    Signature (4); later payloads of other encodings are ignored."""
    if not payloads:
        raise UntrustedCertificate("peer sent no CERT payload")
    if len(payloads) > policy.max_cert_payloads:
        raise TooManyCertificates(
            f"peer sent {len(payloads)} CERT payloads, at most {policy.max_cert_payloads} "
            "are accepted"
        )
    first = payloads[0]
    if first.encoding != CertEncoding.X509_SIGNATURE:
        enc = (
            CertEncoding(first.encoding).name
            if first.encoding in CertEncoding._value2member_map_
            else str(first.encoding)
        )
        raise UnsupportedCertEncoding(
            f"first CERT payload has encoding {enc}, only X509_SIGNATURE (4) is supported"
        )
    ee = _der_cert(first.data, "end-entity CERT payload")
    others = tuple(
        _der_cert(p.data, f"CERT payload {i + 2}")
        for i, p in enumerate(payloads[1:])
        if p.encoding == CertEncoding.X509_SIGNATURE
    )
    return ee, others


def _der_cert(data: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CertificateParseError(f"{what} is not a DER X.509 certificate") from None


def verify_peer_certificates(
    payloads: Sequence[CERT],
    id_type: int,
    id_data: bytes,
    trust: TrustStore,
    now: datetime | float,
    *,
    policy: ValidationPolicy = DEFAULT_VALIDATION,
) -> ValidatedChain:
    """Everything IKE_AUTH needs before verify_auth(): parse the peer's CERT payloads
    (bounded), validate the chain to `trust` at `now` (wall clock), and bind the peer's
    IDi/IDr (type and data as in the ID payload) to the end-entity certificate."""
    ee, others = certificates_from_payloads(payloads, policy=policy)
    chain = validate_chain(ee, others, trust, now, policy=policy)
    match_identity(ee, id_type, id_data)
    return chain
