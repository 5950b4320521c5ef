"""Golden data from strongSwan charon interop logs (REQUIREMENTS 7296-52/59/60/72): the
A-side logs dump g^ir, SKEYSEED, SK_*, the signed octets, PSK AUTH and NAT-D inputs."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from ikev2.crypto import (
    compute_skeyseed,
    derive_ike_keys,
    get_encr,
    get_prf,
    natd_hash,
    psk_auth,
    signed_octets,
    verify_psk_auth,
)
from ikev2.protocol.enums import EncrId, PrfId

_DIRS = (
    Path(__file__).resolve().parents[3] / "shared" / "interop" / "captures",
    Path("/work/shared/interop/captures"),
)
CAPTURES = next((d for d in _DIRS if d.exists()), _DIRS[-1])
LOGS = ["psk-v6-charon-a.log", "cert-v4-charon-a.log"]
PSK = b"peer.sh test psk, not a secret"  # interop/README.md

_LABEL = re.compile(r"> (.+?) => (\d+) bytes @")
_ROW = re.compile(r">\s+\d+: ((?:[0-9A-F]{2} ){0,15}[0-9A-F]{2})")


def dumps(path: Path) -> list[tuple[str, bytes]]:
    """Every `label => N bytes @ addr` hex dump of a charon log, in order."""
    out: list[tuple[str, bytes]] = []
    want, label, buf = 0, "", b""
    for line in path.read_text(errors="replace").splitlines():
        if want:
            m = _ROW.search(line)
            if m:
                buf += bytes.fromhex(m.group(1).replace(" ", ""))[: want - len(buf)]
                if len(buf) == want:
                    out.append((label, buf))
                    want = 0
                continue
        m = _LABEL.search(line)
        if m:
            label, want, buf = m.group(1), int(m.group(2)), b""
            if want == 0:
                out.append((label, b""))
    return out


def first(d: list[tuple[str, bytes]], label: str, nth: int = 0) -> bytes:
    return [v for k, v in d if k == label][nth]


def nonce_of(message: bytes) -> bytes:
    """Walk the payload chain of an unencrypted IKE message to its Nonce (RFC 7296 §3.2)."""
    nxt, off = message[16], 28
    while nxt:
        length = int.from_bytes(message[off + 2 : off + 4], "big")
        if nxt == 40:
            return message[off + 4 : off + length]
        nxt, off = message[off], off + length
    raise AssertionError("no nonce")


@pytest.fixture(params=LOGS)
def log(request):
    path = CAPTURES / request.param
    if not path.exists():
        pytest.skip(f"{path} not available")
    return request.param, dumps(path)


def _exchange(d):
    """(msg1, msg2, Ni, Nr, SPIi, SPIr) recovered from the two signed-octet dumps."""
    octets_i = first(d, "octets = message + nonce + prf(Sk_px, IDx')", 0)
    octets_r = first(d, "octets = message + nonce + prf(Sk_px, IDx')", 1)
    msg1 = octets_i[: int.from_bytes(octets_i[24:28], "big")]
    msg2 = octets_r[: int.from_bytes(octets_r[24:28], "big")]
    return msg1, msg2, nonce_of(msg1), nonce_of(msg2), msg1[:8], msg2[8:16]


def test_7296_52_charon_ike_keys(log):
    _, d = log
    _, _, ni, nr, spi_i, spi_r = _exchange(d)
    prf = get_prf(PrfId.HMAC_SHA2_256)  # selected: AES_GCM_16_128/PRF_HMAC_SHA2_256/ECP_256
    encr = get_encr(EncrId.AES_GCM_16, 128)
    shared = first(d, "shared Diffie Hellman secret")
    assert compute_skeyseed(prf, ni, nr, shared) == first(d, "SKEYSEED")
    keys = derive_ike_keys(prf, encr, None, ni, nr, spi_i, spi_r, shared)
    assert keys.sk_d == first(d, "Sk_d secret")
    assert keys.sk_ei == first(d, "Sk_ei secret")
    assert keys.sk_er == first(d, "Sk_er secret")
    assert keys.sk_pi == first(d, "Sk_pi secret")
    assert keys.sk_pr == first(d, "Sk_pr secret")
    assert keys.sk_ai == keys.sk_ar == b""


def test_7296_59_charon_signed_octets(log):
    _, d = log
    msg1, msg2, ni, nr, _, _ = _exchange(d)
    prf = get_prf(PrfId.HMAC_SHA2_256)
    mine = signed_octets(msg1, nr, prf, first(d, "Sk_pi secret"), first(d, "IDx'", 0))
    assert mine == first(d, "octets = message + nonce + prf(Sk_px, IDx')", 0)
    theirs = signed_octets(msg2, ni, prf, first(d, "Sk_pr secret"), first(d, "IDx'", 1))
    assert theirs == first(d, "octets = message + nonce + prf(Sk_px, IDx')", 1)


def test_7296_60_charon_psk_auth():
    path = CAPTURES / "psk-v6-charon-a.log"
    if not path.exists():
        pytest.skip(f"{path} not available")
    d = dumps(path)
    prf = get_prf(PrfId.HMAC_SHA2_256)
    assert first(d, "secret") == PSK
    for i in (0, 1):
        octets = first(d, "octets = message + nonce + prf(Sk_px, IDx')", i)
        expected = first(d, "AUTH = prf(prf(secret, keypad), octets)", i)
        assert psk_auth(prf, PSK, octets) == expected
        assert verify_psk_auth(prf, PSK, octets, expected)


def test_7296_72_charon_natd_hashes(log):
    _, d = log
    chunks = [v for k, v in d if k == "natd_chunk"]
    hashes = [v for k, v in d if k == "natd_hash"]
    assert chunks and len(chunks) == len(hashes)
    for chunk, h in zip(chunks, hashes, strict=True):
        addr = str(ipaddress.ip_address(chunk[16:-2]))
        assert natd_hash(chunk[:8], chunk[8:16], addr, int.from_bytes(chunk[-2:], "big")) == h
