"""Pseudo-random functions (transform type 2) and prf+ (RFC 7296 §2.13, §3.3.2)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac

from ikev2.crypto._aesmac import AesMac, aes_cmac_key, aes_xcbc_key
from ikev2.protocol.enums import PrfId

__all__ = ["Prf", "get_prf", "prf_plus", "supported_prfs"]

_HASH_BY_NAME: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


class Prf:
    """One negotiated PRF: `prf(key, data)`; `key_size` is the preferred key length."""

    __slots__ = ("_call", "_keyed", "fixed_key", "id", "key_size", "name", "output_size")

    def __init__(
        self,
        prf_id: int,
        name: str,
        key_size: int,
        output_size: int,
        fixed_key: bool,
        call: Callable[[bytes, bytes], bytes],
        keyed: Callable[[bytes], Callable[[bytes], bytes]],
    ) -> None:
        self.id = prf_id
        self.name = name
        self.key_size = key_size
        self.output_size = output_size
        self.fixed_key = fixed_key
        self._call = call
        self._keyed = keyed

    def __call__(self, key: bytes, data: bytes) -> bytes:
        """prf(key, data) (RFC 7296 §2.13)."""
        return self._call(key, data)

    def keyed(self, key: bytes) -> Callable[[bytes], bytes]:
        """A one-key shortcut for repeated calls, as in prf+ (RFC 7296 §2.13)."""
        return self._keyed(key)

    def __repr__(self) -> str:
        return f"Prf({self.name})"


def _hmac_prf(prf_id: PrfId, digest: str) -> Prf:
    """HMAC PRFs (RFC 2104, RFC 4868 §2.2: key size = output size)."""
    algorithm = _HASH_BY_NAME[digest]
    size = algorithm.digest_size
    one_shot = hmac.digest

    def call(key: bytes, data: bytes) -> bytes:
        return one_shot(key, data, digest)

    def keyed(key: bytes) -> Callable[[bytes], bytes]:
        base = c_hmac.HMAC(key, algorithm)

        def run(data: bytes) -> bytes:
            h = base.copy()
            h.update(data)
            return h.finalize()

        return run

    return Prf(prf_id, f"prf{digest}", size, size, False, call, keyed)


@lru_cache(maxsize=256)
def _xcbc_instance(key: bytes) -> AesMac:
    """Keyed AES-XCBC-PRF-128, cached per key (RFC 4434 §2)."""
    return AesMac(aes_xcbc_key(key), cmac=False)


@lru_cache(maxsize=256)
def _cmac_instance(key: bytes) -> AesMac:
    """Keyed AES-CMAC-PRF-128, cached per key (RFC 4615 §3)."""
    return AesMac(aes_cmac_key(key), cmac=True)


def _aes_prf(prf_id: PrfId, name: str, factory: Callable[[bytes], AesMac]) -> Prf:
    """AES-XCBC-PRF-128 (RFC 4434) / AES-CMAC-PRF-128 (RFC 4615): 16-octet fixed key."""

    def call(key: bytes, data: bytes) -> bytes:
        return factory(key)(data)

    def keyed(key: bytes) -> Callable[[bytes], bytes]:
        return factory(key)

    return Prf(prf_id, name, 16, 16, True, call, keyed)


_PRFS: dict[int, Prf] = {
    PrfId.HMAC_SHA1: _hmac_prf(PrfId.HMAC_SHA1, "sha1"),
    PrfId.HMAC_SHA2_256: _hmac_prf(PrfId.HMAC_SHA2_256, "sha256"),
    PrfId.HMAC_SHA2_384: _hmac_prf(PrfId.HMAC_SHA2_384, "sha384"),
    PrfId.HMAC_SHA2_512: _hmac_prf(PrfId.HMAC_SHA2_512, "sha512"),
    PrfId.AES128_XCBC: _aes_prf(PrfId.AES128_XCBC, "prfaesxcbc", _xcbc_instance),
    PrfId.AES128_CMAC: _aes_prf(PrfId.AES128_CMAC, "prfaescmac", _cmac_instance),
}


def get_prf(prf_id: int) -> Prf:
    """The PRF for a transform type 2 ID; ValueError if unsupported (RFC 7296 §3.3.2)."""
    try:
        return _PRFS[prf_id]
    except KeyError:
        raise ValueError(f"unsupported PRF transform ID {prf_id}") from None


def supported_prfs() -> tuple[int, ...]:
    """PRF transform IDs this build implements (RFC 8247 §3.2)."""
    return tuple(_PRFS)


def prf_plus(prf: Prf, key: bytes, seed: bytes, length: int) -> bytes:
    """prf+(K, S) = T1 | T2 | ..., Tn = prf(K, Tn-1 | S | n), n <= 255 (RFC 7296 §2.13)."""
    size = prf.output_size
    rounds = -(-length // size)
    if rounds > 255:
        raise ValueError(f"prf+ cannot produce {length} octets (255 x {size} maximum)")
    run = prf.keyed(key)
    out = []
    t = b""
    for i in range(1, rounds + 1):
        t = run(t + seed + bytes((i,)))
        out.append(t)
    return b"".join(out)[:length]
