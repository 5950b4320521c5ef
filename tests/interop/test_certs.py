"""Certificate authentication against strongSwan charon, both directions (issue 8 item 4).

ikev2d ↔ charon with certificates made by `ikev2-pki` and by strongSwan's `pki`, keys
RSA-2048 (charon then fragments IKE_AUTH, RFC 7383), ECDSA P-256 and Ed25519 (RFC 8420),
over IPv4 (and IPv6 for RSA). A case passes when both sides show the IKE SA and its
CHILD_SA with the same SPIs, algorithms and identities (harness.compare_sa).

Failures (REQUIREMENTS 7296-61, 7427-04): a revoked or expired certificate, a wrong CA and
an identity that is not the certified one, detected by ikev2d and by charon, with either
as initiator: AUTHENTICATION_FAILED, and no SA left on either side.

The PKI of a case is written into a temporary directory; charon gets copies in its swanctl
directories (x509ca, x509, private, x509crl) under names starting with "t-", loaded with
`swanctl --load-all --clear` and pinned by `cacerts` / `certs` in its connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import (
    A4,
    A6,
    B4,
    B6,
    ID_A,
    ID_B,
    IN_A4,
    IN_A6,
    IN_B4,
    IN_B6,
    CharonSa,
    Ikev2d,
    Ikev2dConn,
    Peer,
    compare_sa,
)  # fmt: skip

pytestmark = [pytest.mark.root, pytest.mark.interop]

IKE = "aes128gcm16-prfsha256-ecp256"
ESP = "aes128gcm16"
KINDS = {  # name: (strongSwan pki --type/--size, ikev2-pki --type)
    "rsa2048": (["--type", "rsa", "--size", "2048"], "rsa2048"),
    "ecdsa256": (["--type", "ecdsa", "--size", "256"], "ecdsa-p256"),
    "ed25519": (["--type", "ed25519"], "ed25519"),
}
CA_DN = "C=XX, O=Example, CN=Example Test CA"


# ------------------------------------------------------------------ making PKIs
def _run(argv: list[str], *, stdin: bytes | None = None, env: dict | None = None) -> bytes:
    r = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False,
                       timeout=60)  # fmt: skip
    if r.returncode != 0:
        raise AssertionError(f"{argv} -> {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def ikev2_pki_argv() -> list[str]:
    exe = Path(sys.executable).parent / "ikev2-pki"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("ikev2-pki")
    return [found] if found else [sys.executable, "-m", "certs.cli"]


def make_ikev2_pki(d: Path, kind: str, *, ca_dn: str = CA_DN,
                   a_extra: tuple[str, ...] = (), b_extra: tuple[str, ...] = (),
                   a_id: str = ID_A, b_id: str = ID_B) -> dict[str, Path]:  # fmt: skip
    """ikev2-pki: CA, A (user@example.org) and B (gw.example.org) in d/{ca,a,b}."""
    pki = ikev2_pki_argv()
    t = KINDS[kind][1]
    _run([*pki, "ca", "--out", str(d / "ca"), "--type", t, "--dn", ca_dn])
    _run([*pki, "issue", "--ca", str(d / "ca"), "--out", str(d / "a"), "--type", t,
          "--id", a_id, "--dn", f"C=XX, O=Example, CN={a_id}", "--flag", "clientAuth",
          *a_extra])  # fmt: skip
    _run([*pki, "issue", "--ca", str(d / "ca"), "--out", str(d / "b"), "--type", t,
          "--id", b_id, "--dn", f"C=XX, O=Example, CN={b_id}", "--flag", "serverAuth",
          *b_extra])  # fmt: skip
    return {"ca": d / "ca" / "cert.pem", "a": d / "a" / "cert.pem", "a_key": d / "a" / "key.pem",
            "b": d / "b" / "cert.pem", "b_key": d / "b" / "key.pem", "dir": d}  # fmt: skip


def ikev2_pki_revoke(files: dict[str, Path], who: str) -> Path:
    pki = ikev2_pki_argv()
    ca = files["dir"] / "ca"
    _run([*pki, "revoke", "--ca", str(ca), "--cert", str(files[who]), "--reason",
          "keyCompromise"])  # fmt: skip
    _run([*pki, "crl", "--ca", str(ca)])
    return ca / "crl.pem"


def make_strongswan_pki(d: Path, kind: str) -> dict[str, Path]:
    """strongSwan's `pki`, as peer.sh does it: CA, A and B in d."""
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "strongswan.conf"
    conf.write_text("pki { load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey gmp "
                    "curve25519 sha1 sha2 }\n")  # fmt: skip
    env = {**os.environ, "STRONGSWAN_CONF": str(conf)}
    gen = ["pki", "--gen", *KINDS[kind][0], "--outform", "pem"]
    (d / "ca.key").write_bytes(_run(gen, env=env))
    (d / "ca.crt").write_bytes(_run(
        ["pki", "--self", "--ca", "--lifetime", "3650", "--in", str(d / "ca.key"), "--type",
         "priv", "--dn", CA_DN, "--outform", "pem"], env=env))  # fmt: skip
    for who, ident, flag in (("a", ID_A, "clientAuth"), ("b", ID_B, "serverAuth")):
        (d / f"{who}.key").write_bytes(_run(gen, env=env))
        pub = _run(["pki", "--pub", "--in", str(d / f"{who}.key"), "--type", "priv"], env=env)
        (d / f"{who}.crt").write_bytes(_run(
            ["pki", "--issue", "--lifetime", "365", "--cacert", str(d / "ca.crt"), "--cakey",
             str(d / "ca.key"), "--dn", f"C=XX, O=Example, CN={ident}", "--san", ident,
             "--flag", flag, "--outform", "pem"], stdin=pub, env=env))  # fmt: skip
    return {"ca": d / "ca.crt", "a": d / "a.crt", "a_key": d / "a.key", "b": d / "b.crt",
            "b_key": d / "b.key", "dir": d}  # fmt: skip


# ------------------------------------------------------------------ charon side
def charon_load(peer: Peer, inst: str, *, ca: Path, cert: Path, key: Path,
                crls: tuple[Path, ...] = (), family: str = "v4",
                peer_id: str | None = None, my_id: str | None = None) -> str:  # fmt: skip
    """Install the credentials into instance `inst` and load one connection "cert" that
    authenticates with them (charon is A: user@example.org, or B: gw.example.org)."""
    sw = peer.state / inst / "swanctl"
    for sub in ("x509ca", "x509", "private", "x509crl"):
        for old in (sw / sub).glob("t-*"):
            old.unlink()
    shutil.copy(ca, sw / "x509ca" / "t-ca.pem")
    shutil.copy(cert, sw / "x509" / "t-cert.pem")
    shutil.copy(key, sw / "private" / "t-key.pem")
    for i, crl in enumerate(crls):
        shutil.copy(crl, sw / "x509crl" / f"t-crl{i}.pem")
    a, b = (A4, B4) if family == "v4" else (A6, B6)
    if inst == "a":
        me, them, addrs = ID_A, ID_B, f"remote_addrs = {b}"
        lts, rts = f"{IN_A6}/128,{IN_A4}/32", f"{IN_B6}/128,{IN_B4}/32"
    else:
        me, them, addrs = ID_B, ID_A, f"local_addrs = {b}\n    remote_addrs = {a}"
        lts, rts = f"{IN_B6}/128,{IN_B4}/32", f"{IN_A6}/128,{IN_A4}/32"
    conf = f"""# written by tests/interop/test_certs.py
connections {{
  cert {{
    version = 2
    {addrs}
    proposals = {IKE}
    encap = yes
    mobike = yes
    fragmentation = yes
    local {{
      auth = pubkey
      certs = t-cert.pem
      id = {my_id or me}
    }}
    remote {{
      auth = pubkey
      id = {peer_id or them}
      cacerts = t-ca.pem
    }}
    children {{
      cert-net {{
        local_ts = {lts}
        remote_ts = {rts}
        esp_proposals = {ESP}
        mode = tunnel
      }}
    }}
  }}
}}
"""
    (sw / "swanctl.conf").write_text(conf)
    peer.terminate_all(inst)
    peer.swanctl(inst, "--load-all", "--clear", "--noprompt")
    return conf


# ------------------------------------------------------------------ ikev2d side
def ikev2d_conn(*, initiator: bool, cert: Path, key: Path, ca: Path,
                crls: tuple[Path, ...] = (), family: str = "v4",
                peer_id: str | None = None) -> Ikev2dConn:  # fmt: skip
    """ikev2d as A (ss-a, initiator, user@example.org) or B (ss-b, gw.example.org)."""
    a, b = (A4, B4) if family == "v4" else (A6, B6)
    if initiator:
        local, remote, me, them = a, b, ID_A, ID_B
        lts, rts = [f"{IN_A6}/128", f"{IN_A4}/32"], [f"{IN_B6}/128", f"{IN_B4}/32"]
    else:
        local, remote, me, them = b, a, ID_B, ID_A
        lts, rts = [f"{IN_B6}/128", f"{IN_B4}/32"], [f"{IN_A6}/128", f"{IN_A4}/32"]
    remote_auth: dict = {"auth": "pubkey", "cacerts": [str(ca)]}
    if crls:
        remote_auth["crls"] = [str(c) for c in crls]
    return Ikev2dConn(
        name="cert", local_addr=local, remote_addr=remote, ike_proposals=[IKE],
        esp_proposals=[ESP], local_id=me, remote_id=peer_id or them, psk="0x00",
        local_ts=lts, remote_ts=rts, initiate=initiator,
        local_auth={"auth": "pubkey", "certs": [str(cert)], "key": str(key)},
        remote_auth=remote_auth,
    )  # fmt: skip


def _charon_sa(peer: Peer, inst: str, timeout: float = 5.0) -> CharonSa | None:
    deadline = time.monotonic() + timeout
    while True:
        sas = [s for s in peer.list_sas(inst) if s.name == "cert"]
        if sas and sas[0].ike.get("state") == "ESTABLISHED" and sas[0].children:
            return sas[0]
        if time.monotonic() > deadline:
            return sas[0] if sas else None
        time.sleep(0.1)


def _initiate(peer: Peer) -> tuple[int, str]:
    r = peer.swanctl("a", "--initiate", "--ike", "cert", "--child", "cert-net", "--timeout",
                     "20", check=False, timeout=60)  # fmt: skip
    return r.returncode, r.stdout + r.stderr


def _fragmented_both_ways(log: str) -> bool:
    """charon split its IKE_AUTH message into SKF fragments and reassembled ours."""
    import re

    sent = re.search(r"splitting IKE message \(\d+ bytes\) into ([2-9]|\d\d+) fragments", log)
    return sent is not None and "reassembled fragmented IKE message" in log


def _check_established(ours: dict, theirs: CharonSa | None, peer: Peer, inst: str,
                       d: Ikev2d, *, ikev2d_initiator: bool) -> None:  # fmt: skip
    assert theirs is not None, f"charon has no SA cert\n{peer.log_tail(inst)}"
    bad = compare_sa(ours, theirs, ike_proposal=IKE, esp_proposal=ESP,
                     ikev2d_initiator=ikev2d_initiator)  # fmt: skip
    assert not bad, "\n".join(
        [*bad, f"--- charon {inst} log (tail)", peer.log_tail(inst), "--- ikev2d log (tail)",
         d.log()[-3000:]]
    )  # fmt: skip


# ------------------------------------------------------------------ acceptance
CASES = [(tool, kind, "v4") for tool in ("ikev2-pki", "strongswan-pki") for kind in KINDS]
CASES += [("ikev2-pki", "rsa2048", "v6"), ("strongswan-pki", "rsa2048", "v6")]


def _pki(tool: str, d: Path, kind: str) -> dict[str, Path]:
    return make_ikev2_pki(d, kind) if tool == "ikev2-pki" else make_strongswan_pki(d, kind)


@pytest.mark.parametrize(("tool", "kind", "family"), CASES)
def test_ikev2d_initiates_with_certificates(
    peer_b: Peer, ikev2d_runs: Callable[..., Ikev2d], tmp_path: Path, tool: str, kind: str,
    family: str,
) -> None:
    """ikev2d (A, ss-a) → charon (B, ss-b): both authenticate with certificates."""
    f = _pki(tool, tmp_path / "pki", kind)
    log_start = len(peer_b.log("b"))
    charon_load(peer_b, "b", ca=f["ca"], cert=f["b"], key=f["b_key"], family=family)
    conn = ikev2d_conn(initiator=True, cert=f["a"], key=f["a_key"], ca=f["ca"], family=family)
    d = ikev2d_runs(peer_b.sb, "ss-a", [A6, A4], [conn])
    try:
        ours = d.wait_established(timeout=20)
        _check_established(ours, _charon_sa(peer_b, "b"), peer_b, "b", d,
                           ikev2d_initiator=True)  # fmt: skip
        if kind == "rsa2048":  # RFC 7383 both ways: charon split its IKE_AUTH response
            log = peer_b.log("b")[log_start:]
            assert _fragmented_both_ways(log), log[-3000:]
    finally:
        d.stop()
        peer_b.terminate_all("b")


@pytest.mark.parametrize(("tool", "kind", "family"), CASES)
def test_charon_initiates_with_certificates(
    peer_a: Peer, ikev2d_runs: Callable[..., Ikev2d], tmp_path: Path, tool: str, kind: str,
    family: str,
) -> None:
    """charon (A, ss-a) → ikev2d (B, ss-b): both authenticate with certificates."""
    f = _pki(tool, tmp_path / "pki", kind)
    log_start = len(peer_a.log("a"))
    charon_load(peer_a, "a", ca=f["ca"], cert=f["a"], key=f["a_key"], family=family)
    conn = ikev2d_conn(initiator=False, cert=f["b"], key=f["b_key"], ca=f["ca"], family=family)
    d = ikev2d_runs(peer_a.sb, "ss-b", [B6, B4], [conn])
    try:
        d.wait_ready()
        rc, out = _initiate(peer_a)
        assert rc == 0, f"swanctl --initiate failed ({rc}):\n{out[-3000:]}\n--- ikev2d log\n" \
            + d.log()[-3000:]
        ours = d.wait_established(timeout=10)
        _check_established(ours, _charon_sa(peer_a, "a"), peer_a, "a", d,
                           ikev2d_initiator=False)  # fmt: skip
        if kind == "rsa2048":
            log = peer_a.log("a")[log_start:]
            assert _fragmented_both_ways(log), log[-3000:]
    finally:
        peer_a.terminate_all("a")
        d.stop()


# ------------------------------------------------------------------ failures
FAILURES = ["revoked", "expired", "wrong_ca", "wrong_id"]


def _failure_setup(tmp: Path, failure: str, bad: str, *,
                   charon_presents: bool) -> tuple[dict[str, Path], dict]:  # fmt: skip
    """A PKI where the certificate of `bad` ("a" or "b") fails the peer's check, and the
    knobs for the two configurations: crls (held by the verifier), the CA the verifier
    trusts, the identity the verifier expects.

    wrong_id: when charon presents the bad certificate, it is issued for another identity
    while charon keeps its configured ID (a certificate that does not carry the ID sent).
    ikev2d refuses such a configuration at load time, so when ikev2d presents, the
    verifier (charon) instead expects an identity that ikev2d's certificate does not
    carry."""
    extra = ("--not-before", "now-30d", "--not-after", "now-1d") if failure == "expired" else ()
    other_id = "mallory@example.org" if bad == "a" else "vpn.example.net"
    ids = {f"{bad}_id": other_id} if failure == "wrong_id" and charon_presents else {}
    f = make_ikev2_pki(tmp / "pki", "ecdsa256", **{f"{bad}_extra": extra}, **ids)
    knobs: dict = {"crls": (), "ca": f["ca"], "peer_id": None}
    if failure == "revoked":
        knobs["crls"] = (ikev2_pki_revoke(f, bad),)
    elif failure == "wrong_ca":
        other = make_ikev2_pki(tmp / "other", "ecdsa256", ca_dn="C=XX, O=Other, CN=Other CA")
        knobs["ca"] = other["ca"]
    elif failure == "wrong_id" and not charon_presents:
        knobs["peer_id"] = other_id
    return f, knobs


def _assert_failed_cleanly(peer: Peer, inst: str, d: Ikev2d, charon_log: str) -> None:
    # ikev2d sent or received AUTHENTICATION_FAILED (as IKE_AUTH responder, charon's
    # INFORMATIONAL after our response: "peer rejected our AUTH")
    m = d.wait_log(r"AUTHENTICATION_FAILED|peer rejected our AUTH", timeout=10)
    assert m, f"ikev2d log does not report AUTHENTICATION_FAILED:\n{d.log()[-3000:]}"
    assert "AUTH_FAILED" in charon_log or "AUTHENTICATION_FAILED" in charon_log, \
        charon_log[-3000:]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (peer.list_sas(inst) or d.state()):
        time.sleep(0.2)
    assert peer.list_sas(inst) == [], f"charon kept an SA:\n{peer.log_tail(inst)}"
    assert d.state() == [], f"ikev2d kept an SA: {d.state()}\n{d.log()[-2000:]}"


@pytest.mark.parametrize("detector", ["ikev2d", "charon"])
@pytest.mark.parametrize("failure", FAILURES)
def test_failure_ikev2d_initiator(
    peer_b: Peer, ikev2d_runs: Callable[..., Ikev2d], tmp_path: Path, failure: str,
    detector: str,
) -> None:
    """ikev2d (A) → charon (B). detector = ikev2d: charon's certificate is bad for ikev2d
    (ikev2d reports AUTHENTICATION_FAILED in an INFORMATIONAL, charon deletes); detector =
    charon: ikev2d's certificate is bad for charon (it answers AUTHENTICATION_FAILED)."""
    bad = "b" if detector == "ikev2d" else "a"
    f, k = _failure_setup(tmp_path, failure, bad, charon_presents=detector == "ikev2d")
    charon_knobs = k if detector == "charon" else {"crls": (), "ca": f["ca"], "peer_id": None}
    ours = k if detector == "ikev2d" else {"crls": (), "ca": f["ca"], "peer_id": None}
    log_start = len(peer_b.log("b"))
    charon_load(peer_b, "b", ca=charon_knobs["ca"], cert=f["b"], key=f["b_key"],
                crls=charon_knobs["crls"], peer_id=charon_knobs["peer_id"])  # fmt: skip
    conn = ikev2d_conn(initiator=True, cert=f["a"], key=f["a_key"], ca=ours["ca"],
                       crls=ours["crls"], peer_id=ours["peer_id"])  # fmt: skip
    d = ikev2d_runs(peer_b.sb, "ss-a", [A6, A4], [conn])
    try:
        d.wait_log(r"failed|AUTHENTICATION_FAILED", timeout=20)
        time.sleep(1.0)
        _assert_failed_cleanly(peer_b, "b", d, peer_b.log("b")[log_start:])
        if detector == "ikev2d":
            assert _reason_logged(d.log(), failure), d.log()[-3000:]
    finally:
        d.stop()
        peer_b.terminate_all("b")


@pytest.mark.parametrize("detector", ["ikev2d", "charon"])
@pytest.mark.parametrize("failure", FAILURES)
def test_failure_charon_initiator(
    peer_a: Peer, ikev2d_runs: Callable[..., Ikev2d], tmp_path: Path, failure: str,
    detector: str,
) -> None:
    """charon (A) → ikev2d (B). detector = ikev2d: charon's certificate is bad for ikev2d
    (it answers AUTHENTICATION_FAILED); detector = charon: ikev2d's certificate is bad."""
    bad = "a" if detector == "ikev2d" else "b"
    f, k = _failure_setup(tmp_path, failure, bad, charon_presents=detector == "ikev2d")
    charon_knobs = k if detector == "charon" else {"crls": (), "ca": f["ca"], "peer_id": None}
    ours = k if detector == "ikev2d" else {"crls": (), "ca": f["ca"], "peer_id": None}
    log_start = len(peer_a.log("a"))
    charon_load(peer_a, "a", ca=charon_knobs["ca"], cert=f["a"], key=f["a_key"],
                crls=charon_knobs["crls"], peer_id=charon_knobs["peer_id"])  # fmt: skip
    conn = ikev2d_conn(initiator=False, cert=f["b"], key=f["b_key"], ca=ours["ca"],
                       crls=ours["crls"], peer_id=ours["peer_id"])  # fmt: skip
    d = ikev2d_runs(peer_a.sb, "ss-b", [B6, B4], [conn])
    try:
        d.wait_ready()
        rc, out = _initiate(peer_a)
        assert rc != 0, f"charon established although the certificate is bad:\n{out[-2000:]}"
        time.sleep(1.0)
        _assert_failed_cleanly(peer_a, "a", d, peer_a.log("a")[log_start:])
        if detector == "ikev2d":
            assert _reason_logged(d.log(), failure), d.log()[-3000:]
    finally:
        peer_a.terminate_all("a")
        d.stop()


_REASONS = {
    "revoked": "was revoked",
    "expired": "expired at",
    "wrong_ca": "is not a trusted CA",
    "wrong_id": "does not match the certificate",
}


def _reason_logged(log: str, failure: str) -> bool:
    import re

    return re.search(_REASONS[failure], log) is not None
