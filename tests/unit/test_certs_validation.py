"""Chain validation (ikev2.crypto.certs.validate_chain): the happy paths and every failure
with its reason. RFC 7296 §3.6/§2.15 (the CERT key verifies AUTH), RFC 5280 §6 subset."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from certs.build import Revocation, Validity, make_crl, parse_key_usage
from ikev2.crypto.certs import (
    BadCertificateSignature,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    ChainError,
    ChainLoop,
    ChainTooLong,
    CrlError,
    KeyUsageError,
    NotACa,
    PathBuildingLimit,
    PathLengthExceeded,
    TooManyCertificates,
    TrustStore,
    UnsupportedCriticalExtension,
    UntrustedCertificate,
    ValidationPolicy,
    WeakKey,
    parse_dn,
    validate_chain,
)
from ikev2.errors import AuthenticationFailed
from ikev2.protocol.enums import NotifyType

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def _validity(before: float = 365, after: float = 365) -> Validity:
    return Validity(NOW - timedelta(days=before), NOW + timedelta(days=after))


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(
    subject: str,
    key: object,
    signer: object,
    *,
    issuer: str | None = None,
    ca: bool | None = True,
    pathlen: int | None = None,
    validity: Validity | None = None,
    key_usage: str | None = None,
    ekus: Sequence[ObjectIdentifier] = (),
    sans: Sequence[x509.GeneralName] = (),
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
    serial: int | None = None,
) -> x509.Certificate:
    """Full control over one certificate: ca=None leaves basicConstraints out."""
    v = validity or _validity()
    b = (
        x509.CertificateBuilder()
        .subject_name(parse_dn(subject))
        .issuer_name(parse_dn(issuer or subject))
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(v.not_before)
        .not_valid_after(v.not_after)
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None),
                            critical=True)
    if key_usage is not None:
        b = b.add_extension(parse_key_usage(key_usage), critical=True)
    if ekus:
        b = b.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    for ext, crit in extra:
        b = b.add_extension(ext, critical=crit)
    return b.sign(signer, hashes.SHA256())  # type: ignore[arg-type]


class Pki:
    """Root → Sub (intermediate) → EE (user@example.org), all ECDSA P-256."""

    def __init__(self, *, root_pathlen: int | None = None) -> None:
        self.root_key, self.sub_key, self.ee_key = _key(), _key(), _key()
        self.root = make_cert("C=DE, CN=Root", self.root_key, self.root_key, pathlen=root_pathlen,
                              key_usage="keyCertSign,cRLSign")
        self.sub = make_cert("C=DE, CN=Sub", self.sub_key, self.root_key, issuer="C=DE, CN=Root",
                             key_usage="keyCertSign,cRLSign")
        self.ee = self.issue("CN=mn")

    def issue(self, subject: str, **kw: object) -> x509.Certificate:
        kw.setdefault("ca", False)
        kw.setdefault("key_usage", "digitalSignature")
        kw.setdefault("sans", [x509.RFC822Name("user@example.org")])
        key = kw.pop("key", self.ee_key)
        return make_cert(subject, key, self.sub_key, issuer="C=DE, CN=Sub", **kw)  # type: ignore[arg-type]

    def trust(self, *crls: x509.CertificateRevocationList) -> TrustStore:
        return TrustStore((self.root,), tuple(crls))

    def crl(self, revoked: Sequence[int], *, signer: object | None = None,
            issuer: x509.Certificate | None = None, this: datetime | None = None,
            nxt: datetime | None = None) -> x509.CertificateRevocationList:  # fmt: skip
        issuer = issuer or self.sub
        return make_crl(
            issuer, signer or self.sub_key,  # type: ignore[arg-type]
            [Revocation(s, NOW - timedelta(days=1), x509.ReasonFlags.key_compromise)
             for s in revoked],
            this or NOW - timedelta(days=1), nxt or NOW + timedelta(days=7),
        )


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


# -- happy paths --------------------------------------------------------------------------
def test_valid_chain(pki: Pki) -> None:
    """7296-27 precondition: a path EE → intermediate → anchor is found and checked."""
    chain = validate_chain(pki.ee, [pki.sub], pki.trust(), NOW)
    assert chain.path == (pki.ee, pki.sub, pki.root)
    assert chain.end_entity == pki.ee and chain.anchor == pki.root
    assert chain.describe() == "CN=mn <- C=DE, CN=Sub <- C=DE, CN=Root"
    assert chain.public_key.public_numbers() == pki.ee_key.public_key().public_numbers()


def test_extra_and_unordered_certificates_are_fine(pki: Pki) -> None:
    stray = make_cert("CN=Stray", _key(), _key())
    other_sub = make_cert("C=DE, CN=Sub", _key(), _key(), issuer="C=DE, CN=Elsewhere")
    chain = validate_chain(pki.ee, [stray, other_sub, pki.root, pki.sub], pki.trust(), NOW)
    assert chain.path == (pki.ee, pki.sub, pki.root)


def test_posix_timestamp_accepted(pki: Pki) -> None:
    validate_chain(pki.ee, [pki.sub], pki.trust(), NOW.timestamp())


def test_naive_datetime_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match="timezone"):
        validate_chain(pki.ee, [pki.sub], pki.trust(), NOW.replace(tzinfo=None))


def test_intermediate_as_trust_anchor(pki: Pki) -> None:
    chain = validate_chain(pki.ee, [], TrustStore((pki.sub,)), NOW)
    assert chain.path == (pki.ee, pki.sub)


def test_pinned_end_entity(pki: Pki) -> None:
    assert validate_chain(pki.ee, [], TrustStore((pki.ee,)), NOW).path == (pki.ee,)


def test_eku_for_ike_accepted(pki: Pki) -> None:
    for eku in (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH,
                ExtendedKeyUsageOID.IPSEC_IKE, ObjectIdentifier("1.3.6.1.5.5.8.2.2")):
        ee = pki.issue("CN=eku", ekus=[ExtendedKeyUsageOID.EMAIL_PROTECTION, eku])
        validate_chain(ee, [pki.sub], pki.trust(), NOW)


def test_crl_not_listing_the_cert(pki: Pki) -> None:
    validate_chain(pki.ee, [pki.sub], pki.trust(pki.crl([12345])), NOW)


# -- validity periods ---------------------------------------------------------------------
def test_expired_end_entity(pki: Pki) -> None:
    ee = pki.issue("CN=old", validity=Validity(NOW - timedelta(days=30), NOW - timedelta(days=1)))
    with pytest.raises(CertificateExpired, match=r"certificate CN=old expired at 2030-05-31"):
        validate_chain(ee, [pki.sub], pki.trust(), NOW)


def test_not_yet_valid_end_entity(pki: Pki) -> None:
    ee = pki.issue("CN=new", validity=Validity(NOW + timedelta(hours=1), NOW + timedelta(days=9)))
    with pytest.raises(CertificateNotYetValid, match="CN=new is not valid before 2030-06-01 13"):
        validate_chain(ee, [pki.sub], pki.trust(), NOW)


def test_expired_intermediate(pki: Pki) -> None:
    sub = make_cert("C=DE, CN=Sub", pki.sub_key, pki.root_key, issuer="C=DE, CN=Root",
                    validity=Validity(NOW - timedelta(days=9), NOW - timedelta(seconds=1)))
    with pytest.raises(CertificateExpired, match="CA certificate C=DE, CN=Sub expired"):
        validate_chain(pki.ee, [sub], pki.trust(), NOW)


def test_expired_trust_anchor(pki: Pki) -> None:
    root = make_cert("C=DE, CN=Root", pki.root_key, pki.root_key,
                     validity=Validity(NOW - timedelta(days=9), NOW - timedelta(days=1)))
    with pytest.raises(CertificateExpired, match="trust anchor C=DE, CN=Root expired"):
        validate_chain(pki.ee, [pki.sub], TrustStore((root,)), NOW)


# -- revocation ---------------------------------------------------------------------------
def test_revoked_end_entity(pki: Pki) -> None:
    with pytest.raises(CertificateRevoked, match=r"CN=mn \(serial [0-9a-f]+\) was revoked at "
                                                 r"2030-05-31 12:00:00 UTC \(keyCompromise\)"):
        validate_chain(pki.ee, [pki.sub], pki.trust(pki.crl([pki.ee.serial_number])), NOW)


def test_revoked_intermediate(pki: Pki) -> None:
    crl = pki.crl([pki.sub.serial_number], signer=pki.root_key, issuer=pki.root)
    with pytest.raises(CertificateRevoked, match="C=DE, CN=Sub"):
        validate_chain(pki.ee, [pki.sub], pki.trust(crl), NOW)


def test_crl_from_wrong_key(pki: Pki) -> None:
    crl = pki.crl([], signer=_key())
    with pytest.raises(CrlError, match="bad signature"):
        validate_chain(pki.ee, [pki.sub], pki.trust(crl), NOW)


def test_expired_crl(pki: Pki) -> None:
    crl = pki.crl([], this=NOW - timedelta(days=10), nxt=NOW - timedelta(days=1))
    with pytest.raises(CrlError, match="CRL from C=DE, CN=Sub expired at 2030-05-31"):
        validate_chain(pki.ee, [pki.sub], pki.trust(crl), NOW)


def test_crl_not_yet_valid(pki: Pki) -> None:
    crl = pki.crl([], this=NOW + timedelta(days=1), nxt=NOW + timedelta(days=2))
    with pytest.raises(CrlError, match="not valid before"):
        validate_chain(pki.ee, [pki.sub], pki.trust(crl), NOW)


def test_good_crl_wins_over_stale_one(pki: Pki) -> None:
    stale = pki.crl([], this=NOW - timedelta(days=10), nxt=NOW - timedelta(days=1))
    validate_chain(pki.ee, [pki.sub], pki.trust(stale, pki.crl([])), NOW)


def test_require_crl(pki: Pki) -> None:
    with pytest.raises(CrlError, match="no CRL from C=DE, CN=Sub"):
        validate_chain(pki.ee, [pki.sub], pki.trust(), NOW,
                       policy=ValidationPolicy(require_crl=True))
    root_crl = pki.crl([], signer=pki.root_key, issuer=pki.root)
    validate_chain(pki.ee, [pki.sub], pki.trust(pki.crl([]), root_crl), NOW,
                   policy=ValidationPolicy(require_crl=True))


def test_crl_issuer_without_crl_sign(pki: Pki) -> None:
    sub = make_cert("C=DE, CN=Sub", pki.sub_key, pki.root_key, issuer="C=DE, CN=Root",
                    key_usage="keyCertSign")
    with pytest.raises(CrlError, match="lacks cRLSign"):
        validate_chain(pki.ee, [sub], pki.trust(pki.crl([])), NOW)


# -- trust --------------------------------------------------------------------------------
def test_wrong_ca(pki: Pki) -> None:
    other = Pki()
    with pytest.raises(UntrustedCertificate, match="issuer C=DE, CN=Root of C=DE, CN=Sub is not "
                                                   "a trusted CA"):
        validate_chain(pki.ee, [pki.sub], TrustStore((make_cert("CN=Other", _key(), _key()),)),
                       NOW)
    # a CA with the same name but another key: the signature gives it away
    with pytest.raises(BadCertificateSignature, match="does not verify with the key of"):
        validate_chain(pki.ee, [pki.sub], other.trust(), NOW)


def test_missing_intermediate(pki: Pki) -> None:
    with pytest.raises(UntrustedCertificate, match="no intermediate certificate"):
        validate_chain(pki.ee, [], pki.trust(), NOW)


def test_self_signed_end_entity(pki: Pki) -> None:
    k = _key()
    ee = make_cert("CN=selfie", k, k, ca=False)
    with pytest.raises(UntrustedCertificate, match="self-signed certificate CN=selfie"):
        validate_chain(ee, [], pki.trust(), NOW)


def test_forged_end_entity_signature(pki: Pki) -> None:
    forged = make_cert("CN=mn", pki.ee_key, _key(), issuer="C=DE, CN=Sub", ca=False)
    with pytest.raises(BadCertificateSignature, match="CN=mn does not verify"):
        validate_chain(forged, [pki.sub], pki.trust(), NOW)


# -- CA constraints -----------------------------------------------------------------------
def test_issuer_is_not_a_ca(pki: Pki) -> None:
    """An end-entity certificate (cA=FALSE) used to issue another."""
    ee_key = _key()
    leaf = make_cert("CN=leaf", ee_key, pki.ee_key, issuer="CN=mn", ca=False)
    with pytest.raises(NotACa, match="CN=mn is not a CA"):
        validate_chain(leaf, [pki.ee, pki.sub], pki.trust(), NOW)


def test_issuer_without_basic_constraints(pki: Pki) -> None:
    sub = make_cert("C=DE, CN=Sub", pki.sub_key, pki.root_key, issuer="C=DE, CN=Root", ca=None)
    with pytest.raises(NotACa, match="no basicConstraints"):
        validate_chain(pki.ee, [sub], pki.trust(), NOW)


def test_ca_without_key_cert_sign(pki: Pki) -> None:
    sub = make_cert("C=DE, CN=Sub", pki.sub_key, pki.root_key, issuer="C=DE, CN=Root",
                    key_usage="cRLSign,digitalSignature")
    with pytest.raises(KeyUsageError, match="lacks keyCertSign"):
        validate_chain(pki.ee, [sub], pki.trust(), NOW)


def test_path_length_constraint() -> None:
    """Root pathLen 0 allows no intermediate CA below it."""
    p = Pki(root_pathlen=0)
    with pytest.raises(PathLengthExceeded, match=r"allows 0 intermediate CA\(s\).*has 1"):
        validate_chain(p.ee, [p.sub], p.trust(), NOW)
    # an EE issued directly by that root is fine
    ee = make_cert("CN=direct", _key(), p.root_key, issuer="C=DE, CN=Root", ca=False)
    validate_chain(ee, [], p.trust(), NOW)


def test_intermediate_path_length(pki: Pki) -> None:
    k2 = _key()
    sub0 = make_cert("C=DE, CN=Sub", pki.sub_key, pki.root_key, issuer="C=DE, CN=Root",
                     pathlen=0)
    sub2 = make_cert("CN=Sub2", k2, pki.sub_key, issuer="C=DE, CN=Sub")
    ee = make_cert("CN=deep", _key(), k2, issuer="CN=Sub2", ca=False)
    with pytest.raises(PathLengthExceeded, match="C=DE, CN=Sub allows 0"):
        validate_chain(ee, [sub2, sub0], pki.trust(), NOW)
    validate_chain(ee, [sub2, pki.sub], pki.trust(), NOW)


def test_chain_too_long(pki: Pki) -> None:
    with pytest.raises(ChainTooLong, match="within 2 certificates"):
        validate_chain(pki.ee, [pki.sub], pki.trust(), NOW,
                       policy=ValidationPolicy(max_path_length=2))


def test_long_chain_within_limit() -> None:
    """Root → 5 intermediates → EE is fine with the default limit of 8."""
    root_key = _key()
    root = make_cert("CN=R", root_key, root_key)
    issuer, issuer_key, inters = "CN=R", root_key, []
    for i in range(5):
        k = _key()
        inters.append(make_cert(f"CN=I{i}", k, issuer_key, issuer=issuer))
        issuer, issuer_key = f"CN=I{i}", k
    ee = make_cert("CN=leaf", _key(), issuer_key, issuer=issuer, ca=False)
    assert len(validate_chain(ee, inters[::-1], TrustStore((root,)), NOW).path) == 7
    with pytest.raises(ChainTooLong):
        validate_chain(ee, inters, TrustStore((root,)), NOW,
                       policy=ValidationPolicy(max_path_length=6))


def test_chain_loop() -> None:
    """A issued by B, B issued by A, neither trusted: a clear loop error, bounded work."""
    ka, kb = _key(), _key()
    a = make_cert("CN=A", ka, kb, issuer="CN=B")
    b = make_cert("CN=B", kb, ka, issuer="CN=A")
    ee = make_cert("CN=ee", _key(), ka, issuer="CN=A", ca=False)
    unrelated = make_cert("CN=Root", _key(), _key())
    with pytest.raises(ChainLoop, match="CN=ee <- CN=A <- CN=B <- CN=A"):
        validate_chain(ee, [a, b], TrustStore((unrelated,)), NOW)


def test_path_building_is_bounded() -> None:
    """Many same-named candidate issuers with bad signatures: give up after the limit."""
    decoys = [make_cert("CN=Sub", _key(), _key(), issuer="CN=Root") for _ in range(12)]
    ee = make_cert("CN=ee", _key(), _key(), issuer="CN=Sub", ca=False)
    root = make_cert("CN=Root", _key(), _key())
    with pytest.raises(PathBuildingLimit, match="after 5 signature checks"):
        validate_chain(ee, decoys, TrustStore((root,)), NOW,
                       policy=ValidationPolicy(max_signature_checks=5))
    with pytest.raises(BadCertificateSignature):
        validate_chain(ee, decoys, TrustStore((root,)), NOW)


def test_too_many_certificates(pki: Pki) -> None:
    with pytest.raises(TooManyCertificates, match="17 certificates offered"):
        validate_chain(pki.ee, [pki.sub] * 16, pki.trust(), NOW)


# -- end-entity checks --------------------------------------------------------------------
def test_end_entity_key_usage_without_digital_signature(pki: Pki) -> None:
    ee = pki.issue("CN=kx", key_usage="keyEncipherment")
    with pytest.raises(KeyUsageError, match="CN=kx keyUsage lacks digitalSignature"):
        validate_chain(ee, [pki.sub], pki.trust(), NOW)
    validate_chain(ee, [pki.sub], pki.trust(), NOW,
                   policy=ValidationPolicy(check_key_usage=False))


def test_non_repudiation_is_enough(pki: Pki) -> None:
    validate_chain(pki.issue("CN=nr", key_usage="nonRepudiation"), [pki.sub], pki.trust(), NOW)


def test_end_entity_eku_without_ike_use(pki: Pki) -> None:
    ee = pki.issue("CN=mail", ekus=[ExtendedKeyUsageOID.EMAIL_PROTECTION,
                                    ExtendedKeyUsageOID.CODE_SIGNING])
    with pytest.raises(KeyUsageError, match=r"extendedKeyUsage .*emailProtection.* allows no IKE"):
        validate_chain(ee, [pki.sub], pki.trust(), NOW)


def test_short_rsa_key(pki: Pki) -> None:
    ee = pki.issue("CN=weak", key=rsa.generate_private_key(65537, 1024))
    with pytest.raises(WeakKey, match="RSA key of 1024 bits"):
        validate_chain(ee, [pki.sub], pki.trust(), NOW)


def test_unknown_critical_extension(pki: Pki) -> None:
    ext = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    ee = pki.issue("CN=crit", extra=[(ext, True)])
    with pytest.raises(UnsupportedCriticalExtension, match=r"1\.3\.6\.1\.4\.1\.99999\.1"):
        validate_chain(ee, [pki.sub], pki.trust(), NOW)
    validate_chain(pki.issue("CN=noncrit", extra=[(ext, False)]), [pki.sub], pki.trust(), NOW)


def test_errors_are_authentication_failures() -> None:
    for cls in (ChainError, ChainLoop, CertificateRevoked, KeyUsageError, PathBuildingLimit):
        assert issubclass(cls, AuthenticationFailed)
        assert cls("x").notify == NotifyType.AUTHENTICATION_FAILED


def test_name_chaining_ignores_case_and_whitespace(pki: Pki) -> None:
    """RFC 5280 §7.1: the issuer field need not repeat the CA subject byte for byte."""
    ee = make_cert("CN=folded", _key(), pki.sub_key, issuer="C=de, CN=  sub ", ca=False)
    assert validate_chain(ee, [pki.sub], pki.trust(), NOW).path[1] == pki.sub
