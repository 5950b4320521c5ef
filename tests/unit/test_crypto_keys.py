"""PRF/INTEG tables, key derivation, AUTH and NAT-D (REQUIREMENTS 7296-52..57, 59, 60, 72)."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from ikev2.crypto import (
    KEY_PAD,
    ChildKeys,
    IkeKeys,
    compute_skeyseed,
    derive_child_keys,
    derive_ike_keys,
    derive_rekeyed_ike_keys,
    get_encr,
    get_integ,
    get_prf,
    natd_hash,
    prf_plus,
    psk_auth,
    signed_octets,
    verify_psk_auth,
)
from ikev2.protocol.enums import EncrId, IntegId, PrfId

NI, NR = bytes(range(32)), bytes(range(100, 132))
SPI_I, SPI_R = bytes.fromhex("0102030405060708"), bytes.fromhex("a1a2a3a4a5a6a7a8")
GIR = os.urandom(256)


def _ref_prf_plus(h, key: bytes, seed: bytes, n: int) -> bytes:
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(key, t + seed + bytes([i]), h).digest()
        out += t
        i += 1
    return out[:n]


# --- PRF / INTEG tables -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pid", "size", "fixed"),
    [
        (PrfId.HMAC_SHA1, 20, False),
        (PrfId.HMAC_SHA2_256, 32, False),
        (PrfId.HMAC_SHA2_384, 48, False),
        (PrfId.HMAC_SHA2_512, 64, False),
        (PrfId.AES128_XCBC, 16, True),
        (PrfId.AES128_CMAC, 16, True),
    ],
)
def test_8247_02_prf_table(pid, size, fixed):
    prf = get_prf(pid)
    assert (prf.id, prf.key_size, prf.output_size, prf.fixed_key) == (pid, size, size, fixed)
    assert len(prf(os.urandom(7), b"abc")) == size


@pytest.mark.parametrize(
    ("iid", "key", "icv"),
    [
        (IntegId.HMAC_SHA1_96, 20, 12),
        (IntegId.HMAC_SHA2_256_128, 32, 16),
        (IntegId.HMAC_SHA2_384_192, 48, 24),
        (IntegId.HMAC_SHA2_512_256, 64, 32),
        (IntegId.AES_XCBC_96, 16, 12),
        (IntegId.AES_CMAC_96, 16, 12),
    ],
)
def test_8247_03_integ_table(iid, key, icv):
    integ = get_integ(iid)
    assert (integ.key_size, integ.icv_size) == (key, icv)
    k = os.urandom(key)
    assert integ.mac(k, b"data") == integ.prepare(k)(b"data")
    assert len(integ.mac(k, b"data")) == icv


def test_unsupported_ids_raise_value_error():
    for fn, bad in ((get_prf, PrfId.HMAC_MD5), (get_integ, IntegId.HMAC_MD5_96)):
        with pytest.raises(ValueError):
            fn(bad)
    with pytest.raises(ValueError):
        get_encr(EncrId.TRIPLE_DES, None)
    with pytest.raises(ValueError, match="Key Length"):
        get_encr(EncrId.AES_CBC, None)
    with pytest.raises(ValueError):
        get_encr(EncrId.AES_GCM_16, 512)
    with pytest.raises(ValueError):
        get_encr(EncrId.CHACHA20_POLY1305, 128)


def test_hmac_sha1_96_rfc2404_case():
    # RFC 2202 test case 1 (HMAC-SHA-1), truncated to 96 bits per RFC 2404
    mac = get_integ(IntegId.HMAC_SHA1_96).mac(b"\x0b" * 20, b"Hi There")
    assert mac == bytes.fromhex("b617318655057264e28bc0b6")


@pytest.mark.parametrize(
    ("key", "out"),
    [  # RFC 4615 §4 test vectors, message 000102..13
        (bytes(range(16)) + b"\xed\xcb", "84a348a4a45d235babfffc0d2b4da09a"),
        (bytes(range(16)), "980ae87b5f4c9c5214f5b6a8455e4c2d"),
        (bytes(range(10)), "290d9e112edb09ee141fcf64c0b72f3d"),
    ],
)
def test_4615_aes_cmac_prf_128(key, out):
    assert get_prf(PrfId.AES128_CMAC)(key, bytes(range(20))).hex() == out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.binary(max_size=70), min_size=1, max_size=6))
def test_aes_cmac_matches_cryptography_across_calls(messages):
    key = bytes(range(16))
    prepared = get_integ(IntegId.AES_CMAC_96).prepare(key)
    for m in messages:
        ref = cmac.CMAC(algorithms.AES(key))
        ref.update(m)
        full = ref.finalize()
        assert get_prf(PrfId.AES128_CMAC)(key, m) == full
        assert prepared(m) == full[:12]


# --- key derivation --------------------------------------------------------------------


SUITES = [  # (encr id, bits, integ, prf, SK_e, SK_a, SK_d) -- 7296-55 table
    (EncrId.AES_GCM_16, 128, None, PrfId.HMAC_SHA2_256, 20, 0, 32),
    (EncrId.AES_GCM_16, 256, None, PrfId.HMAC_SHA2_384, 36, 0, 48),
    (EncrId.CHACHA20_POLY1305, None, None, PrfId.HMAC_SHA2_256, 36, 0, 32),
    (EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128, PrfId.HMAC_SHA2_256, 32, 32, 32),
    (EncrId.AES_CBC, 128, IntegId.HMAC_SHA1_96, PrfId.HMAC_SHA1, 16, 20, 20),
    (EncrId.AES_CBC, 192, IntegId.HMAC_SHA2_512_256, PrfId.HMAC_SHA2_512, 24, 64, 64),
    (EncrId.AES_CBC, 128, IntegId.AES_XCBC_96, PrfId.AES128_XCBC, 16, 16, 16),
]


@pytest.mark.parametrize(("eid", "bits", "iid", "pid", "e", "a", "d"), SUITES)
def test_7296_55_ike_key_sizes(eid, bits, iid, pid, e, a, d):
    prf, encr = get_prf(pid), get_encr(eid, bits)
    integ = get_integ(iid) if iid is not None else None
    keys = derive_ike_keys(prf, encr, integ, NI, NR, SPI_I, SPI_R, GIR)
    assert [len(x) for x in (keys.sk_d, keys.sk_pi, keys.sk_pr)] == [d] * 3
    assert [len(x) for x in (keys.sk_ai, keys.sk_ar)] == [a] * 2
    assert [len(x) for x in (keys.sk_ei, keys.sk_er)] == [e] * 2
    child = derive_child_keys(prf, keys.sk_d, NI, NR, encr, integ)
    assert [len(x) for x in (child.encr_i, child.encr_r)] == [e] * 2
    assert [len(x) for x in (child.integ_i, child.integ_r)] == [a] * 2


def test_7296_52_ike_keys_order_against_reference():
    prf = get_prf(PrfId.HMAC_SHA2_256)
    encr, integ = get_encr(EncrId.AES_CBC, 128), get_integ(IntegId.HMAC_SHA2_256_128)
    keys = derive_ike_keys(prf, encr, integ, NI, NR, SPI_I, SPI_R, GIR)
    skeyseed = hmac.new(NI + NR, GIR, hashlib.sha256).digest()
    km = _ref_prf_plus(hashlib.sha256, skeyseed, NI + NR + SPI_I + SPI_R, 32 * 5 + 16 * 2)
    assert keys == IkeKeys(
        km[:32], km[32:64], km[64:96], km[96:112], km[112:128], km[128:160], km[160:192]
    )
    assert "redacted" in repr(keys) and km[:4].hex() not in repr(keys)


def test_7296_53_fixed_key_prf_uses_8_octets_of_each_nonce():
    prf = get_prf(PrfId.AES128_XCBC)
    ni2 = NI[:8] + os.urandom(24)
    nr2 = NR[:8] + os.urandom(24)
    s1 = compute_skeyseed(prf, NI, NR, GIR)
    assert s1 == prf(NI[:8] + NR[:8], GIR) == compute_skeyseed(prf, ni2, nr2, GIR)
    encr, integ = get_encr(EncrId.AES_CBC, 128), get_integ(IntegId.AES_XCBC_96)
    k1 = derive_ike_keys(prf, encr, integ, NI, NR, SPI_I, SPI_R, GIR)
    k2 = derive_ike_keys(prf, encr, integ, ni2, nr2, SPI_I, SPI_R, GIR)
    assert k1.sk_d != k2.sk_d  # prf+ still uses the full nonces
    assert k1.sk_d == prf_plus(prf, s1, NI + NR + SPI_I + SPI_R, 16)
    # the CMAC PRF is treated the same way
    cm = get_prf(PrfId.AES128_CMAC)
    assert compute_skeyseed(cm, NI, NR, GIR) == cm(NI[:8] + NR[:8], GIR)


def test_7296_54_prf_plus_255_iteration_limit():
    prf = get_prf(PrfId.HMAC_SHA2_256)
    assert len(prf_plus(prf, b"k", b"s", 255 * 32)) == 255 * 32
    with pytest.raises(ValueError, match="255"):
        prf_plus(prf, b"k", b"s", 255 * 32 + 1)
    assert prf_plus(prf, b"k", b"s", 0) == b""
    assert prf_plus(prf, b"k", b"s", 100) == _ref_prf_plus(hashlib.sha256, b"k", b"s", 100)


def test_7296_56_child_keymat_order_and_pfs():
    prf = get_prf(PrfId.HMAC_SHA2_256)
    encr, integ = get_encr(EncrId.AES_CBC, 256), get_integ(IntegId.HMAC_SHA2_256_128)
    sk_d = os.urandom(32)
    km = _ref_prf_plus(hashlib.sha256, sk_d, NI + NR, 128)
    assert derive_child_keys(prf, sk_d, NI, NR, encr, integ) == ChildKeys(
        km[:32], km[32:64], km[64:96], km[96:128]
    )
    km = _ref_prf_plus(hashlib.sha256, sk_d, GIR + NI + NR, 128)
    assert derive_child_keys(prf, sk_d, NI, NR, encr, integ, GIR) == ChildKeys(
        km[:32], km[32:64], km[64:96], km[96:128]
    )
    gcm = get_encr(EncrId.AES_GCM_16, 128)
    km = _ref_prf_plus(hashlib.sha256, sk_d, NI + NR, 40)
    assert derive_child_keys(prf, sk_d, NI, NR, gcm, None) == ChildKeys(km[:20], b"", km[20:], b"")


def test_7296_57_rekey_old_prf_for_skeyseed_new_prf_for_prf_plus():
    old, new = get_prf(PrfId.HMAC_SHA2_256), get_prf(PrfId.HMAC_SHA2_512)
    encr = get_encr(EncrId.AES_GCM_16, 256)
    old_sk_d = os.urandom(32)
    spi_i, spi_r = os.urandom(8), os.urandom(8)
    keys = derive_rekeyed_ike_keys(old, old_sk_d, new, encr, None, GIR, NI, NR, spi_i, spi_r)
    skeyseed = hmac.new(old_sk_d, GIR + NI + NR, hashlib.sha256).digest()
    km = _ref_prf_plus(hashlib.sha512, skeyseed, NI + NR + spi_i + spi_r, 64 * 3 + 36 * 2)
    assert keys == IkeKeys(km[:64], b"", b"", km[64:100], km[100:136], km[136:200], km[200:264])
    # same PRF: identical to using it for both steps
    same = derive_rekeyed_ike_keys(old, old_sk_d, old, encr, None, GIR, NI, NR, spi_i, spi_r)
    km = _ref_prf_plus(hashlib.sha256, skeyseed, NI + NR + spi_i + spi_r, 32)
    assert same.sk_d == km


def test_key_containers_are_frozen_and_slotted():
    keys = IkeKeys(b"", b"", b"", b"", b"", b"", b"")
    with pytest.raises(AttributeError):
        keys.sk_d = b"x"  # type: ignore[misc]
    assert not hasattr(keys, "__dict__")
    assert not hasattr(ChildKeys(b"", b"", b"", b""), "__dict__")


# --- AUTH and NAT-D --------------------------------------------------------------------


def test_7296_60_psk_auth():
    assert KEY_PAD == b"Key Pad for IKEv2" and len(KEY_PAD) == 17
    prf = get_prf(PrfId.HMAC_SHA2_256)
    psk, octets = b"secret", os.urandom(400)
    inner = hmac.new(psk, b"Key Pad for IKEv2", hashlib.sha256).digest()
    expected = hmac.new(inner, octets, hashlib.sha256).digest()
    assert psk_auth(prf, psk, octets) == expected
    assert verify_psk_auth(prf, psk, octets, expected)
    assert not verify_psk_auth(prf, psk, octets, expected[:-1] + bytes([expected[-1] ^ 1]))
    assert not verify_psk_auth(prf, b"other", octets, expected)
    assert not verify_psk_auth(prf, psk, octets, b"")
    # XCBC PRF with an arbitrary-length PSK goes through RFC 4434 key handling
    assert len(psk_auth(get_prf(PrfId.AES128_XCBC), b"a long shared secret!!", octets)) == 16


def test_7296_59_signed_octets():
    prf = get_prf(PrfId.HMAC_SHA2_256)
    msg, nonce, sk_p = os.urandom(300), os.urandom(32), os.urandom(32)
    id_rest = bytes([2, 0, 0, 0]) + b"vpn.example.org"
    out = signed_octets(msg, nonce, prf, sk_p, id_rest)
    assert out == msg + nonce + hmac.new(sk_p, id_rest, hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("addr", "packed"),
    [
        ("192.0.2.1", bytes([192, 0, 2, 1])),
        ("2001:db8::1", bytes.fromhex("20010db8000000000000000000000001")),
    ],
)
def test_7296_72_natd_hash(addr, packed):
    h = natd_hash(SPI_I, bytes(8), addr, 500)
    assert h == hashlib.sha1(SPI_I + bytes(8) + packed + b"\x01\xf4").digest()
    assert len(h) == 20
    assert natd_hash(SPI_I, SPI_R, addr, 4500) != h
    with pytest.raises(ValueError):
        natd_hash(SPI_I[:4], SPI_R, addr, 500)
