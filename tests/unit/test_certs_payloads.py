"""CERT and CERTREQ payload data (RFC 7296 §3.6/§3.7), answering a CERTREQ, the whole
peer check for IKE_AUTH, and loading certificates, CRLs and keys."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.build import (
    Revocation,
    Validity,
    generate_key,
    issue_certificate,
    make_crl,
    parse_identity,
    self_signed_ca,
)
from ikev2.crypto.certs import (
    CertChain,
    CertificateParseError,
    CertificateRevoked,
    IdentityMismatch,
    KeyLoadError,
    MalformedCertReq,
    TooManyCertificates,
    TrustStore,
    UnsupportedCertEncoding,
    UntrustedCertificate,
    cert_payload,
    certificates_from_payloads,
    certreq_data,
    certreq_payload,
    chain_payloads,
    load_certificate,
    load_certificates,
    load_crl,
    load_private_key,
    parse_certreq,
    parse_dn,
    requested_authorities,
    select_chain,
    spki_sha1,
    verify_peer_certificates,
)
from ikev2.crypto.signature import AuthChoice, choose_auth, sign_auth, verify_auth
from ikev2.errors import InvalidSyntax
from ikev2.protocol.enums import CertEncoding, IdType, NotifyType
from ikev2.protocol.payloads import CERT, CERTREQ

NOW = datetime(2031, 3, 1, tzinfo=UTC)
V = Validity.days(NOW - timedelta(days=10), 400)


class Hierarchy:
    """root → sub → ee for one identity."""

    def __init__(self, name: str, ident: str) -> None:
        self.root_key = generate_key("ecdsa-p256")
        self.root = self_signed_ca(self.root_key, parse_dn(f"CN={name} Root"), V)
        self.sub_key = generate_key("ecdsa-p256")
        self.sub = issue_certificate(self.root, self.root_key, self.sub_key.public_key(),
                                     parse_dn(f"CN={name} Sub"), V, ca=True)
        self.ee_key = generate_key("ed25519")
        self.ee = issue_certificate(self.sub, self.sub_key, self.ee_key.public_key(),
                                    parse_dn(f"CN={ident}"), V, sans=[parse_identity(ident)])
        self.chain = CertChain(self.ee, (self.sub,), self.root)


@pytest.fixture(scope="module")
def a() -> Hierarchy:
    return Hierarchy("A", "user@example.org")


@pytest.fixture(scope="module")
def b() -> Hierarchy:
    return Hierarchy("B", "ha.example.org")


def _der(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.DER)


# -- CERT ---------------------------------------------------------------------------------
def test_cert_payload_is_der_x509_signature(a: Hierarchy) -> None:
    """7296-26: CERT encoding 4 carries the DER certificate."""
    p = cert_payload(a.ee)
    assert p == CERT(CertEncoding.X509_SIGNATURE, _der(a.ee))
    assert p.encoding == 4


def test_certificates_from_payloads(a: Hierarchy) -> None:
    """The first CERT holds the key that verifies AUTH (RFC 7296 §3.6)."""
    payloads = [cert_payload(a.ee), CERT(CertEncoding.CRL, b"ignored"), cert_payload(a.sub)]
    ee, others = certificates_from_payloads(payloads)
    assert ee == a.ee and others == (a.sub,)


def test_first_cert_must_be_x509(a: Hierarchy) -> None:
    with pytest.raises(UnsupportedCertEncoding, match="HASH_URL_X509"):
        certificates_from_payloads([CERT(CertEncoding.HASH_URL_X509, b"x" * 20)])
    with pytest.raises(UnsupportedCertEncoding, match="encoding 99"):
        certificates_from_payloads([CERT(99, b"x")])


def test_corrupt_cert_payload() -> None:
    with pytest.raises(CertificateParseError, match="end-entity CERT payload is not a DER"):
        certificates_from_payloads([CERT(4, b"\x30\x03\x02\x01\x01")])


def test_corrupt_intermediate_payload(a: Hierarchy) -> None:
    with pytest.raises(CertificateParseError, match="CERT payload 2"):
        certificates_from_payloads([cert_payload(a.ee), CERT(4, _der(a.sub)[:-5])])


def test_no_cert_payload() -> None:
    with pytest.raises(UntrustedCertificate, match="no CERT payload"):
        certificates_from_payloads([])


def test_100_cert_payloads_rejected_before_parsing() -> None:
    """Bounded work: 100 CERT payloads → a clear error, nothing parsed (the data is junk)."""
    with pytest.raises(TooManyCertificates, match="100 CERT payloads, at most 16"):
        certificates_from_payloads([CERT(4, b"junk")] * 100)


# -- CERTREQ ------------------------------------------------------------------------------
def test_certreq_is_sha1_of_spki(a: Hierarchy, b: Hierarchy) -> None:
    """7296-25 / RFC 7296 §3.7: CA field = concatenated SHA-1 of SubjectPublicKeyInfo."""
    spki = a.root.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki_sha1(a.root) == hashlib.sha1(spki).digest()
    data = certreq_data([a.root, b.root, a.root])
    assert data == spki_sha1(a.root) + spki_sha1(b.root)
    assert certreq_payload([a.root]) == CERTREQ(CertEncoding.X509_SIGNATURE, spki_sha1(a.root))
    assert TrustStore((a.root,)).certreq_payload().data == spki_sha1(a.root)
    assert parse_certreq(data) == (spki_sha1(a.root), spki_sha1(b.root))


def test_certreq_bad_length() -> None:
    with pytest.raises(MalformedCertReq) as ei:
        parse_certreq(b"\x00" * 21)
    assert isinstance(ei.value, InvalidSyntax) and ei.value.notify == NotifyType.INVALID_SYNTAX


def test_requested_authorities(a: Hierarchy, b: Hierarchy) -> None:
    reqs = [CERTREQ(4, spki_sha1(a.root)), CERTREQ(12, b"\x01" * 20),
            CERTREQ(4, spki_sha1(b.root) + spki_sha1(a.root)), CERTREQ(4, b"")]
    assert requested_authorities(reqs) == {spki_sha1(a.root), spki_sha1(b.root)}
    many = [CERTREQ(4, bytes([i]) * 20 * 10) for i in range(20)]
    assert len(requested_authorities(many, max_hashes=50)) <= 50


def test_select_chain_answers_certreq(a: Hierarchy, b: Hierarchy) -> None:
    chains = [a.chain, b.chain]
    assert select_chain(chains, {spki_sha1(b.root)}) is b.chain
    assert select_chain(chains, {spki_sha1(b.sub)}) is b.chain
    assert select_chain(chains, {spki_sha1(a.root)}) is a.chain
    assert select_chain(chains, {b"\x00" * 20}) is a.chain  # nothing matches: send the first
    assert select_chain(chains, None) is a.chain
    with pytest.raises(ValueError):
        select_chain([], None)


def test_chain_payloads(a: Hierarchy) -> None:
    """EE first, then intermediates up to the first CA the peer trusts; never the root."""
    full = chain_payloads(a.chain, {spki_sha1(a.root)})
    assert full == [cert_payload(a.ee), cert_payload(a.sub)]
    assert chain_payloads(a.chain) == full
    assert chain_payloads(a.chain, {spki_sha1(a.sub)}) == [cert_payload(a.ee)]
    assert a.chain.authority_hashes == (spki_sha1(a.sub), spki_sha1(a.root))


# -- the IKE_AUTH sequence ----------------------------------------------------------------
def test_verify_peer_then_auth(a: Hierarchy) -> None:
    """7296-27: CERTs validate, IDi is bound, then AUTH verifies with the EE key."""
    payloads = chain_payloads(a.chain, requested_authorities([certreq_payload([a.root])]))
    octets = b"signed octets"
    choice = choose_auth(a.ee_key, (5, 2))
    auth = sign_auth(a.ee_key, octets, choice)
    chain = verify_peer_certificates(payloads, IdType.ID_RFC822_ADDR, b"user@example.org",
                                     TrustStore((a.root,)), NOW)
    assert verify_auth(chain.public_key, choice.method, auth, octets).name == "ed25519"


def test_verify_peer_wrong_identity(a: Hierarchy) -> None:
    with pytest.raises(IdentityMismatch):
        verify_peer_certificates(chain_payloads(a.chain), IdType.ID_RFC822_ADDR,
                                 b"bob@example.org", TrustStore((a.root,)), NOW)


def test_verify_peer_wrong_trust(a: Hierarchy, b: Hierarchy) -> None:
    with pytest.raises(UntrustedCertificate):
        verify_peer_certificates(chain_payloads(a.chain), IdType.ID_RFC822_ADDR,
                                 b"user@example.org", TrustStore((b.root,)), NOW)


def test_verify_peer_revoked(a: Hierarchy) -> None:
    crl = make_crl(a.sub, a.sub_key, [Revocation(a.ee.serial_number, NOW)],
                   NOW - timedelta(days=1), NOW + timedelta(days=1))
    with pytest.raises(CertificateRevoked):
        verify_peer_certificates(chain_payloads(a.chain), IdType.ID_RFC822_ADDR,
                                 b"user@example.org", TrustStore((a.root,), (crl,)), NOW)


def test_ecdsa_peer_with_legacy_method(b: Hierarchy) -> None:
    """A P-256 end entity authenticating with RFC 4754 method 9."""
    key = generate_key("ecdsa-p256")
    ee = issue_certificate(b.sub, b.sub_key, key.public_key(), parse_dn("CN=gw"), V,
                           sans=[parse_identity("192.0.2.1")])
    choice = choose_auth(key, None)
    assert choice.method == 9
    auth = sign_auth(key, b"o", choice)
    chain = verify_peer_certificates([cert_payload(ee), cert_payload(b.sub)], IdType.ID_IPV4_ADDR,
                                     bytes([192, 0, 2, 1]), TrustStore((b.root,)), NOW)
    verify_auth(chain.public_key, 9, auth, b"o")
    assert isinstance(choice, AuthChoice)


# -- loading ------------------------------------------------------------------------------
def test_load_certificates_pem_and_der(a: Hierarchy) -> None:
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (a.ee, a.sub))
    assert load_certificates(pem) == [a.ee, a.sub]
    assert load_certificate(_der(a.ee)) == a.ee


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     b"\x30\x82\xff\xff"],
)
def test_load_certificate_garbage(data: bytes) -> None:
    msg = r"^mn/cert\.pem: not a PEM or DER certificate$"
    with pytest.raises(CertificateParseError, match=msg):
        load_certificate(data, source="mn/cert.pem")


def test_load_crl(a: Hierarchy) -> None:
    crl = make_crl(a.sub, a.sub_key, [], NOW, NOW + timedelta(days=1))
    assert load_crl(crl.public_bytes(serialization.Encoding.PEM)) == crl
    assert load_crl(crl.public_bytes(serialization.Encoding.DER)) == crl
    with pytest.raises(CertificateParseError, match=r"x\.crl: not a PEM or DER CRL"):
        load_crl(b"junk", source="x.crl")


def test_load_private_key() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    enc = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"secret"))
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    assert load_private_key(enc, b"secret").private_numbers() == key.private_numbers()
    assert load_private_key(plain).private_numbers() == key.private_numbers()
    with pytest.raises(KeyLoadError, match=r"k\.pem: wrong passphrase"):
        load_private_key(enc, b"guess", source="k.pem")
    with pytest.raises(KeyLoadError, match="encrypted; a passphrase is needed"):
        load_private_key(enc)
    with pytest.raises(KeyLoadError, match="not encrypted"):
        load_private_key(plain, b"secret")
    with pytest.raises(KeyLoadError, match="not a PEM or DER private key"):
        load_private_key(b"nonsense")
    with pytest.raises(KeyLoadError, match="secp256k1"):
        load_private_key(ec.generate_private_key(ec.SECP256K1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
