"""SK payload protection: encrypt-then-MAC and AEAD (RFC 7296 §3.14, RFC 5282 §5,
RFC 7634 §3; REQUIREMENTS 7634-01/03/04, 5282-01, 7296-22)."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from ikev2.crypto import get_encr, get_integ, make_sk_crypter
from ikev2.errors import IntegrityError
from ikev2.protocol.enums import EncrId, IntegId

AAD = bytes.fromhex("C0C1C2C3C4C5C6C7D0D1D2D3D4D5D6D72E20250000000009000000452900002" + "9")

AEADS = [(EncrId.AES_GCM_16, b) for b in (128, 192, 256)] + [
    (EncrId.AES_GCM_12, 128),
    (EncrId.AES_GCM_8, 256),
    (EncrId.AES_CCM_8, 128),
    (EncrId.AES_CCM_16, 256),
    (EncrId.CHACHA20_POLY1305, None),
]
INTEGS = [
    IntegId.HMAC_SHA1_96,
    IntegId.HMAC_SHA2_256_128,
    IntegId.HMAC_SHA2_384_192,
    IntegId.HMAC_SHA2_512_256,
    IntegId.AES_XCBC_96,
    IntegId.AES_CMAC_96,
]
PLAIN_SUITES = [((EncrId.AES_CBC, b), i) for b in (128, 192, 256) for i in INTEGS] + [
    ((EncrId.AES_CTR, 128), IntegId.HMAC_SHA2_256_128)
]


def _aead(eid, bits):
    encr = get_encr(eid, bits)
    return encr, make_sk_crypter(encr, os.urandom(encr.key_size), None, b"")


def _plain(eid, bits, iid):
    encr, integ = get_encr(eid, bits), get_integ(iid)
    ek, ik = os.urandom(encr.key_size), os.urandom(integ.key_size)
    return encr, integ, ek, ik, make_sk_crypter(encr, ek, integ, ik)


@pytest.mark.parametrize(("eid", "bits"), AEADS)
def test_5282_01_aead_round_trip_and_sizes(eid, bits):
    encr, c = _aead(eid, bits)
    assert (c.iv_size, c.block_size, c.icv_size) == (8, 1, encr.icv_size)
    iv = os.urandom(8)
    for n in (1, 13, 16, 300):
        pt = os.urandom(n)
        sealed = c.seal(AAD, iv, pt)
        assert len(sealed) == n + encr.icv_size
        assert c.open(AAD, iv, sealed) == pt


@pytest.mark.parametrize(("suite", "iid"), PLAIN_SUITES)
def test_7296_cbc_ctr_round_trip_and_sizes(suite, iid):
    encr, integ, _, _, c = _plain(*suite, iid)
    assert c.icv_size == integ.icv_size and c.iv_size == encr.iv_size
    for n in (16, 32, 304):
        n = n if encr.block_size == 16 else n - 3
        iv = os.urandom(c.iv_size)
        pt = os.urandom(n)
        sealed = c.seal(AAD, iv, pt)
        assert len(sealed) == n + integ.icv_size
        assert c.open(AAD, iv, sealed) == pt


@pytest.mark.parametrize(("eid", "bits"), AEADS)
def test_7296_22_aead_tamper_detected(eid, bits):
    _, c = _aead(eid, bits)
    iv, pt = os.urandom(8), os.urandom(40)
    sealed = c.seal(AAD, iv, pt)
    bad = bytearray(sealed)
    bad[3] ^= 1
    for aad, v, body in (
        (AAD[:-1] + b"\x00", iv, sealed),
        (AAD, bytes(8), sealed),
        (AAD, iv, bytes(bad)),
        (AAD, iv, sealed[:-1] + bytes([sealed[-1] ^ 0x80])),
        (AAD, iv, sealed[:5]),
    ):
        with pytest.raises(IntegrityError):
            c.open(aad, v, body)
    assert c.open(AAD, iv, sealed) == pt


@pytest.mark.parametrize(("suite", "iid"), PLAIN_SUITES)
def test_7296_22_icv_checked_before_decrypt(suite, iid):
    *_, c = _plain(*suite, iid)
    iv = os.urandom(c.iv_size)
    pt = os.urandom(48)
    sealed = c.seal(AAD, iv, pt)
    for aad, v, body in (
        (b"x" + AAD[1:], iv, sealed),
        (AAD, bytes(c.iv_size), sealed),
        (AAD, iv, bytes([sealed[0] ^ 1]) + sealed[1:]),
        (AAD, iv, sealed[:-1] + bytes([sealed[-1] ^ 1])),
        (AAD, iv, sealed[:-1]),  # bad length
        (AAD, iv, b""),
    ):
        with pytest.raises(IntegrityError):
            c.open(aad, v, body)
    # a failed open leaves the prepared contexts intact
    assert c.open(AAD, iv, sealed) == pt


def _ref_cbc(key: bytes, iv: bytes, data: bytes, decrypt: bool = False) -> bytes:
    ctx = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = ctx.decryptor() if decrypt else ctx.encryptor()
    return op.update(data) + op.finalize()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=16, max_size=16), st.integers(1, 8)), max_size=8))
def test_cbc_long_lived_context_matches_fresh_cipher(msgs):
    """The persistent-context CBC equals a fresh CBC per message, in any interleaving."""
    encr, integ = get_encr(EncrId.AES_CBC, 128), get_integ(IntegId.HMAC_SHA2_256_128)
    ek, ik = os.urandom(16), os.urandom(32)
    c = make_sk_crypter(encr, ek, integ, ik)
    for iv, blocks in msgs:
        pt = os.urandom(16 * blocks)
        sealed = c.seal(AAD, iv, pt)
        ct = _ref_cbc(ek, iv, pt)
        icv = hmac.new(ik, AAD + iv + ct, hashlib.sha256).digest()[:16]
        assert sealed == ct + icv
        if blocks % 2:
            assert c.open(AAD, iv, sealed) == pt
        # and a message from the peer sealed with a fresh context opens too
        other = _ref_cbc(ek, iv[::-1], pt)
        icv2 = hmac.new(ik, AAD + iv[::-1] + other, hashlib.sha256).digest()[:16]
        assert c.open(AAD, iv[::-1], other + icv2) == pt


def test_ctr_matches_rfc3686_counter_block():
    encr, integ = get_encr(EncrId.AES_CTR, 256), get_integ(IntegId.HMAC_SHA2_256_128)
    assert (encr.key_size, encr.salt_size, encr.iv_size) == (36, 4, 8)
    ek, ik = os.urandom(36), os.urandom(32)
    c = make_sk_crypter(encr, ek, integ, ik)
    iv, pt = os.urandom(8), os.urandom(45)
    ctx = Cipher(algorithms.AES(ek[:32]), modes.CTR(ek[32:] + iv + b"\0\0\0\1")).encryptor()
    ct = ctx.update(pt)
    assert c.seal(AAD, iv, pt)[:45] == ct


@pytest.mark.parametrize(("eid", "icv"), [(EncrId.AES_GCM_8, 8), (EncrId.AES_GCM_12, 12)])
def test_5282_gcm_short_tag_is_truncated_full_tag(eid, icv):
    encr = get_encr(eid, 128)
    key = os.urandom(20)
    c = make_sk_crypter(encr, key, None, b"")
    iv, pt = os.urandom(8), os.urandom(33)
    full = AESGCM(key[:16]).encrypt(key[16:] + iv, pt, AAD)
    assert c.seal(AAD, iv, pt) == full[:33] + full[33 : 33 + icv]


def test_5282_gcm16_and_ccm_nonce_is_salt_then_iv():
    key = os.urandom(36)
    c = make_sk_crypter(get_encr(EncrId.AES_GCM_16, 256), key, None, b"")
    iv, pt = os.urandom(8), os.urandom(20)
    assert c.seal(AAD, iv, pt) == AESGCM(key[:32]).encrypt(key[32:] + iv, pt, AAD)
    ccm = get_encr(EncrId.AES_CCM_12, 128)
    assert (ccm.key_size, ccm.salt_size) == (19, 3)
    key = os.urandom(19)
    c = make_sk_crypter(ccm, key, None, b"")
    assert c.seal(AAD, iv, pt) == AESCCM(key[:16], tag_length=12).encrypt(key[16:] + iv, pt, AAD)


def test_7634_04_aead_with_integrity_refused():
    encr = get_encr(EncrId.CHACHA20_POLY1305, None)
    with pytest.raises(ValueError, match="AEAD"):
        make_sk_crypter(encr, bytes(36), get_integ(IntegId.HMAC_SHA2_256_128), bytes(32))


def test_null_and_missing_integrity_refused_for_ike():
    with pytest.raises(ValueError, match="IKE"):
        make_sk_crypter(get_encr(EncrId.NULL, None), b"", get_integ(12), bytes(32))
    with pytest.raises(ValueError, match="integrity"):
        make_sk_crypter(get_encr(EncrId.AES_CBC, 128), bytes(16), None, b"")
    with pytest.raises(ValueError, match="octet"):
        make_sk_crypter(get_encr(EncrId.AES_CBC, 128), bytes(15), get_integ(12), bytes(32))
    with pytest.raises(ValueError, match="octet"):
        make_sk_crypter(get_encr(EncrId.AES_CBC, 128), bytes(16), get_integ(12), bytes(31))


def test_seal_rejects_unaligned_plaintext_and_bad_iv():
    *_, c = _plain(EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128)
    with pytest.raises(ValueError):
        c.seal(AAD, bytes(16), bytes(15))
    with pytest.raises(ValueError):
        c.seal(AAD, bytes(8), bytes(16))
    _, a = _aead(EncrId.AES_GCM_16, 128)
    with pytest.raises(ValueError):
        a.seal(AAD, bytes(16), bytes(16))


def test_crypter_is_slotted():
    *_, c = _plain(EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128)
    _, a = _aead(EncrId.AES_GCM_16, 128)
    for obj in (c, a):
        assert not hasattr(obj, "__dict__")
