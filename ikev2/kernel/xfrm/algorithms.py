"""IKEv2 transform IDs → Linux crypto API names for XFRMA_ALG_* (REQUIREMENTS X-10, 7634-05).

Keys arrive as the core splits KEYMAT (ikev2/crypto/keys.py): for AEAD and counter modes
the salt/nonce is part of the key octets (RFC 4106 §8.1: 4 octets, RFC 4309 §7.1: 3 octets,
RFC 7634 §2: 4 octets, RFC 3686 §5.1: 4 octets), which is also what the kernel's
rfc4106/rfc4309/rfc7539esp/rfc3686 templates expect at the end of the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ikev2.errors import KernelError
from ikev2.protocol.enums import EncrId, IntegId


@dataclass(frozen=True, slots=True)
class AeadAlg:
    name: str
    icv_bits: int
    salt: int  # octets at the end of the key


@dataclass(frozen=True, slots=True)
class CryptAlg:
    name: str
    salt: int = 0


@dataclass(frozen=True, slots=True)
class AuthAlg:
    name: str
    trunc_bits: int


AEAD: dict[int, AeadAlg] = {
    EncrId.AES_GCM_8: AeadAlg("rfc4106(gcm(aes))", 64, 4),
    EncrId.AES_GCM_12: AeadAlg("rfc4106(gcm(aes))", 96, 4),
    EncrId.AES_GCM_16: AeadAlg("rfc4106(gcm(aes))", 128, 4),
    EncrId.AES_CCM_8: AeadAlg("rfc4309(ccm(aes))", 64, 3),
    EncrId.AES_CCM_12: AeadAlg("rfc4309(ccm(aes))", 96, 3),
    EncrId.AES_CCM_16: AeadAlg("rfc4309(ccm(aes))", 128, 3),
    EncrId.CHACHA20_POLY1305: AeadAlg("rfc7539esp(chacha20,poly1305)", 128, 4),
    # RFC 4543: ENCR_NULL_AUTH_AES_GMAC is an AEAD in XFRM terms (16-octet ICV, 4 salt)
    EncrId.NULL_AUTH_AES_GMAC: AeadAlg("rfc4543(gcm(aes))", 128, 4),
}

CRYPT: dict[int, CryptAlg] = {
    EncrId.AES_CBC: CryptAlg("cbc(aes)"),
    EncrId.AES_CTR: CryptAlg("rfc3686(ctr(aes))", 4),
    EncrId.TRIPLE_DES: CryptAlg("cbc(des3_ede)"),
    EncrId.CAMELLIA_CBC: CryptAlg("cbc(camellia)"),
    EncrId.NULL: CryptAlg("ecb(cipher_null)"),
}

AUTH: dict[int, AuthAlg] = {
    IntegId.HMAC_MD5_96: AuthAlg("hmac(md5)", 96),
    IntegId.HMAC_SHA1_96: AuthAlg("hmac(sha1)", 96),
    IntegId.AES_XCBC_96: AuthAlg("xcbc(aes)", 96),
    IntegId.AES_CMAC_96: AuthAlg("cmac(aes)", 96),
    IntegId.HMAC_SHA1_160: AuthAlg("hmac(sha1)", 160),
    IntegId.HMAC_MD5_128: AuthAlg("hmac(md5)", 128),
    # RFC 4868 §2.3: truncation to half the output (the kernel's plain XFRMA_ALG_AUTH
    # default would be 96 bits, hence XFRMA_ALG_AUTH_TRUNC always)
    IntegId.HMAC_SHA2_256_128: AuthAlg("hmac(sha256)", 128),
    IntegId.HMAC_SHA2_384_192: AuthAlg("hmac(sha384)", 192),
    IntegId.HMAC_SHA2_512_256: AuthAlg("hmac(sha512)", 256),
}


def _name(enum: type, value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def algorithm_attrs(encr_id: int, integ_id: int, encr_key: bytes,
                    integ_key: bytes) -> list[tuple[str, Any]]:
    """The XFRMA_ALG_AEAD, or XFRMA_ALG_CRYPT + XFRMA_ALG_AUTH_TRUNC, attributes of one SA.
    Raises KernelError for an algorithm XFRM has no name for."""
    aead = AEAD.get(encr_id)
    if aead is not None:
        if integ_id:
            raise KernelError(f"{_name(EncrId, encr_id)} is an AEAD; integrity "
                              f"{_name(IntegId, integ_id)} must not be negotiated with it")
        if len(encr_key) <= aead.salt:
            raise KernelError(f"{aead.name}: key of {len(encr_key)} octets is too short")
        return [("XFRMA_ALG_AEAD", {"alg_name": aead.name, "alg_key_len": len(encr_key) * 8,
                                    "alg_icv_len": aead.icv_bits, "alg_key": encr_key})]
    crypt = CRYPT.get(encr_id)
    if crypt is None:
        raise KernelError(f"no XFRM algorithm for encryption transform "
                          f"{_name(EncrId, encr_id)}")
    attrs: list[tuple[str, Any]] = [
        ("XFRMA_ALG_CRYPT", {"alg_name": crypt.name, "alg_key_len": len(encr_key) * 8,
                             "alg_key": encr_key}),
    ]
    if integ_id:
        auth = AUTH.get(integ_id)
        if auth is None:
            raise KernelError(f"no XFRM algorithm for integrity transform "
                              f"{_name(IntegId, integ_id)}")
        attrs.append(("XFRMA_ALG_AUTH_TRUNC", {
            "alg_name": auth.name, "alg_key_len": len(integ_key) * 8,
            "alg_trunc_len": auth.trunc_bits, "alg_key": integ_key,
        }))
    elif encr_id == EncrId.NULL:
        raise KernelError("ESP with ENCR_NULL and no integrity protects nothing")
    return attrs


def describe(encr_id: int, integ_id: int) -> str:
    aead = AEAD.get(encr_id)
    if aead is not None:
        return f"{aead.name} icv {aead.icv_bits}"
    crypt = CRYPT.get(encr_id)
    auth = AUTH.get(integ_id)
    parts = [crypt.name if crypt else _name(EncrId, encr_id)]
    if auth is not None:
        parts.append(f"{auth.name} trunc {auth.trunc_bits}")
    return " + ".join(parts)
