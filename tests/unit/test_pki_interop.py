"""Certificates cross-checked with strongSwan's `pki` (strongswan-pki): what `pki` makes
verifies with ikev2-pki, what ikev2-pki makes verifies with `pki --verify`, CRLs both ways,
and our CERTREQ hash equals strongSwan's keyid (SHA-1 of subjectPublicKeyInfo, RFC 7296
§3.7). Marked interop: under CI=true a skip here is a failure (tests/conftest.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from certs.cli import main
from ikev2.crypto.certs import load_certificate, spki_sha1

pytestmark = pytest.mark.interop

PKI = shutil.which("pki")


@pytest.fixture(autouse=True)
def _need_pki() -> None:
    if PKI is None:
        pytest.skip("strongSwan pki not installed (apt-get install strongswan-pki)")


def pki(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert PKI is not None
    return subprocess.run([PKI, *args], input=stdin, capture_output=True, timeout=60,
                          check=False)


def pki_ok(*args: str, stdin: bytes | None = None) -> bytes:
    r = pki(*args, stdin=stdin)
    assert r.returncode == 0, f"pki {args}: {r.stderr.decode(errors='replace')}"
    return r.stdout


def ours(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out + err


@pytest.mark.parametrize(
    ("ca_type", "ee_type", "extra"),
    [
        (["--type", "ecdsa", "--size", "256"], ["--type", "ed25519"], []),
        (["--type", "rsa", "--size", "3072"], ["--type", "ecdsa", "--size", "384"], []),
        (["--type", "rsa", "--size", "2048"], ["--type", "rsa", "--size", "2048"],
         ["--rsa-padding", "pss"]),
    ],
)
def test_pki_made_certs_verify_with_ikev2_pki(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ca_type: list[str], ee_type: list[str],
    extra: list[str],
) -> None:
    d = tmp_path
    (d / "ca.key").write_bytes(pki_ok("--gen", *ca_type, "--outform", "pem"))
    (d / "ca.pem").write_bytes(pki_ok("--self", "--ca", "--in", str(d / "ca.key"), "--dn",
                                      "C=CH, O=strongSwan, CN=sw CA", *extra,
                                      "--outform", "pem"))
    (d / "ee.key").write_bytes(pki_ok("--gen", *ee_type, "--outform", "pem"))
    pub = pki_ok("--pub", "--in", str(d / "ee.key"))
    (d / "ee.der").write_bytes(pki_ok(
        "--issue", "--cacert", str(d / "ca.pem"), "--cakey", str(d / "ca.key"), "--type", "pub",
        "--dn", "C=CH, O=strongSwan, CN=moon", "--san", "moon.strongswan.org",
        "--san", "user@example.org", "--san", "192.0.2.1", "--flag", "serverAuth", *extra,
        stdin=pub))
    ee, ca = str(d / "ee.der"), str(d / "ca.pem")
    for ident in ("moon.strongswan.org", "user@example.org", "192.0.2.1",
                  "C=CH, O=strongSwan, CN=moon"):
        rc, out = ours(capsys, "verify", "--ca", ca, ee, "--id", ident)
        assert rc == 0, out
    rc, out = ours(capsys, "verify", "--ca", ca, ee, "--id", "sun.strongswan.org")
    assert rc == 1 and "does not match" in out
    rc, out = ours(capsys, "check-key", "--key", str(d / "ee.key"), "--cert", ee)
    assert rc == 0, out
    # a CRL signed by pki revokes it for us
    (d / "crl.der").write_bytes(pki_ok("--signcrl", "--cacert", ca, "--cakey", str(d / "ca.key"),
                                       "--reason", "key-compromise", "--cert", ee))
    rc, out = ours(capsys, "verify", "--ca", ca, ee, "--crl", str(d / "crl.der"))
    assert rc == 1 and "revoked" in out and "keyCompromise" in out
    # CERTREQ hash = strongSwan keyid (SHA-1 of subjectPublicKeyInfo)
    keyid = pki_ok("--keyid", "--in", ca, "--type", "x509", "--id", "spki", "--format", "hex")
    assert keyid.decode().strip().lower() == spki_sha1(load_certificate((d / "ca.pem")
                                                                        .read_bytes())).hex()


@pytest.mark.parametrize(("ca_type", "ee_type"), [("ecdsa-p256", "ed25519"),
                                                  ("rsa2048", "ecdsa-p384"),
                                                  ("ecdsa-p384", "rsa3072")])
def test_ikev2_pki_certs_verify_with_pki(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    ca_type: str, ee_type: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for argv in (
        ["ca", "--out", "ca", "--type", ca_type, "--dn", "C=DE, O=Testbed, CN=Testbed CA"],
        ["intermediate", "--ca", "ca", "--out", "sub", "--type", ca_type, "--dn",
         "C=DE, O=Testbed, CN=Sub CA"],
        ["issue", "--ca", "sub", "--out", "mn", "--type", ee_type, "--id", "user@example.org",
         "--flag", "clientAuth"],
        ["issue", "--ca", "sub", "--out", "ha", "--type", ee_type, "--id", "ha.example.org",
         "--flag", "serverAuth", "--flag", "ikeIntermediate"],
    ):
        rc, out = ours(capsys, *argv)
        assert rc == 0, out
    for ee in ("mn/cert.pem", "ha/cert.pem"):
        r = pki("--verify", "--in", ee, "--cacert", "sub/cert.pem", "--cacert", "ca/cert.pem")
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
        assert b"certificate trusted" in r.stdout
    printed = pki_ok("--print", "--in", "ha/cert.pem").decode()
    assert "ha.example.org" in printed and "serverAuth" in printed
    assert "ikeIntermediate" in printed
    # our CRL revokes mn for pki
    for argv in (["revoke", "--ca", "sub", "--cert", "mn/cert.pem", "--reason", "keyCompromise"],
                 ["crl", "--ca", "sub"]):
        rc, out = ours(capsys, *argv)
        assert rc == 0, out
    r = pki("--verify", "--in", "mn/cert.pem", "--cacert", "sub/cert.pem", "--cacert",
            "ca/cert.pem", "--crl", "sub/crl.pem")
    assert r.returncode != 0 and b"revoked" in r.stdout + r.stderr, r.stdout.decode()
    r = pki("--verify", "--in", "ha/cert.pem", "--cacert", "sub/cert.pem", "--cacert",
            "ca/cert.pem", "--crl", "sub/crl.pem")
    assert r.returncode == 0, r.stdout.decode()
    crl = pki_ok("--print", "--type", "crl", "--in", "sub/crl.pem").decode()
    assert "1 revoked certificate" in crl and "key compromise" in crl
