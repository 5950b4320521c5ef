"""Making keys, certificates and CRLs with `cryptography` (no I/O, no clock: callers pass
times). Used by the ikev2-pki CLI and by tests that need a PKI."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from ikev2.crypto.certs import OID_IKE_INTERMEDIATE, parse_dn
from ikev2.crypto.signature import PrivateKey, PublicKey

__all__ = [
    "EKU_FLAGS",
    "KEY_TYPES",
    "KEY_USAGES",
    "Revocation",
    "Validity",
    "default_digest",
    "generate_key",
    "issue_certificate",
    "key_description",
    "make_crl",
    "parse_identity",
    "parse_key_usage",
    "self_signed_ca",
]

#: --type names → generator
KEY_TYPES: dict[str, str] = {
    "rsa2048": "RSA 2048",
    "rsa3072": "RSA 3072",
    "rsa4096": "RSA 4096",
    "ecdsa-p256": "ECDSA P-256",
    "ecdsa-p384": "ECDSA P-384",
    "ecdsa-p521": "ECDSA P-521",
    "ed25519": "Ed25519",
    "ed448": "Ed448",
}

#: --flag names → extendedKeyUsage OIDs
EKU_FLAGS: dict[str, ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "ikeIntermediate": OID_IKE_INTERMEDIATE,
    "ipsecIKE": ExtendedKeyUsageOID.IPSEC_IKE,
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}

#: --key-usage names → x509.KeyUsage keyword
KEY_USAGES: dict[str, str] = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "content_commitment",
    "contentCommitment": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
}


def generate_key(kind: str) -> PrivateKey:
    """A fresh private key of a KEY_TYPES kind."""
    if kind.startswith("rsa") and kind in KEY_TYPES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curves: dict[str, ec.EllipticCurve] = {
        "ecdsa-p256": ec.SECP256R1(),
        "ecdsa-p384": ec.SECP384R1(),
        "ecdsa-p521": ec.SECP521R1(),
    }
    if kind in curves:
        return ec.generate_private_key(curves[kind])
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(f"unknown key type {kind!r} (one of {', '.join(KEY_TYPES)})")


def key_description(key: PrivateKey | PublicKey | object) -> str:
    """'RSA 3072', 'ECDSA P-256', 'Ed25519', ..."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        names = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
        return f"ECDSA {names.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "Ed448"
    return type(key).__name__


_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def default_digest(key: PrivateKey, name: str | None = None) -> hashes.HashAlgorithm | None:
    """The digest to sign with: `name` if given, else SHA-256 for RSA and P-256, SHA-384
    for P-384, SHA-512 for P-521, none for EdDSA (which hashes internally)."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        if name is not None:
            raise ValueError(f"{key_description(key)} signatures take no --digest")
        return None
    if name is not None:
        try:
            return _DIGESTS[name]()
        except KeyError:
            raise ValueError(f"unknown digest {name!r} (sha256, sha384, sha512)") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name == "secp384r1":
            return hashes.SHA384()
        if key.curve.name == "secp521r1":
            return hashes.SHA512()
    return hashes.SHA256()


@dataclass(frozen=True, slots=True)
class Validity:
    not_before: datetime
    not_after: datetime

    @classmethod
    def days(cls, now: datetime, days: float, backdate: timedelta = timedelta(minutes=5)
             ) -> Validity:  # fmt: skip
        """From `now - backdate` (clock skew between testbed hosts) for `days` days."""
        start = now.replace(microsecond=0) - backdate
        return cls(start, now.replace(microsecond=0) + timedelta(days=days))


_DNS_RE = re.compile(r"^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+$")


def parse_identity(text: str) -> x509.GeneralName | x509.Name:
    """An IKE ID as a certificate name: 'user@example.org' → rfc822Name, '192.0.2.1' /
    '2001:db8::1' → iPAddress, 'C=DE, CN=x' → a DN (the subject), anything else → dNSName.
    Prefixes force the kind: email: rfc822: fqdn: dns: ip: ipv4: ipv6: dn:."""
    text = text.strip()
    if not text:
        raise ValueError("empty identity")
    prefix, sep, rest = text.partition(":")
    kind = prefix.lower() if sep else ""
    if kind not in ("email", "rfc822", "fqdn", "dns", "ip", "ipv4", "ipv6", "dn"):
        kind, rest = "", text
    rest = rest.strip()
    if kind in ("ip", "ipv4", "ipv6") or (not kind and _is_ip(rest)):
        try:
            ip = ipaddress.ip_address(rest)
        except ValueError:
            raise ValueError(f"{rest!r} is not an IP address") from None
        if (kind == "ipv4" and ip.version != 4) or (kind == "ipv6" and ip.version != 6):
            raise ValueError(f"{rest!r} is not an {kind.upper()} address")
        return x509.IPAddress(ip)
    if kind == "dn" or (not kind and "=" in rest):
        return parse_dn(rest)
    if kind in ("email", "rfc822") or (not kind and "@" in rest):
        local, at, domain = rest.rpartition("@")
        if not at or not local or not domain or not rest.isascii() or " " in rest:
            raise ValueError(f"{rest!r} is not an email address (user@example.org)")
        return x509.RFC822Name(rest)
    if not rest.isascii() or not _DNS_RE.match(rest):
        raise ValueError(f"{rest!r} is not a DNS name")
    return x509.DNSName(rest)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_key_usage(text: str) -> x509.KeyUsage:
    """'digitalSignature,keyEncipherment' → KeyUsage."""
    flags = dict.fromkeys(set(KEY_USAGES.values()), False)
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if part not in KEY_USAGES:
            raise ValueError(f"unknown key usage {part!r} (one of {', '.join(KEY_USAGES)})")
        flags[KEY_USAGES[part]] = True
    return x509.KeyUsage(encipher_only=False, decipher_only=False, **flags)


def _sign_args(
    key: PrivateKey, digest: str | None, rsa_pss: bool
) -> tuple[hashes.HashAlgorithm | None, padding.AsymmetricPadding | None]:
    algo = default_digest(key, digest)
    if rsa_pss:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("--rsa-pss needs an RSA signing key")
        assert algo is not None
        return algo, padding.PSS(mgf=padding.MGF1(algo), salt_length=algo.digest_size)
    return algo, None


def _ca_key_usage() -> x509.KeyUsage:
    return parse_key_usage("keyCertSign,cRLSign,digitalSignature")


def self_signed_ca(
    key: PrivateKey,
    subject: x509.Name,
    validity: Validity,
    *,
    path_length: int | None = None,
    serial: int | None = None,
    digest: str | None = None,
    rsa_pss: bool = False,
) -> x509.Certificate:
    """A root CA certificate: cA=TRUE (critical), keyCertSign+cRLSign, SKI = AKI."""
    algo, pad = _sign_args(key, digest, rsa_pss)
    pub = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(pub)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(pub)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(validity.not_before)
        .not_valid_after(validity.not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    return b.sign(key, algo, rsa_padding=pad)  # type: ignore[arg-type]


def issue_certificate(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    public_key: PublicKey,
    subject: x509.Name,
    validity: Validity,
    *,
    sans: Sequence[x509.GeneralName] = (),
    ca: bool = False,
    path_length: int | None = None,
    key_usage: x509.KeyUsage | None = None,
    ekus: Sequence[ObjectIdentifier] = (),
    serial: int | None = None,
    digest: str | None = None,
    rsa_pss: bool = False,
    crl_uris: Sequence[str] = (),
) -> x509.Certificate:
    """An end-entity (or, with ca=True, intermediate CA) certificate signed by the CA.
    End entities get keyUsage digitalSignature unless `key_usage` says otherwise."""
    algo, pad = _sign_args(ca_key, digest, rsa_pss)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)  # type: ignore[arg-type]
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()  # type: ignore[arg-type]
        )
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(validity.not_before)
        .not_valid_after(validity.not_after)
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
    )
    if key_usage is None:
        key_usage = _ca_key_usage() if ca else parse_key_usage("digitalSignature")
    b = b.add_extension(key_usage, critical=True)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if ekus:
        b = b.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    if crl_uris:
        points = [
            x509.DistributionPoint([x509.UniformResourceIdentifier(u)], None, None, None)
            for u in crl_uris
        ]
        b = b.add_extension(x509.CRLDistributionPoints(points), critical=False)
    return b.sign(ca_key, algo, rsa_padding=pad)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Revocation:
    serial: int
    date: datetime
    reason: x509.ReasonFlags | None = None


def make_crl(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    revoked: Iterable[Revocation],
    this_update: datetime,
    next_update: datetime,
    *,
    crl_number: int = 1,
    digest: str | None = None,
) -> x509.CertificateRevocationList:
    """A v2 CRL with CRLNumber and AKI, one entry per revocation (with CRLReason)."""
    algo, _pad = _sign_args(ca_key, digest, False)
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
    )
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    for r in revoked:
        rb = (
            x509.RevokedCertificateBuilder()
            .serial_number(r.serial)
            .revocation_date(r.date.astimezone(UTC))
        )
        if r.reason is not None:
            rb = rb.add_extension(x509.CRLReason(r.reason), critical=False)
        b = b.add_revoked_certificate(rb.build())
    return b.sign(ca_key, algo)  # type: ignore[arg-type]
