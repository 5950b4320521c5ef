"""The ikev2-pki command (certs.cli.main) in temporary directories: every subcommand, the
testbed walkthrough of docs/pki.md, and bad input (exit 1 with a one-line reason, exit 2
for usage, never a traceback)."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.cli import main
from ikev2.crypto.certs import load_certificate, load_certificates, load_crl, parse_dn


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        rc = main(list(argv))
        out, err = self.capsys.readouterr()
        assert "Traceback" not in err and "Traceback" not in out
        return rc, out, err

    def ok(self, *argv: str) -> str:
        rc, out, err = self(*argv)
        assert rc == 0, f"{argv}: rc={rc} err={err}"
        return out


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Cli:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    return Cli(capsys)


def _cert(path: str) -> x509.Certificate:
    return load_certificate(Path(path).read_bytes())


# -- the walkthrough ----------------------------------------------------------------------
def test_testbed_walkthrough(cli: Cli) -> None:
    """docs/pki.md in one go: CA, intermediate, MN (user@example.org), HA (FQDN), CRL."""
    cli.ok("ca", "--out", "ca", "--type", "ecdsa-p256", "--dn", "C=DE, O=Testbed, CN=Testbed CA")
    cli.ok("intermediate", "--ca", "ca", "--out", "sub", "--dn", "C=DE, O=Testbed, CN=Sub CA",
           "--pathlen", "0")
    out = cli.ok("issue", "--ca", "sub", "--out", "mn", "--id", "user@example.org",
                 "--flag", "clientAuth")
    assert "user@example.org" in out
    cli.ok("issue", "--ca", "sub", "--out", "ha", "--id", "ha.example.org", "--id", "2001:db8::1",
           "--flag", "serverAuth", "--flag", "ikeIntermediate", "--type", "rsa2048")
    for f in ("mn/cert.pem", "mn/key.pem", "mn/chain.pem", "mn/ca.pem", "sub/root.pem",
              "sub/chain.pem", "ca/index.json", "sub/index.json"):
        assert Path(f).is_file(), f
    assert os.stat("mn/key.pem").st_mode & 0o777 == 0o600
    assert len(load_certificates(Path("mn/chain.pem").read_bytes())) == 2
    assert _cert("mn/ca.pem") == _cert("ca/cert.pem")

    assert "OK: CN=user@example.org <- C=DE, O=Testbed, CN=Sub CA <- C=DE, O=Testbed, CN=Testbed " \
           "CA" in cli.ok("verify", "--ca", "ca", "mn/chain.pem", "--id", "user@example.org")
    cli.ok("verify", "--ca", "ca/cert.pem", "--chain", "sub/cert.pem", "ha/cert.pem",
           "--id", "ha.example.org")
    cli.ok("verify", "--ca", "ca", "ha/chain.pem", "--id", "2001:db8::1")
    cli.ok("crl", "--ca", "sub")
    cli.ok("verify", "--ca", "ca", "mn/chain.pem", "--crl", "sub/crl.pem")

    cli.ok("revoke", "--ca", "sub", "--cert", "mn/cert.pem", "--reason", "keyCompromise")
    out = cli.ok("crl", "--ca", "sub", "--out", "pub/sub.crl")
    assert "CRL 2" in out and "1 revoked" in out
    rc, out, _ = cli("verify", "--ca", "ca", "mn/chain.pem", "--crl", "pub/sub.crl")
    assert rc == 1 and "FAILED" in out and "revoked" in out and "keyCompromise" in out
    cli.ok("verify", "--ca", "ca", "ha/chain.pem", "--crl", "pub/sub.crl")

    listing = cli.ok("list", "--ca", "sub")
    assert "revoked" in listing and "CN=ha.example.org" in listing
    data = json.loads(cli.ok("list", "--ca", "sub", "--json"))
    assert {r["status"] for r in data["issued"]} == {"valid", "revoked"}
    assert json.loads(cli.ok("list", "--ca", "ca", "--json"))["issued"][0]["ca"] is True


# -- ca / key -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "desc", "sig"),
    [
        ("rsa2048", "RSA 2048", "sha256WithRSAEncryption"),
        ("rsa3072", "RSA 3072", "sha256WithRSAEncryption"),
        ("rsa4096", "RSA 4096", "sha256WithRSAEncryption"),
        ("ecdsa-p256", "ECDSA P-256", "ecdsa-with-SHA256"),
        ("ecdsa-p384", "ECDSA P-384", "ecdsa-with-SHA384"),
        ("ecdsa-p521", "ECDSA P-521", "ecdsa-with-SHA512"),
        ("ed25519", "Ed25519", "ed25519"),
        ("ed448", "Ed448", "ed448"),
    ],
)
def test_ca_every_key_type(cli: Cli, kind: str, desc: str, sig: str) -> None:
    cli.ok("ca", "--out", "ca", "--type", kind, "--dn", "CN=CA", "--lifetime", "10")
    d = json.loads(cli.ok("show", "--json", "ca/cert.pem"))[0]
    assert (d["public_key"], d["signature_algorithm"], d["ca"], d["self_signed"]) == (
        desc, sig, True, True)
    assert d["key_usage"] == ["digitalSignature", "keyCertSign", "cRLSign"]
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "x.example.org")
    cli.ok("verify", "--ca", "ca", "ee/cert.pem", "--id", "x.example.org")


def test_ca_rsa_pss_and_digest(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--type", "rsa2048", "--dn", "CN=CA", "--rsa-pss",
           "--digest", "sha384")
    c = _cert("ca/cert.pem")
    assert c.signature_algorithm_oid.dotted_string == "1.2.840.113549.1.1.10"
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "a@b.example", "--rsa-pss")
    cli.ok("verify", "--ca", "ca", "ee/cert.pem")


def test_ca_lifetime_pathlen_serial(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA", "--not-before", "2030-01-01",
           "--not-after", "2031-01-01T00:00:00Z", "--pathlen", "1", "--serial", "0a:bc")
    d = json.loads(cli.ok("show", "--json", "ca"))[0]
    assert (d["not_before"], d["not_after"]) == ("2030-01-01T00:00:00Z", "2031-01-01T00:00:00Z")
    assert (d["path_length"], d["serial"]) == (1, "abc")


def test_key_command(cli: Cli) -> None:
    cli.ok("key", "--type", "ed25519", "--out", "k.pem")
    assert "Ed25519" in cli.ok("show", "k.pem")
    cli.ok("key", "--type", "ecdsa-p384", "--out", "k.der", "--outform", "der")
    assert json.loads(cli.ok("show", "--json", "k.der"))[0]["algorithm"] == "ECDSA P-384"
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA", "--key", "k.pem")
    assert not Path("ca/key.pem").exists()  # the given key stays where it is
    shutil.copy("k.pem", "ca/key.pem")
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--key", "k.der", "--id", "k@example.org")
    assert not Path("ee/key.pem").exists()
    cli.ok("check-key", "--key", "k.der", "--cert", "ee/cert.pem")


def test_issue_for_a_public_key(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    k = ec.generate_private_key(ec.SECP256R1())
    Path("pub.pem").write_bytes(k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--key", "pub.pem", "--id", "p.example.org")
    assert _cert("ee/cert.pem").public_key() == k.public_key()
    cli.ok("check-key", "--key", "pub.pem", "--cert", "ee/cert.pem")


# -- issue: every IKE ID type, flags, usages ----------------------------------------------
def test_issue_every_id_type(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "user@example.org",
           "--id", "mn.example.org", "--id", "192.0.2.10", "--id", "2001:db8::10",
           "--id", "C=DE, O=Testbed, CN=mn", "--san", "dns:alias.example.org",
           "--flag", "serverAuth", "--flag", "clientAuth", "--flag", "ikeIntermediate",
           "--flag", "ipsecIKE", "--crl-uri", "http://crl.example.org/ca.crl")
    d = json.loads(cli.ok("show", "--json", "ee/cert.pem"))[0]
    assert d["subject"] == "C=DE, O=Testbed, CN=mn"
    assert d["subject_alt_names"] == [
        {"type": "rfc822Name", "value": "user@example.org"},
        {"type": "dNSName", "value": "mn.example.org"},
        {"type": "iPAddress", "value": "192.0.2.10"},
        {"type": "iPAddress", "value": "2001:db8::10"},
        {"type": "dNSName", "value": "alias.example.org"},
    ]
    assert d["extended_key_usage"] == ["serverAuth", "clientAuth", "ikeIntermediate", "ipsecIKE"]
    assert d["key_usage"] == ["digitalSignature"]
    assert d["crl_uris"] == ["http://crl.example.org/ca.crl"]
    for ident in ("user@example.org", "mn.example.org", "192.0.2.10", "2001:db8::10",
                  "C=DE, O=Testbed, CN=mn", "dn:C=DE,O=Testbed,CN=mn"):
        cli.ok("verify", "--ca", "ca", "ee/cert.pem", "--id", ident)
    for ident in ("bob@example.org", "ha.example.org", "192.0.2.11", "2001:db8::11",
                  "C=DE, O=Testbed, CN=ha"):
        rc, out, _ = cli("verify", "--ca", "ca", "ee/cert.pem", "--id", ident)
        assert rc == 1 and "does not match" in out, ident


def test_issue_default_subject_and_key_usage(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "gw.example.org",
           "--key-usage", "keyEncipherment", "--lifetime", "30")
    d = json.loads(cli.ok("show", "--json", "ee/cert.pem"))[0]
    assert d["subject"] == "CN=gw.example.org" and d["key_usage"] == ["keyEncipherment"]
    nb = datetime.fromisoformat(d["not_before"])
    na = datetime.fromisoformat(d["not_after"])
    assert timedelta(days=30) <= na - nb <= timedelta(days=30, minutes=6)
    rc, out, _ = cli("verify", "--ca", "ca", "ee/cert.pem")
    assert rc == 1 and "keyUsage lacks digitalSignature" in out


def test_verify_time_travel(cli: Cli) -> None:
    """verify --at: expired and not yet valid, exit 1 with the reason."""
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "t.example.org", "--lifetime", "10")
    rc, out, _ = cli("verify", "--ca", "ca", "ee/cert.pem", "--at", "now+11d")
    assert rc == 1 and "certificate CN=t.example.org expired at" in out
    rc, out, _ = cli("verify", "--ca", "ca", "ee/cert.pem", "--at=-1d")
    assert rc == 1 and "is not valid before" in out
    data = json.loads(cli("verify", "--ca", "ca", "ee/cert.pem", "--at", "now+11d", "--json")[1])
    assert data["valid"] is False and data["error"] == "CertificateExpired"
    assert json.loads(cli.ok("verify", "--ca", "ca", "ee/cert.pem", "--json"))["valid"] is True


def test_verify_wrong_ca_and_missing_intermediate(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("ca", "--out", "other", "--dn", "CN=Other")
    cli.ok("intermediate", "--ca", "ca", "--out", "sub", "--dn", "CN=Sub")
    cli.ok("issue", "--ca", "sub", "--out", "ee", "--id", "w.example.org")
    rc, out, _ = cli("verify", "--ca", "other", "ee/chain.pem")
    assert rc == 1 and "issuer CN=CA of CN=Sub is not a trusted CA" in out
    rc, out, _ = cli("verify", "--ca", "ca", "ee/cert.pem")
    assert rc == 1 and "no intermediate certificate" in out
    cli.ok("verify", "--ca", "ca", "--ca", "other", "ee/chain.pem")
    cli.ok("verify", "--ca", "sub", "ee/cert.pem")  # an intermediate may be the anchor


def test_verify_path_too_long(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA", "--pathlen", "0")
    cli.ok("intermediate", "--ca", "ca", "--out", "sub", "--dn", "CN=Sub")
    cli.ok("issue", "--ca", "sub", "--out", "ee", "--id", "p.example.org")
    rc, out, _ = cli("verify", "--ca", "ca", "ee/chain.pem")
    assert rc == 1 and "pathLenConstraint" in out


def test_verify_require_crl(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "c.example.org")
    rc, out, _ = cli("verify", "--ca", "ca", "ee/cert.pem", "--require-crl")
    assert rc == 1 and "no CRL from CN=CA" in out
    cli.ok("crl", "--ca", "ca", "--outform", "der")
    assert Path("ca/crl.der").exists()
    cli.ok("verify", "--ca", "ca", "ee/cert.pem", "--require-crl", "--crl", "ca/crl.der")


def test_verify_chain_loop(cli: Cli) -> None:
    """Two CAs that certify each other: exit 1, 'certificate loop'."""
    ka, kb, kr = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    now = datetime.now(UTC)

    def make(subject: str, issuer: str, key: object, signer: object, ca: bool = True) -> bytes:
        c = (x509.CertificateBuilder().subject_name(parse_dn(subject))
             .issuer_name(parse_dn(issuer)).public_key(key.public_key())  # type: ignore[attr-defined]
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .sign(signer, hashes.SHA256()))  # type: ignore[arg-type]
        return c.public_bytes(serialization.Encoding.PEM)

    Path("loop.pem").write_bytes(make("CN=A", "CN=B", ka, kb) + make("CN=B", "CN=A", kb, ka))
    Path("ee.pem").write_bytes(make("CN=ee", "CN=A", ec.generate_private_key(ec.SECP256R1()), ka,
                                    ca=False))
    Path("root.pem").write_bytes(make("CN=Root", "CN=Root", kr, kr))
    rc, out, _ = cli("verify", "--ca", "root.pem", "--chain", "loop.pem", "ee.pem")
    assert rc == 1 and "certificate loop: CN=ee <- CN=A <- CN=B <- CN=A" in out


# -- revoke / crl / list ------------------------------------------------------------------
def test_revoke_by_serial_and_idempotent(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "r.example.org", "--serial", "1234")
    out = cli.ok("revoke", "--ca", "ca", "--serial", "1234", "--reason", "superseded",
                 "--at", "2020-02-02")
    assert "revoked serial 1234" in out and "crl --ca ca" in out
    assert "already revoked" in cli.ok("revoke", "--ca", "ca", "--cert", "ee/cert.pem")
    cli.ok("crl", "--ca", "ca", "--lifetime", "2")
    d = json.loads(cli.ok("show", "--json", "ca/crl.pem"))[0]
    assert d["revoked"] == [{"serial": "1234", "date": "2020-02-02T00:00:00Z",
                             "reason": "superseded"}]
    assert d["crl_number"] == 1 and d["status"] == "current"
    crl = load_crl(Path("ca/crl.pem").read_bytes())
    assert crl.is_signature_valid(_cert("ca/cert.pem").public_key())  # type: ignore[arg-type]
    text = cli.ok("show", "ca/crl.pem")
    assert "serial 1234 at 2020-02-02T00:00:00Z (superseded)" in text


def test_revoke_cert_of_another_ca(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("ca", "--out", "other", "--dn", "CN=CA")
    cli.ok("issue", "--ca", "other", "--out", "ee", "--id", "o.example.org")
    rc, _, err = cli("revoke", "--ca", "ca", "--cert", "ee/cert.pem")
    assert rc == 1 and "ee/cert.pem: not issued by the CA in ca" in err


def test_expired_crl_is_reported(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "e.example.org")
    cli.ok("crl", "--ca", "ca", "--this-update", "now-3d", "--next-update", "now-1d")
    rc, out, _ = cli("verify", "--ca", "ca", "ee/cert.pem", "--crl", "ca/crl.pem")
    assert rc == 1 and "CRL from CN=CA expired at" in out
    assert "expired" in cli.ok("show", "ca/crl.pem")


# -- PEM / DER ----------------------------------------------------------------------------
def test_der_everywhere(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA", "--outform", "der")
    assert Path("ca/cert.der").exists() and Path("ca/key.der").exists()
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "d.example.org", "--outform", "der")
    assert Path("ee/cert.der").read_bytes()[0] == 0x30
    cli.ok("verify", "--ca", "ca/cert.der", "ee/cert.der", "--id", "d.example.org")
    cli.ok("check-key", "--key", "ee/key.der", "--cert", "ee/cert.der")
    cli.ok("convert", "--in", "ee/cert.der", "--out", "ee.pem", "--outform", "pem")
    cli.ok("convert", "--in", "ee.pem", "--out", "ee2.der", "--outform", "der")
    assert Path("ee2.der").read_bytes() == Path("ee/cert.der").read_bytes()
    cli.ok("convert", "--in", "ee/key.der", "--out", "key.pem", "--outform", "pem")
    assert os.stat("key.pem").st_mode & 0o777 == 0o600
    cli.ok("check-key", "--key", "key.pem", "--cert", "ee.pem")
    cli.ok("crl", "--ca", "ca", "--outform", "der")
    cli.ok("convert", "--in", "ca/crl.der", "--out", "crl.pem", "--outform", "pem")
    assert b"BEGIN X509 CRL" in Path("crl.pem").read_bytes()
    assert "ee/chain.pem" and len(load_certificates(Path("ee/chain.pem").read_bytes())) == 1
    rc, _, err = cli("convert", "--in", "ee/chain.pem", "--out", "x.der", "--outform", "der")
    assert rc == 0 and not err  # a one-certificate chain converts fine
    cli.ok("show", "ca/cert.der", "ee/key.der", "ca/crl.der")


def test_convert_many_certs_to_der(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("intermediate", "--ca", "ca", "--out", "sub", "--dn", "CN=Sub")
    cli.ok("issue", "--ca", "sub", "--out", "ee", "--id", "m.example.org")
    rc, _, err = cli("convert", "--in", "ee/chain.pem", "--out", "x.der", "--outform", "der")
    assert rc == 1 and "holds 2 certificates; DER holds one" in err


# -- passphrases --------------------------------------------------------------------------
def test_encrypted_ca_key(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("pass.txt").write_text("correct horse\n")
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA", "--passphrase-file", "pass.txt")
    assert b"ENCRYPTED" in Path("ca/key.pem").read_bytes()
    rc, _, err = cli("issue", "--ca", "ca", "--out", "ee", "--id", "p.example.org")
    assert rc == 1 and "ca/key.pem: key is encrypted; a passphrase is needed" in err
    Path("wrong.txt").write_text("battery staple\n")
    rc, _, err = cli("issue", "--ca", "ca", "--out", "ee", "--id", "p.example.org",
                     "--ca-passphrase-file", "wrong.txt")
    assert rc == 1 and err.strip() == "ikev2-pki: ca/key.pem: wrong passphrase"
    monkeypatch.setenv("CA_PASS", "correct horse")
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "p.example.org",
           "--ca-passphrase-env", "CA_PASS")
    cli.ok("crl", "--ca", "ca", "--ca-passphrase-env", "CA_PASS")
    rc, _, err = cli("crl", "--ca", "ca", "--ca-passphrase-env", "NOPE_NOT_SET")
    assert rc == 1 and "NOPE_NOT_SET is not set" in err
    cli.ok("show", "ca/key.pem", "--passphrase-file", "pass.txt")
    rc, _, err = cli("show", "ca/key.pem")
    assert rc == 1 and "passphrase is needed" in err


# -- check-key ----------------------------------------------------------------------------
def test_check_key_mismatch(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("issue", "--ca", "ca", "--out", "a", "--id", "a.example.org")
    cli.ok("issue", "--ca", "ca", "--out", "b", "--id", "b.example.org", "--type", "ed25519")
    assert "matches" in cli.ok("check-key", "--key", "a/key.pem", "--cert", "a/cert.pem")
    rc, out, _ = cli("check-key", "--key", "b/key.pem", "--cert", "a/cert.pem")
    assert rc == 1 and "does NOT match" in out and "Ed25519" in out


def test_ca_key_not_matching_its_certificate(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("key", "--out", "ca/key.pem", "--force")
    rc, _, err = cli("issue", "--ca", "ca", "--out", "ee", "--id", "k.example.org")
    assert rc == 1 and "ca/key.pem: does not match the CA certificate" in err


# -- bad input ----------------------------------------------------------------------------
def test_corrupt_pem_and_der(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("issue", "--ca", "ca", "--out", "mn", "--id", "user@example.org")
    pem = Path("mn/cert.pem").read_text()
    Path("mn/cert.pem").write_text(pem[:60] + "!!!" + pem[63:])
    rc, _, err = cli("verify", "--ca", "ca", "mn/cert.pem")
    assert rc == 1 and err.strip() == "ikev2-pki: mn/cert.pem: not a PEM or DER certificate"
    Path("bad.der").write_bytes(_cert("ca/cert.pem").public_bytes(serialization.Encoding.DER)[:-9])
    rc, _, err = cli("show", "bad.der")
    assert rc == 1 and "bad.der: not a PEM or DER certificate, CRL or key" in err
    Path("ca/cert.pem").write_bytes(b"garbage")
    rc, _, err = cli("issue", "--ca", "ca", "--out", "x", "--id", "x.example.org")
    assert rc == 1 and "ca/cert.pem: not a PEM or DER certificate" in err
    Path("crl.pem").write_text("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
    rc, _, err = cli("verify", "--ca", "mn/ca.pem", "--crl", "crl.pem", "mn/chain.pem")
    assert rc == 1 and "crl.pem: not a PEM or DER CRL" in err
    Path("key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    rc, _, err = cli("check-key", "--key", "key.pem", "--cert", "mn/ca.pem")
    assert rc == 1 and "key.pem: not a PEM or DER private key" in err


def test_corrupt_index(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    Path("ca/index.json").write_text("{not json")
    rc, _, err = cli("list", "--ca", "ca")
    assert rc == 1 and "ca/index.json: corrupt CA index" in err


def test_existing_output_needs_force(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    before = Path("ca/cert.pem").read_bytes()
    rc, _, err = cli("ca", "--out", "ca", "--dn", "CN=CA2")
    assert rc == 1 and "ca/cert.pem: exists (use --force to overwrite)" in err
    assert Path("ca/cert.pem").read_bytes() == before
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "f.example.org")
    before = Path("ee/cert.pem").read_bytes()
    rc, _, err = cli("issue", "--ca", "ca", "--out", "ee", "--id", "f.example.org")
    assert rc == 1 and "exists" in err and Path("ee/cert.pem").read_bytes() == before
    cli.ok("issue", "--ca", "ca", "--out", "ee", "--id", "f.example.org", "--force")
    assert Path("ee/cert.pem").read_bytes() != before
    cli.ok("key", "--out", "k.pem")
    rc, _, err = cli("key", "--out", "k.pem")
    assert rc == 1 and "k.pem: exists" in err
    cli.ok("crl", "--ca", "ca", "--out", "c.pem")
    rc, _, err = cli("crl", "--ca", "ca", "--out", "c.pem")
    assert rc == 1 and "c.pem: exists" in err
    cli.ok("crl", "--ca", "ca")  # the CA's own crl.pem is state: always rewritten


def test_path_problems(cli: Cli) -> None:
    rc, _, err = cli("issue", "--ca", "nowhere", "--out", "ee", "--id", "x.example.org")
    assert rc == 1 and "nowhere: no such CA directory" in err
    Path("file").write_text("x")
    rc, _, err = cli("ca", "--out", "file", "--dn", "CN=CA")
    assert rc == 1 and "file: not a directory" in err
    rc, _, err = cli("issue", "--ca", "file", "--out", "ee", "--id", "x.example.org")
    assert rc == 1 and "file: not a CA directory" in err
    rc, _, err = cli("verify", "--ca", "missing.pem", "file")
    assert rc == 1 and "missing.pem: no such file" in err
    rc, _, err = cli("show", "nothere.pem")
    assert rc == 1 and "nothere.pem: no such file" in err
    Path("empty").mkdir()
    rc, _, err = cli("show", "empty")
    assert rc == 1 and "empty: a directory without cert.pem" in err
    rc, _, err = cli("issue", "--ca", "empty", "--out", "ee", "--id", "x.example.org")
    assert rc == 1 and "empty: no cert.pem in CA directory" in err
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    Path("ca/key.pem").unlink()
    rc, _, err = cli("crl", "--ca", "ca")
    assert rc == 1 and "ca: no key.pem in CA directory" in err
    if os.geteuid() != 0:  # root ignores permissions
        Path("ro").mkdir(mode=0o500)
        rc, _, err = cli("key", "--out", "ro/k.pem")
        assert rc == 1 and "ro/k.pem" in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["ca", "--out", "ca"],  # no --dn
        ["ca", "--out", "ca", "--dn", "XX=1"],
        ["ca", "--out", "ca", "--dn", "CN=x", "--type", "rsa1024"],
        ["ca", "--out", "ca", "--dn", "CN=x", "--lifetime", "-3"],
        ["ca", "--out", "ca", "--dn", "CN=x", "--not-before", "yesterday-ish"],
        ["ca", "--out", "ca", "--dn", "CN=x", "--serial", "xyz"],
        ["ca", "--out", "ca", "--dn", "CN=x", "--pathlen", "-1"],
        ["issue", "--ca", "ca", "--out", "ee", "--id", "not an id!"],
        ["issue", "--ca", "ca", "--out", "ee", "--id", "ip:999.1.1.1"],
        ["issue", "--ca", "ca", "--out", "ee", "--id", "x.org", "--flag", "codeSigning"],
        ["issue", "--ca", "ca", "--out", "ee", "--id", "x.org", "--key-usage", "everything"],
        ["verify", "cert.pem"],  # no --ca
        ["revoke", "--ca", "ca", "--reason", "boredom"],
        ["show"],
        ["key", "--out", "k", "--passphrase-file", "a", "--passphrase-env", "B"],
    ],
)
def test_usage_errors_exit_2(cli: Cli, argv: list[str]) -> None:
    rc, _, err = cli(*argv)
    assert rc == 2 and "error" in err


def test_usage_errors_after_parsing(cli: Cli) -> None:
    cli.ok("ca", "--out", "ca", "--dn", "CN=CA")
    cli.ok("key", "--out", "k.pem")
    for argv, msg in [
        (["revoke", "--ca", "ca"], "exactly one of --serial or --cert"),
        (["issue", "--ca", "ca", "--out", "ee"], "give at least one --id"),
        (["issue", "--ca", "ca", "--out", "ee", "--id", "a.org", "--type", "ed25519",
          "--key", "k.pem"], "--type or --key"),
        (["issue", "--ca", "ca", "--out", "ee", "--dn", "CN=a", "--id", "CN=b"], "differs"),
        (["issue", "--ca", "ca", "--out", "ee", "--id", "a.org", "--not-before", "2030-01-02",
          "--not-after", "2030-01-01"], "is not after"),
    ]:
        rc, _, err = cli(*argv)
        assert rc == 2 and msg in err, argv


def test_help_exits_0(cli: Cli) -> None:
    rc, out, _ = cli("--help")
    assert rc == 0 and "issue" in out and "Exit codes" in out
    rc, out, _ = cli("issue", "--help")
    assert rc == 0 and "--id" in out


def test_console_script_entry_point() -> None:
    """pyproject maps ikev2-pki = certs.cli:main."""
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'ikev2-pki = "certs.cli:main"' in text
