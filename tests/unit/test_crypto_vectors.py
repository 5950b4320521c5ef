"""Every known-answer vector of vectors.md run through ikev2.crypto's own API
(REQUIREMENTS 7296-52/54, 5903-01..03, 8031-01/03, 7634-01/03, RFC 4868, RFC 3566/4434)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ikev2.crypto import (
    compute_skeyseed,
    derive_ike_keys,
    get_encr,
    get_group,
    get_integ,
    get_prf,
    make_sk_crypter,
    prf_plus,
)
from ikev2.protocol.enums import EncrId, IntegId, PrfId

_CANDIDATES = (
    Path(__file__).resolve().parents[3] / "shared" / "rfc" / "vectors.md",
    Path("/work/shared/rfc/vectors.md"),
)
VECTORS_MD = next((p for p in _CANDIDATES if p.exists()), _CANDIDATES[-1])


def _parse(path: Path) -> list[dict[str, str]]:
    """Same block grammar as verify_vectors.py: `key: value`, 4-space continuation lines."""
    out = []
    text = path.read_text(encoding="utf-8")
    for body in re.findall(r"```vector\n(.*?)```", text, re.S):
        fields: dict[str, str] = {}
        key = None
        for line in body.splitlines():
            if line.startswith("    ") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, val = line.split(":", 1)
                key = key.strip()
                fields[key] = val.strip()
        out.append(fields)
    return out


def hx(s: str) -> bytes:
    return b"" if s == "(empty)" else bytes.fromhex(re.sub(r"\s", "", s))


VECTORS = _parse(VECTORS_MD) if VECTORS_MD.exists() else []
OWNED_KINDS = {
    "ecdh-ecp",
    "x25519",
    "hmac",
    "hmac-trunc",
    "xcbc",
    "xcbc-prf",
    "chacha20poly1305",
    "ikev2-skeyseed",
    "ikev2-prfplus",
}
# der-algid (RFC 7427 AlgorithmIdentifier blobs) belongs to signature authentication.


def _of(*kinds: str) -> list:
    return [pytest.param(v, id=v["id"]) for v in VECTORS if v["kind"] in kinds]


def fixed_random(*chunks: bytes):
    """An injected RNG that hands out the given private values, left-padded to size."""
    queue = list(chunks)

    def rand(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) <= n
        return chunk.rjust(n, b"\x00")

    return rand


def test_vectors_file_present_and_all_kinds_covered():
    assert VECTORS, f"vectors.md not found at {VECTORS_MD}"
    kinds = {v["kind"] for v in VECTORS}
    assert kinds - OWNED_KINDS == {"der-algid"}
    assert len([v for v in VECTORS if v["kind"] in OWNED_KINDS]) >= 49


@pytest.mark.parametrize("v", _of("ecdh-ecp"))
def test_5903_03_ecp_known_answer(v):
    group = get_group(int(v["group"]))
    kp_i = group.generate(fixed_random(hx(v["i"])))
    kp_r = group.generate(fixed_random(hx(v["r"])))
    # 5903-01: KE data = x | y fixed width, no 0x04; = the KE payload after its 8-octet head
    assert kp_i.public == hx(v["gix"]) + hx(v["giy"]) == hx(v["kei"])[8:]
    assert kp_r.public == hx(v["grx"]) + hx(v["gry"]) == hx(v["ker"])[8:]
    assert len(kp_i.public) == group.public_size == len(hx(v["kei"])) - 8
    # 5903-02: g^ir is the x-coordinate only
    assert kp_i.shared_secret(kp_r.public) == hx(v["girx"])
    assert kp_r.shared_secret(kp_i.public) == hx(v["girx"])


@pytest.mark.parametrize("v", _of("x25519"))
def test_8031_03_x25519_known_answer(v):
    group = get_group(31)
    kp_i = group.generate(fixed_random(hx(v["priv_i"])))
    kp_r = group.generate(fixed_random(hx(v["priv_r"])))
    assert kp_i.public == hx(v["pub_i"]) and kp_r.public == hx(v["pub_r"])
    assert kp_i.shared_secret(kp_r.public) == hx(v["shared"])
    assert kp_r.shared_secret(kp_i.public) == hx(v["shared"])


@pytest.mark.parametrize("v", _of("hmac"))
def test_4868_prf_hmac_sha2(v):
    prf = get_prf(PrfId[v["alg"].removeprefix("PRF_")])
    out = prf(hx(v["key"]), hx(v["data"]))
    assert out == hx(v["out"])
    assert prf.output_size == prf.key_size == len(out)


@pytest.mark.parametrize("v", _of("hmac-trunc"))
def test_4868_truncated_integrity(v):
    integ = get_integ(IntegId[v["alg"].removeprefix("AUTH_")])
    key, data, exp = hx(v["key"]), hx(v["data"]), hx(v["out"])
    assert integ.icv_size == len(exp)
    assert integ.mac(key, data) == exp
    if len(key) == integ.key_size:
        assert integ.prepare(key)(data) == exp


def _xcbc_data(v: dict[str, str]) -> bytes:
    return bytes(int(v["data_zero_octets"])) if "data_zero_octets" in v else hx(v["data"])


@pytest.mark.parametrize("v", _of("xcbc"))
def test_3566_aes_xcbc_mac_96_and_prf(v):
    key, data = hx(v["key"]), _xcbc_data(v)
    integ = get_integ(IntegId.AES_XCBC_96)
    assert integ.mac(key, data) == hx(v["mac96"])
    prepared = integ.prepare(key)
    assert prepared(data) == hx(v["mac96"]) and prepared(data) == hx(v["mac96"])
    assert get_prf(PrfId.AES128_XCBC)(key, data) == hx(v["prf128"])


@pytest.mark.parametrize("v", _of("xcbc-prf"))
def test_4434_aes_xcbc_prf_key_lengths(v):
    assert get_prf(PrfId.AES128_XCBC)(hx(v["key"]), _xcbc_data(v)) == hx(v["prf128"])


@pytest.mark.parametrize("v", _of("chacha20poly1305"))
def test_7634_01_chacha20poly1305_byte_exact(v):
    encr = get_encr(EncrId.CHACHA20_POLY1305, None)
    assert encr.key_size == 36 and encr.salt_size == 4 and encr.iv_size == 8
    crypter = make_sk_crypter(encr, hx(v["key"]) + hx(v["salt"]), None, b"")
    sealed = crypter.seal(hx(v["aad"]), hx(v["iv"]), hx(v["plain"]))
    assert sealed == hx(v["cipher"]) + hx(v["tag"])
    assert crypter.open(hx(v["aad"]), hx(v["iv"]), sealed) == hx(v["plain"])


@pytest.mark.parametrize("v", _of("ikev2-skeyseed"))
def test_7296_52_skeyseed_cavp(v):
    prf = get_prf(PrfId[v["alg"].removeprefix("PRF_")])
    nonces = hx(v["nonces"])
    half = len(nonces) // 2
    assert compute_skeyseed(prf, nonces[:half], nonces[half:], hx(v["gir"])) == hx(v["out"])


@pytest.mark.parametrize("v", _of("ikev2-prfplus"))
def test_7296_54_prf_plus_cavp(v):
    prf = get_prf(PrfId[v["alg"].removeprefix("PRF_")])
    exp = hx(v["out"])
    assert prf_plus(prf, hx(v["key"]), hx(v["seed"]), len(exp)) == exp
    # any shorter request is a prefix (prf+ is a stream)
    assert prf_plus(prf, hx(v["key"]), hx(v["seed"]), 7) == exp[:7]


@pytest.mark.parametrize("alg", ["SHA2_256", "SHA2_384", "SHA2_512"])
def test_7296_52_derive_ike_keys_chains_cavp(alg):
    """SKEYSEED vector -> prf+ vector through derive_ike_keys (the CAVP pairs chain)."""
    (sk,) = [v for v in VECTORS if v["id"] == f"CAVP-SKEYSEED-{alg}"]
    (pp,) = [v for v in VECTORS if v["id"] == f"CAVP-PRFPLUS-{alg}"]
    prf = get_prf(PrfId["HMAC_" + alg])
    nonces, seed = hx(sk["nonces"]), hx(pp["seed"])
    assert seed.startswith(nonces) and len(seed) == len(nonces) + 16
    half = len(nonces) // 2
    spis = seed[len(nonces) :]
    keys = derive_ike_keys(
        prf,
        get_encr(EncrId.AES_CBC, 256),
        get_integ(IntegId.HMAC_SHA2_256_128),
        nonces[:half],
        nonces[half:],
        spis[:8],
        spis[8:],
        hx(sk["gir"]),
    )
    stream = b"".join(
        (keys.sk_d, keys.sk_ai, keys.sk_ar, keys.sk_ei, keys.sk_er, keys.sk_pi, keys.sk_pr)
    )
    exp = hx(pp["out"])
    n = min(len(stream), len(exp))
    assert stream[:n] == exp[:n]
    assert keys.sk_d == exp[: prf.key_size]
