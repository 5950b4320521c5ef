"""Integrity algorithms (transform type 3) with truncated output (RFC 7296 §3.3.2)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac

from ikev2.crypto._aesmac import AesMac
from ikev2.protocol.enums import IntegId

__all__ = ["Integ", "get_integ", "supported_integs"]


class Integ:
    """One integrity transform: `mac(key, data)` returns the truncated ICV."""

    __slots__ = ("_one_shot", "_prepare", "icv_size", "id", "key_size", "name")

    def __init__(
        self,
        integ_id: int,
        name: str,
        key_size: int,
        icv_size: int,
        prepare: Callable[[bytes], Callable[[bytes], bytes]],
        one_shot: Callable[[bytes, bytes], bytes] | None = None,
    ) -> None:
        self.id = integ_id
        self.name = name
        self.key_size = key_size
        self.icv_size = icv_size
        self._prepare = prepare
        self._one_shot = one_shot

    def mac(self, key: bytes, data: bytes) -> bytes:
        """Truncated MAC of `data` (RFC 2404, RFC 4868 §2.3, RFC 3566 §4)."""
        if self._one_shot is not None:
            return self._one_shot(key, data)
        return self._prepare(key)(data)

    def prepare(self, key: bytes) -> Callable[[bytes], bytes]:
        """A keyed MAC function for one SA direction (same output as `mac`)."""
        if len(key) != self.key_size:
            raise ValueError(f"{self.name} needs a {self.key_size}-octet key, got {len(key)}")
        return self._prepare(key)

    def __repr__(self) -> str:
        return f"Integ({self.name})"


def _hmac_integ(integ_id: IntegId, name: str, algorithm: hashes.HashAlgorithm, trunc: int) -> Integ:
    """HMAC-SHA1-96 (RFC 2404) and HMAC-SHA2-*-* (RFC 4868 §2.3): key = hash length."""
    digest = algorithm.name

    def prepare(key: bytes) -> Callable[[bytes], bytes]:
        base = c_hmac.HMAC(key, algorithm)

        def run(data: bytes) -> bytes:
            h = base.copy()
            h.update(data)
            return h.finalize()[:trunc]

        return run

    def one_shot(key: bytes, data: bytes) -> bytes:
        return hmac.digest(key, data, digest)[:trunc]

    return Integ(integ_id, name, algorithm.digest_size, trunc, prepare, one_shot)


def _aes_integ(integ_id: IntegId, name: str, cmac: bool) -> Integ:
    """AES-XCBC-MAC-96 (RFC 3566) / AES-CMAC-96 (RFC 4494): 16-octet key, 12-octet ICV."""

    def prepare(key: bytes) -> Callable[[bytes], bytes]:
        mac = AesMac(key, cmac=cmac)
        return lambda data: mac(data)[:12]

    return Integ(integ_id, name, 16, 12, prepare)


_INTEGS: dict[int, Integ] = {
    IntegId.HMAC_SHA1_96: _hmac_integ(IntegId.HMAC_SHA1_96, "sha1", hashes.SHA1(), 12),
    IntegId.HMAC_SHA2_256_128: _hmac_integ(
        IntegId.HMAC_SHA2_256_128, "sha256", hashes.SHA256(), 16
    ),
    IntegId.HMAC_SHA2_384_192: _hmac_integ(
        IntegId.HMAC_SHA2_384_192, "sha384", hashes.SHA384(), 24
    ),
    IntegId.HMAC_SHA2_512_256: _hmac_integ(
        IntegId.HMAC_SHA2_512_256, "sha512", hashes.SHA512(), 32
    ),
    IntegId.AES_XCBC_96: _aes_integ(IntegId.AES_XCBC_96, "aesxcbc", cmac=False),
    IntegId.AES_CMAC_96: _aes_integ(IntegId.AES_CMAC_96, "aescmac", cmac=True),
}


def get_integ(integ_id: int) -> Integ:
    """The integrity transform for a type 3 ID; ValueError if unsupported (RFC 7296 §3.3.2)."""
    try:
        return _INTEGS[integ_id]
    except KeyError:
        raise ValueError(f"unsupported integrity transform ID {integ_id}") from None


def supported_integs() -> tuple[int, ...]:
    """Integrity transform IDs this build implements (RFC 8247 §3.3)."""
    return tuple(_INTEGS)
