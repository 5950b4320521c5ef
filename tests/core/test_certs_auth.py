"""Certificate authentication in IKE_AUTH between two engines in memory (RFC 7296 §2.15,
§3.6-§3.8; RFC 7427 / RFC 8420; REQUIREMENTS A7 7296-59/61, F 7427-01..06, 8420-01), and
the `[connections.X.local/remote]` certificate keys of the TOML loader.

PKIs are made with certs/build.py at a fixed wall-clock time WALL; the engines get
`wall_time=lambda: WALL` (the engine's own `now` is a monotonic test clock)."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.build import (
    Revocation,
    Validity,
    generate_key,
    issue_certificate,
    make_crl,
    parse_identity,
    self_signed_ca,
)
from ikev2.config.loader import load_config_text
from ikev2.config.model import AuthConfig, AuthKind, ConnectionConfig, Credential, Identity
from ikev2.core import ike_auth, ike_init
from ikev2.core.events import (
    ChildSaEstablished,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
)
from ikev2.crypto import signature
from ikev2.crypto.certs import CertChain, TrustStore, parse_dn, spki_sha1
from ikev2.errors import ConfigError
from ikev2.protocol.enums import (
    AuthMethod,
    ExchangeType,
    HashAlgorithm,
    IdType,
    NotifyType,
    PayloadType,
)
from ikev2.protocol.header import parse_header
from ikev2.protocol.payloads import AUTH, CERT, CERTREQ, Notify
from ikev2.protocol.sk import reassemble, unprotect, unprotect_fragment
from tests.core.harness import Pair, make_conn, mirror

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
WALL = NOW.timestamp()
ID_A, ID_B = "user@example.org", "gw.example.org"


# -- a test PKI ---------------------------------------------------------------------------
@functools.cache
def key(kind: str, n: int = 0):
    """Keys are slow to make (RSA): one per (kind, n), shared by every test."""
    return generate_key(kind)


class Ca:
    """A CA (root, or intermediate when `parent` is given) that issues end entities."""

    def __init__(self, name: str, kind: str = "ecdsa-p256", parent: Ca | None = None,
                 validity: Validity | None = None) -> None:  # fmt: skip
        self.key = key(kind, hash(name) % 1000)
        self.name = parse_dn(f"C=XX, O=Test, CN={name}")
        v = validity or Validity.days(NOW - timedelta(days=1), 3650)
        self.parent = parent
        if parent is None:
            self.cert = self_signed_ca(self.key, self.name, v)
        else:
            self.cert = issue_certificate(parent.cert, parent.key, self.key.public_key(),
                                          self.name, v, ca=True)  # fmt: skip

    def issue(self, ident: str, kind: str = "ecdsa-p256", *, n: int = 0,
              days: float = 365, start: datetime | None = None, sans: tuple[str, ...] = (),
              **kw) -> Credential:  # fmt: skip
        k = key(kind, n)
        v = Validity.days(start or NOW - timedelta(days=1), days)
        cert = issue_certificate(
            self.cert, self.key, k.public_key(), parse_dn(f"C=XX, O=Test, CN={ident}"), v,
            sans=[parse_identity(s) for s in (ident, *sans)], **kw,
        )
        inter = []
        ca = self
        while ca.parent is not None:
            inter.append(ca.cert)
            ca = ca.parent
        return Credential(CertChain(cert, tuple(inter), ca.cert), k)

    def crl(self, *revoked: x509.Certificate) -> x509.CertificateRevocationList:
        return make_crl(
            self.cert, self.key,
            [Revocation(c.serial_number, NOW - timedelta(hours=1),
                        x509.ReasonFlags.key_compromise) for c in revoked],
            NOW - timedelta(hours=2), NOW + timedelta(days=7),
        )  # fmt: skip


@functools.cache
def root(name: str = "Test Root", kind: str = "ecdsa-p256") -> Ca:
    return Ca(name, kind)


def pubkey_side(ident: str | None, cred: Credential | None = None, *,
                trust: tuple = (), crls: tuple = ()) -> AuthConfig:  # fmt: skip
    return AuthConfig(
        Identity.parse(ident) if ident else None, AuthKind.PUBKEY,
        credentials=(cred,) if cred else (),
        trust=TrustStore(tuple(trust), tuple(crls)) if trust else None,
    )


def cert_conns(cred_a: Credential, cred_b: Credential, *, trust_a: tuple = (),
               trust_b: tuple = (), crls_a: tuple = (), crls_b: tuple = (),
               id_a: str | None = ID_A, id_b: str | None = ID_B,
               expect_b: str | None = ID_B, expect_a: str | None = ID_A,
               **kw) -> tuple[ConnectionConfig, ConnectionConfig]:  # fmt: skip
    """A (initiator) and B (responder), both authenticating with certificates; A trusts
    `trust_a` for B's certificate, B trusts `trust_b` for A's (default: the roots)."""
    trust_a = trust_a or (cred_b.chain.anchor,)
    trust_b = trust_b or (cred_a.chain.anchor,)
    a = replace(make_conn(**kw),
                local=pubkey_side(id_a, cred_a),
                remote=pubkey_side(expect_b, trust=trust_a, crls=crls_a))  # fmt: skip
    b = mirror(a, local=pubkey_side(id_b, cred_b),
               remote=pubkey_side(expect_a, trust=trust_b, crls=crls_b))  # fmt: skip
    return a, b


def cert_pair(seed: int = 1, wall: float | None = WALL) -> Pair:
    pair = Pair(seed)
    for node in (pair.a, pair.b):
        node.engine.wall_time = (lambda: wall) if wall is not None else None
    return pair


def established(pair: Pair) -> tuple:
    ea, eb = pair.a.of(IkeSaEstablished), pair.b.of(IkeSaEstablished)
    assert len(ea) == 1 and len(eb) == 1, (pair.a.events, pair.b.events)
    assert len(pair.a.kernel.children) == 1 and len(pair.b.kernel.children) == 1
    return ea[0].ike, eb[0].ike


def failed_cleanly(pair: Pair) -> tuple[str, str]:
    """Nothing installed on either side, no IKE SA left; (A's reason, B's reason)."""
    pair.advance(60)
    assert not pair.a.kernel.children and not pair.b.kernel.children
    assert not pair.a.engine.by_id and not pair.b.engine.by_id
    ra = [e.reason for e in pair.a.drain_events() if isinstance(e, IkeSaFailed | IkeSaDeleted)]
    rb = [e.reason for e in pair.b.drain_events() if isinstance(e, IkeSaFailed | IkeSaDeleted)]
    assert ra and rb, (pair.a.events, pair.b.events)
    return ra[0], rb[0]


def auth_messages(pair: Pair, sender: str) -> list[list]:
    """The decrypted IKE_AUTH messages `sender` sent (fragments reassembled)."""
    other = pair.b if sender == "a" else pair.a
    peer_sa = next(iter(other.engine.by_id.values()))  # its inbound crypter opens them
    out, frags = [], []
    for s, d in pair.wire:
        h = parse_header(d.data)
        if s != sender or h.exchange != ExchangeType.IKE_AUTH:
            continue
        if h.next_payload == PayloadType.SKF:
            frags.append(unprotect_fragment(d.data, h, peer_sa.crypter_in))
            if len(frags) == frags[0].total_fragments:
                out.append(reassemble(frags))
                frags = []
        else:
            out.append(unprotect(d.data, h, peer_sa.crypter_in))
    return out


# -- every method and key type --------------------------------------------------------------
KINDS = ["rsa2048", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519", "ed448"]


@pytest.mark.parametrize("kind", KINDS)
def test_7427_01_method14_every_key_type(kind: str) -> None:
    """7427-01/02, 8420-01: both announce SIGNATURE_HASH_ALGORITHMS and sign with AUTH
    method 14; Ed25519/Ed448 with hash Identity (5)."""
    ca = root()
    pair = cert_pair()
    pair.connect(*cert_conns(ca.issue(ID_A, kind), ca.issue(ID_B, kind)))
    ia, ib = established(pair)
    assert ia.remote_id == ID_B and ib.remote_id == ID_A
    for sender in "ab":
        msg = auth_messages(pair, sender)[0]
        auth = next(p for p in msg if isinstance(p, AUTH))
        assert auth.method == AuthMethod.DIGITAL_SIGNATURE
        scheme, _ = signature.parse_auth_data(auth.data)
        if kind.startswith("ed"):
            assert scheme.hash == HashAlgorithm.IDENTITY
        elif kind == "rsa2048":
            assert scheme.is_pss  # RSASSA-PSS by default (RFC 8247 §4.2)


def test_7427_01_hash_notify_in_both_init_messages() -> None:
    """7427-01: N(SIGNATURE_HASH_ALGORITHMS) = 0002 0003 0004 0005 both ways; the
    responder's IKE_SA_INIT also carries CERTREQ with the SHA-1 of its CA's key (§3.7)."""
    from ikev2.protocol.codec import parse_message

    ca = root()
    pair = cert_pair()
    pair.connect(*cert_conns(ca.issue(ID_A), ca.issue(ID_B)))
    established(pair)
    init = [(s, parse_message(d.data)[1]) for s, d in pair.wire
            if parse_header(d.data).exchange == ExchangeType.IKE_SA_INIT]  # fmt: skip
    for _s, payloads in init:
        n = [p for p in payloads if isinstance(p, Notify)
             and p.type == NotifyType.SIGNATURE_HASH_ALGORITHMS]  # fmt: skip
        assert len(n) == 1 and n[0].data == bytes.fromhex("0002000300040005")
    resp = init[1][1]
    req = [p for p in resp if isinstance(p, CERTREQ)]
    assert len(req) == 1 and req[0].data == spki_sha1(ca.cert)
    # 7296 §1.2: the initiator sends CERT and CERTREQ in IKE_AUTH
    msg = auth_messages(pair, "a")[0]
    assert [type(p) for p in msg[:3]] == [type(msg[0]), CERT, CERTREQ]


@pytest.mark.parametrize(("kind", "method"), [
    ("rsa2048", AuthMethod.RSA_SIG),
    ("ecdsa-p256", AuthMethod.ECDSA_SHA256_P256),
    ("ecdsa-p384", AuthMethod.ECDSA_SHA384_P384),
    ("ecdsa-p521", AuthMethod.ECDSA_SHA512_P521),
])  # fmt: skip
def test_7427_03_legacy_methods_without_hash_notify(
    kind: str, method: AuthMethod, monkeypatch: pytest.MonkeyPatch
) -> None:
    """7427-03: a peer that announced no hashes gets AUTH methods 1 / 9 / 10 / 11."""
    monkeypatch.setattr(ike_init, "uses_certificates", lambda conn: False)
    ca = root()
    pair = cert_pair()
    pair.connect(*cert_conns(ca.issue(ID_A, kind), ca.issue(ID_B, kind)))
    established(pair)
    for sender in "ab":
        auth = next(p for p in auth_messages(pair, sender)[0] if isinstance(p, AUTH))
        assert auth.method == method


def test_7427_03_ed25519_without_identity_hash_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """No legacy method exists for Ed25519: without "Identity" announced the initiator
    cannot sign and gives up with a clear reason, sending nothing."""
    monkeypatch.setattr(ike_init, "uses_certificates", lambda conn: False)
    ca = root()
    pair = cert_pair()
    pair.connect(*cert_conns(ca.issue(ID_A, "ed25519"), ca.issue(ID_B, "ed25519")))
    reasons = failed_cleanly(pair)
    assert "cannot sign our AUTH payload" in reasons[0] and "Ed25519" in reasons[0]


def test_7427_03_only_announced_hash_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Peers that announce only SHA2-384 get ecdsa-with-sha384 from a P-256 key."""
    monkeypatch.setattr(ike_init, "_hash_notify", lambda: Notify(
        0, NotifyType.SIGNATURE_HASH_ALGORITHMS, b"", bytes.fromhex("0003")))
    ca = root()
    pair = cert_pair()
    pair.connect(*cert_conns(ca.issue(ID_A), ca.issue(ID_B)))
    established(pair)
    auth = next(p for p in auth_messages(pair, "a")[0] if isinstance(p, AUTH))
    assert signature.parse_auth_data(auth.data)[0].name == "ecdsa-with-sha384"


def test_7427_02_rsa_pkcs1_method14_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """charon signs RSA method 14 with sha256WithRSAEncryption (PKCS#1 v1.5): accepted."""
    real = signature.choose_auth
    pkcs1 = signature.SignaturePolicy(rsa_pss=False)
    monkeypatch.setattr(signature, "choose_auth", lambda k, h: real(k, h, pkcs1))
    ca = root()
    pair = cert_pair()
    pair.connect(*cert_conns(ca.issue(ID_A, "rsa2048"), ca.issue(ID_B, "rsa2048")))
    established(pair)
    auth = next(p for p in auth_messages(pair, "a")[0] if isinstance(p, AUTH))
    assert signature.parse_auth_data(auth.data)[0].name == "sha256WithRSAEncryption"


def test_rsa_ca_ecdsa_end_entity_with_intermediate() -> None:
    """Chains of mixed key types through an intermediate: CERT(EE), CERT(sub) sent, the
    root (the peer's trust anchor) never (RFC 7296 §3.6)."""
    top = root("RSA Root", "rsa2048")
    sub = Ca("ECDSA Sub", "ecdsa-p384", parent=top)
    pair = cert_pair()
    a, b = cert_conns(sub.issue(ID_A), sub.issue(ID_B, "ed25519"))
    pair.connect(a, b)
    established(pair)
    certs_a = [p for p in auth_messages(pair, "a")[0] if isinstance(p, CERT)]
    assert len(certs_a) == 2
    assert x509.load_der_x509_certificate(certs_a[1].data) == sub.cert


# -- CERTREQ -----------------------------------------------------------------------------
def test_7296_certreq_chooses_the_chain_the_peer_trusts() -> None:
    """B holds chains from two CAs; A trusts only the second and names it in CERTREQ:
    B answers with that chain (RFC 7296 §3.7). Same for A, driven by B's IKE_SA_INIT
    CERTREQ."""
    ca1, ca2 = root("CA One"), root("CA Two")
    a, b = cert_conns(ca1.issue(ID_A), ca1.issue(ID_B), trust_a=(ca2.cert,),
                      trust_b=(ca2.cert,))  # fmt: skip
    a = replace(a, local=replace(a.local, credentials=(ca1.issue(ID_A), ca2.issue(ID_A, n=1))))
    b = replace(b, local=replace(b.local, credentials=(ca1.issue(ID_B), ca2.issue(ID_B, n=1))))
    pair = cert_pair()
    pair.connect(a, b)
    established(pair)
    for sender in "ab":
        cert = next(p for p in auth_messages(pair, sender)[0] if isinstance(p, CERT))
        issuer = x509.load_der_x509_certificate(cert.data).issuer
        assert issuer == ca2.cert.subject


def test_7296_certreq_stops_chain_at_trusted_intermediate() -> None:
    """A trusts the intermediate itself: B sends only its end-entity certificate."""
    top = root()
    sub = Ca("Sub CA", parent=top)
    a, b = cert_conns(sub.issue(ID_A), sub.issue(ID_B), trust_a=(sub.cert,))
    pair = cert_pair()
    pair.connect(a, b)
    established(pair)
    assert len([p for p in auth_messages(pair, "b")[0] if isinstance(p, CERT)]) == 1
    assert len([p for p in auth_messages(pair, "a")[0] if isinstance(p, CERT)]) == 2


def test_no_certreq_first_chain_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that asks for nothing gets our first chain (RFC 7296 §3.6): here one from
    a CA it does not trust, so it refuses it."""
    monkeypatch.setattr(ike_init, "certreq_payload", lambda anchors: CERTREQ(4, b""))
    monkeypatch.setattr(ike_auth, "_certreq", lambda conn: [])
    ca1, ca2 = root("CA One"), root("CA Two")
    a, b = cert_conns(ca1.issue(ID_A), ca1.issue(ID_B))
    a = replace(a, local=replace(a.local, credentials=(ca2.issue(ID_A, n=1), ca1.issue(ID_A))))
    _, rb = _fail(a, b)
    assert "CA Two" in rb and "is not a trusted CA" in rb


# -- failures -------------------------------------------------------------------------------
def _fail(a: ConnectionConfig, b: ConnectionConfig, *,
          wall: float | None = WALL) -> tuple[str, str]:  # fmt: skip
    """Run A → B to the end: it must fail on both sides with nothing installed."""
    pair = cert_pair(wall=wall)
    pair.connect(a, b)
    reasons = failed_cleanly(pair)
    assert not pair.a.of(ChildSaEstablished) or pair.a.of(IkeSaDeleted)
    return reasons


FAILURES = {
    # name: (what is wrong, expected words in the verifier's reason)
    "expired": ({"days": 10, "start": NOW - timedelta(days=30)}, "expired at"),
    "not_yet_valid": ({"start": NOW + timedelta(days=2)}, "is not valid before"),
}


@pytest.mark.parametrize("side", ["responder_rejects", "initiator_rejects"])
@pytest.mark.parametrize("case", sorted(FAILURES))
def test_7296_61_validity_failures(case: str, side: str) -> None:
    """An expired / not yet valid certificate: AUTHENTICATION_FAILED, nothing installed,
    on both sides, with the reason in the verifier's log and event."""
    ca = root()
    bad, words = FAILURES[case]
    if side == "responder_rejects":
        a, b = cert_conns(ca.issue(ID_A, **bad), ca.issue(ID_B))
        ra, rb = _fail(a, b)
        assert words in rb and "AUTHENTICATION_FAILED" in ra
    else:
        a, b = cert_conns(ca.issue(ID_A), ca.issue(ID_B, **bad))
        ra, rb = _fail(a, b)
        assert words in ra


@pytest.mark.parametrize("side", ["responder_rejects", "initiator_rejects"])
def test_7296_61_revoked_certificate(side: str) -> None:
    ca = root()
    ca_a, ca_b = ca.issue(ID_A), ca.issue(ID_B)
    victim = ca_a if side == "responder_rejects" else ca_b
    crl = ca.crl(victim.chain.end_entity)
    if side == "responder_rejects":
        ra, rb = _fail(*cert_conns(ca_a, ca_b, crls_b=(crl,)))
        assert "was revoked" in rb and "keyCompromise" in rb
        assert "AUTHENTICATION_FAILED" in ra
    else:
        ra, _ = _fail(*cert_conns(ca_a, ca_b, crls_a=(crl,)))
        assert "was revoked" in ra


def test_crl_without_revocation_passes() -> None:
    ca = root()
    a, b = cert_conns(ca.issue(ID_A), ca.issue(ID_B), crls_a=(ca.crl(),), crls_b=(ca.crl(),))
    pair = cert_pair()
    pair.connect(a, b)
    established(pair)


@pytest.mark.parametrize("side", ["responder_rejects", "initiator_rejects"])
def test_7296_61_wrong_ca(side: str) -> None:
    ca, other = root(), root("Other Root")
    if side == "responder_rejects":
        ra, rb = _fail(*cert_conns(ca.issue(ID_A), ca.issue(ID_B), trust_b=(other.cert,)))
        assert "is not a trusted CA" in rb and "AUTHENTICATION_FAILED" in ra
    else:
        ra, _ = _fail(*cert_conns(ca.issue(ID_A), ca.issue(ID_B), trust_a=(other.cert,)))
        assert "is not a trusted CA" in ra


@pytest.mark.parametrize("side", ["responder_rejects", "initiator_rejects"])
def test_7296_61_id_not_in_certificate(side: str) -> None:
    """7296-61: a valid certificate for user A presenting IDi = user B fails."""
    ca = root()
    if side == "responder_rejects":
        a, b = cert_conns(ca.issue("other@example.org"), ca.issue(ID_B), expect_a=None)
        ra, rb = _fail(a, b)
        assert "does not match the certificate" in rb and "rfc822Name" in rb
        assert "AUTHENTICATION_FAILED" in ra
    else:
        a, b = cert_conns(ca.issue(ID_A), ca.issue("vpn.example.net"), expect_b=None)
        ra, _ = _fail(a, b)
        assert "does not match the certificate" in ra and "dNSName" in ra


def test_configured_remote_id_differs() -> None:
    """The certificate is fine but not the identity we expect of the peer. B refuses A's
    IDr naming someone else; B without a local id answers as its subject DN, which A
    refuses as not the identity it expects."""
    ca = root()
    a, b = cert_conns(ca.issue(ID_A), ca.issue("vpn.example.net"), id_b="vpn.example.net")
    _, rb = _fail(a, b)
    assert "asking for us as gw.example.org" in rb
    a, b = cert_conns(ca.issue(ID_A), ca.issue("vpn.example.net"), id_b=None)
    ra, _ = _fail(a, b)
    assert "peer identity C=XX, O=Test, CN=vpn.example.net is not gw.example.org" in ra


@pytest.mark.parametrize("side", ["responder_rejects", "initiator_rejects"])
def test_7427_04_bad_signature(side: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flipped bit in the signature: BadSignature → AUTHENTICATION_FAILED."""
    real = signature.sign_auth
    who = {"n": 0}
    target = 1 if side == "responder_rejects" else 2  # A signs first, then B

    def sign(k, octets, choice):
        who["n"] += 1
        data = real(k, octets, choice)
        return data[:-1] + bytes([data[-1] ^ 1]) if who["n"] == target else data

    monkeypatch.setattr(signature, "sign_auth", sign)
    ca = root()
    ra, rb = _fail(*cert_conns(ca.issue(ID_A), ca.issue(ID_B)))
    reason = rb if side == "responder_rejects" else ra
    assert "does not verify" in reason and "certificate" in reason


def test_7427_03_unannounced_hash_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A signs with SHA-1 in method 14, which B did not announce (RFC 8247): refused."""
    sha1 = signature.scheme_by_name("sha1WithRSAEncryption")
    monkeypatch.setattr(signature, "choose_auth",
                        lambda k, h: signature.AuthChoice(AuthMethod.DIGITAL_SIGNATURE, sha1))
    ca = root()
    ra, rb = _fail(*cert_conns(ca.issue(ID_A, "rsa2048"), ca.issue(ID_B, "rsa2048")))
    assert "which we did not announce" in rb and "AUTHENTICATION_FAILED" in ra


def test_7427_04_key_type_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """7427-04: an RSA certificate with an ecdsa-with-sha256 AlgorithmIdentifier fails."""
    real = signature.sign_auth
    ecdsa = signature.scheme_by_name("ecdsa-with-sha256")

    def sign(k, octets, choice):
        data = real(k, octets, choice)
        if isinstance(k, type(key("rsa2048"))):
            der = ecdsa.algorithm_identifier
            return bytes((len(der),)) + der + signature.parse_auth_data(data)[1]
        return data

    monkeypatch.setattr(signature, "sign_auth", sign)
    ca = root()
    _, rb = _fail(*cert_conns(ca.issue(ID_A, "rsa2048"), ca.issue(ID_B)))
    assert "does not fit" in rb


def test_no_wall_clock_refuses() -> None:
    """Without an injected wall clock certificate validation fails with a clear reason."""
    ca = root()
    _, rb = _fail(*cert_conns(ca.issue(ID_A), ca.issue(ID_B)), wall=None)
    assert "no wall clock" in rb


def test_psk_where_certificate_expected() -> None:
    ca = root()
    a, b = cert_conns(ca.issue(ID_A), ca.issue(ID_B))
    psk = make_conn()
    a = replace(a, local=psk.local)
    _, rb = _fail(a, b)
    assert "used a pre-shared key" in rb and "we expect a certificate signature" in rb


def test_100_cert_payloads_fail_cleanly() -> None:
    """100 CERT payloads: TooManyCertificates before any parsing → AUTHENTICATION_FAILED
    (the message is fragmented and reassembled first: 7383 and the CERT bound together)."""
    ca = root()
    cred = ca.issue(ID_A, "ed25519")
    junk = tuple(ca.issue(f"x{i}.example.org", "ed25519").chain.end_entity for i in range(3))
    many = Credential(CertChain(cred.chain.end_entity, junk * 33, ca.cert), cred.key)
    a, b = cert_conns(many, ca.issue(ID_B))
    ra, rb = _fail(a, b)
    assert "100 CERT payloads" in rb and "AUTHENTICATION_FAILED" in ra


def test_failure_reason_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The verifier logs the one-line reason (responder: the failed IKE_AUTH request;
    initiator: the failed authentication of the responder)."""
    ca, other = root(), root("Other Root")
    with caplog.at_level(logging.INFO, logger="ikev2.core"):
        _fail(*cert_conns(ca.issue(ID_A), ca.issue(ID_B), trust_a=(other.cert,)))
    text = caplog.text
    assert "authentication of the responder failed" in text and "not a trusted CA" in text


# -- mixed configurations ---------------------------------------------------------------
def test_mixed_initiator_cert_responder_psk() -> None:
    """A authenticates with its certificate, B with the PSK (RFC 7296 §2.15: each side
    its own method)."""
    ca = root()
    base = make_conn()
    a = replace(base, local=pubkey_side(ID_A, ca.issue(ID_A)), remote=base.remote)
    b = mirror(a, local=base.remote, remote=pubkey_side(ID_A, trust=(ca.cert,)))
    pair = cert_pair()
    pair.connect(a, b)
    established(pair)
    assert next(p for p in auth_messages(pair, "a")[0] if isinstance(p, AUTH)).method == 14
    assert next(p for p in auth_messages(pair, "b")[0] if isinstance(p, AUTH)).method == 2


def test_mixed_initiator_psk_responder_cert() -> None:
    ca = root()
    base = make_conn()
    a = replace(base, remote=pubkey_side(ID_B, trust=(ca.cert,)))
    b = mirror(a, local=pubkey_side(ID_B, ca.issue(ID_B)), remote=base.local)
    pair = cert_pair()
    pair.connect(a, b)
    established(pair)
    assert next(p for p in auth_messages(pair, "a")[0] if isinstance(p, AUTH)).method == 2
    assert next(p for p in auth_messages(pair, "b")[0] if isinstance(p, AUTH)).method == 14


def test_mixed_mismatch_fails() -> None:
    """B expects a certificate but A uses its PSK: refused with the reason."""
    ca = root()
    base = make_conn()
    b = mirror(base, remote=pubkey_side(ID_A, trust=(ca.cert,)))
    _, rb = _fail(base, replace(b, local=base.remote))
    assert "used a pre-shared key" in rb


def test_default_identity_is_subject_dn() -> None:
    """No local id with a certificate: IDi is the subject DN (ID_DER_ASN1_DN), which the
    peer matches against the certificate and a configured `dn:` identity."""
    ca = root()
    a, b = cert_conns(ca.issue(ID_A), ca.issue(ID_B), id_a=None,
                      expect_a="dn:C=XX, O=Test, CN=user@example.org")  # fmt: skip
    pair = cert_pair()
    pair.connect(a, b)
    ia, ib = established(pair)
    assert ia.local_id == "C=XX, O=Test, CN=user@example.org" == ib.remote_id
    idi = auth_messages(pair, "a")[0][0]
    assert idi.id_type == IdType.ID_DER_ASN1_DN


def test_dn_identity_compares_by_rfc5280_rules() -> None:
    """A DN configured with other case/spacing still matches (7296-61 with RFC 5280 §7.1)."""
    ca = root()
    a, b = cert_conns(ca.issue(ID_A), ca.issue(ID_B), id_a="dn:C=XX, O=Test, CN=user@example.org",
                      expect_a="dn:c=xx,  o=TEST, cn=USER@example.org")  # fmt: skip
    pair = cert_pair()
    pair.connect(a, b)
    established(pair)


def test_identity_parse_dn() -> None:
    i = Identity.parse("C=DE, O=Testbed, CN=peer3")
    assert i.id_type == IdType.ID_DER_ASN1_DN and str(i) == "C=DE, O=Testbed, CN=peer3"
    assert Identity.parse("dn:CN=x") == Identity.parse("CN=x")
    with pytest.raises(ValueError):
        Identity.parse("dn:nonsense")


# -- configuration ---------------------------------------------------------------------------
def _write_pki(tmp: Path) -> dict[str, Path]:
    ca = root()
    sub = Ca("Config Sub", parent=ca)
    cred = sub.issue(ID_A, n=3)
    files = {
        "ca": tmp / "ca.pem", "cert": tmp / "mn.pem", "sub": tmp / "sub.pem",
        "key": tmp / "key.pem", "crl": tmp / "crl.pem", "other_key": tmp / "other.pem",
        "enc_key": tmp / "enc.pem", "pass": tmp / "pass.txt",
    }  # fmt: skip
    pem = serialization.Encoding.PEM
    files["ca"].write_bytes(ca.cert.public_bytes(pem))
    files["cert"].write_bytes(cred.chain.end_entity.public_bytes(pem))
    files["sub"].write_bytes(sub.cert.public_bytes(pem))
    pkcs8 = serialization.PrivateFormat.PKCS8
    files["key"].write_bytes(cred.key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    files["other_key"].write_bytes(
        key("ecdsa-p256", 99).private_bytes(pem, pkcs8, serialization.NoEncryption()))
    files["enc_key"].write_bytes(cred.key.private_bytes(
        pem, pkcs8, serialization.BestAvailableEncryption(b"s3cret")))
    files["pass"].write_text("s3cret\n")
    files["crl"].write_bytes(ca.crl().public_bytes(pem))
    return files


def _cfg(local: str, remote: str, extra: str = "") -> str:
    return f"""
[daemon]
listen = ["192.0.2.1"]
[connections.home]
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2"]
psk = "0x00112233445566778899"
{extra}
[connections.home.local]
{local}
[connections.home.remote]
{remote}
"""


def test_config_pubkey_both_sides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths resolve against the config file's directory; the local id defaults
    to the certificate's subject DN; a root in certs is kept as the anchor, never sent."""
    f = _write_pki(tmp_path)
    conf = tmp_path / "ikev2d.toml"
    conf.write_text(_cfg('auth = "pubkey"\ncerts = ["mn.pem", "sub.pem", "ca.pem"]\n'
                         'key = "key.pem"',
                         'auth = "pubkey"\nid = "gw.example.org"\ncacerts = ["ca.pem"]\n'
                         'crls = ["crl.pem"]', "fragment_size = 1400"))  # fmt: skip
    monkeypatch.chdir("/")
    from ikev2.config.loader import load_config

    conn = load_config(conf).connections[0]
    assert conn.fragment_size == 1400
    local, remote = conn.local, conn.remote
    assert local.auth is AuthKind.PUBKEY and local.psk is None
    assert local.id is not None and local.id.id_type == IdType.ID_DER_ASN1_DN
    assert str(local.id) == "C=XX, O=Test, CN=user@example.org"
    (cred,) = local.credentials
    assert len(cred.chain.intermediates) == 1 and cred.chain.anchor is not None
    assert remote.trust is not None and len(remote.trust.anchors) == 1
    assert len(remote.trust.crls) == 1
    assert f["cert"].exists()


def test_config_mixed_and_passphrase(tmp_path: Path) -> None:
    f = _write_pki(tmp_path)
    text = _cfg(f'auth = "pubkey"\nid = "{ID_A}"\ncerts = ["{f["cert"]}", "{f["sub"]}"]\n'
                f'key = "{f["enc_key"]}"\nkey_passphrase_file = "{f["pass"]}"',
                'auth = "psk"\nid = "gw.example.org"')  # fmt: skip
    conn = load_config_text(text).connections[0]
    assert conn.local.auth is AuthKind.PUBKEY and conn.remote.auth is AuthKind.PSK
    assert conn.remote.psk == bytes.fromhex("00112233445566778899")


@pytest.mark.parametrize(("local", "remote", "key", "words"), [
    ('auth = "pubkey"\ncerts = ["missing.pem"]\nkey = "key.pem"', 'id = "gw.example.org"',
     "local.certs[0]", "file not found"),
    ('auth = "pubkey"\ncerts = ["pass.txt"]\nkey = "key.pem"', 'id = "gw.example.org"',
     "local.certs[0]", "not a PEM or DER certificate"),
    ('auth = "pubkey"\ncerts = ["mn.pem"]\nkey = "other.pem"', 'id = "gw.example.org"',
     "local.key", "does not belong to the certificate"),
    ('auth = "pubkey"\ncerts = ["mn.pem"]\nkey = "ca.pem"', 'id = "gw.example.org"',
     "local.key", "not a PEM or DER private key"),
    ('auth = "pubkey"\ncerts = ["mn.pem"]\nkey = "enc.pem"', 'id = "gw.example.org"',
     "local.key", "passphrase is needed"),
    ('auth = "pubkey"\ncerts = ["mn.pem"]', 'id = "gw.example.org"',
     "local.key", "missing"),
    ('auth = "pubkey"\nid = "gw.example.org"\ncerts = ["mn.pem"]\nkey = "key.pem"',
     'id = "gw.example.org"', "local.id", "is not in our certificate"),
    ('auth = "psk"\nid = "a@example.org"', 'auth = "pubkey"\nid = "gw.example.org"',
     "remote.cacerts", "missing"),
    ('auth = "psk"\nid = "a@example.org"',
     'auth = "pubkey"\nid = "gw.example.org"\ncacerts = ["ca.pem"]\ncrls = ["ca.pem"]',
     "remote.crls[0]", "not a PEM or DER CRL"),
    ('auth = "psk"\nid = "a@example.org"\ncerts = ["mn.pem"]', 'id = "gw.example.org"',
     "local.certs", 'only used with auth = "pubkey"'),
    ('auth = "psk"\nid = "a@example.org"',
     'auth = "pubkey"\nid = "gw.example.org"\ncerts = ["mn.pem"]\ncacerts = ["ca.pem"]',
     "remote.certs", "belong in the local side"),
])  # fmt: skip
def test_config_errors(tmp_path: Path, local: str, remote: str, key: str, words: str) -> None:
    _write_pki(tmp_path)
    conf = tmp_path / "ikev2d.toml"
    conf.write_text(_cfg(local, remote))
    from ikev2.config.loader import load_config

    with pytest.raises(ConfigError) as exc:
        load_config(conf)
    msg = str(exc.value)
    assert f"connections.home.{key}" in msg and words in msg, msg


def test_config_fragment_size_range() -> None:
    with pytest.raises(ConfigError, match="out of range 576-65535"):
        load_config_text(_cfg('id = "a@example.org"', 'id = "gw.example.org"',
                              "fragment_size = 100"))  # fmt: skip
    conn = load_config_text(_cfg('id = "a@example.org"', 'id = "gw.example.org"')).connections[0]
    assert conn.fragment_size is None


# -- docs/certs.md, as written ----------------------------------------------------------
DOC = Path(__file__).resolve().parents[2] / "docs" / "certs.md"


def _doc_blocks(kind: str) -> list[str]:
    import re

    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def _run_pki_lines(script: str) -> None:
    import shlex

    from certs.cli import main

    for line in script.replace("\\\n", " ").splitlines():
        line = line.strip()
        if line.startswith("ikev2-pki "):
            assert main(shlex.split(line)[1:]) == 0, line


def test_docs_certs_walkthrough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """docs/certs.md: the ikev2-pki lines, the MN and HA configurations as written, an
    IKE SA between them; then the revocation step makes the MN fail at the HA."""
    from ikev2.config.loader import load_config

    monkeypatch.chdir(tmp_path)
    sh = _doc_blocks("sh")
    _run_pki_lines(sh[0])
    mn_toml, ha_toml = _doc_blocks("toml")[:2]
    (tmp_path / "mn.toml").write_text(mn_toml)
    (tmp_path / "ha.toml").write_text(ha_toml)
    wall = datetime.now(UTC).timestamp()

    def run() -> Pair:
        mn = load_config(tmp_path / "mn.toml").connections[0]
        ha = load_config(tmp_path / "ha.toml").connections[0]
        pair = cert_pair(wall=wall)
        pair.connect(mn, ha)
        return pair

    pair = run()
    ia, ib = established(pair)
    assert ia.remote_id == "ha.example.org" and ib.remote_id == "user@example.org"
    _run_pki_lines(sh[1])
    pair = run()
    _, rb = failed_cleanly(pair)
    assert "was revoked" in rb and "keyCompromise" in rb
    capsys.readouterr()
