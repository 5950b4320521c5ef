"""AES-XCBC-MAC (RFC 3566) and AES-CMAC (RFC 4493) on one persistent AES-CBC context.

Creating a `cryptography` cipher context costs ~12 µs, while feeding an existing one costs
<1 µs. A CBC context keeps its chaining block between `update()` calls, so a MAC with a
zero IV is computed on a long-lived context by XOR-ing the previous chaining block into
the first block of each message (CBC then computes E(P1 ^ prev ^ prev) = E(P1)).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["AesMac", "aes_cmac_key", "aes_xcbc_key"]

_ZERO = bytes(16)
_MASK128 = (1 << 128) - 1


def _ecb(key: bytes, blocks: bytes) -> bytes:
    """AES-ECB encryption of whole blocks (key schedule helpers; FIPS 197)."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(blocks) + enc.finalize()


def _dbl(block: int) -> int:
    """Doubling in GF(2^128) with the CMAC polynomial (RFC 4493 §2.3)."""
    block <<= 1
    if block >> 128:
        block = (block & _MASK128) ^ 0x87
    return block


class AesMac:
    """A keyed AES-XCBC-MAC-128 or AES-CMAC-128 instance (RFC 3566 §4 / RFC 4493 §2.4)."""

    __slots__ = ("_chain", "_enc", "_k_full", "_k_part")

    def __init__(self, key: bytes, *, cmac: bool) -> None:
        """Derive the subkeys (RFC 3566 §4 K1/K2/K3, RFC 4493 §2.3 K1/K2)."""
        if len(key) != 16:
            raise ValueError("AES-XCBC/CMAC key must be 16 octets")
        if cmac:
            mac_key = key
            ell = int.from_bytes(_ecb(key, _ZERO), "big")
            k1 = _dbl(ell)
            self._k_full, self._k_part = k1, _dbl(k1)
        else:
            derived = _ecb(key, b"\x01" * 16 + b"\x02" * 16 + b"\x03" * 16)
            mac_key = derived[:16]
            self._k_full = int.from_bytes(derived[16:32], "big")
            self._k_part = int.from_bytes(derived[32:], "big")
        self._enc = Cipher(algorithms.AES(mac_key), modes.CBC(_ZERO)).encryptor()
        self._chain = 0

    def __call__(self, data: bytes) -> bytes:
        """Full 128-bit MAC of `data` (RFC 3566 §4, RFC 4493 §2.4)."""
        n = len(data)
        if n and n % 16 == 0:
            last_key = self._k_full
            msg = data
        else:
            last_key = self._k_part
            msg = data + b"\x80" + bytes(15 - n % 16)
        if len(msg) == 16:
            first = int.from_bytes(msg, "big") ^ self._chain ^ last_key
            out = self._enc.update(first.to_bytes(16, "big"))
        else:
            first = int.from_bytes(msg[:16], "big") ^ self._chain
            last = int.from_bytes(msg[-16:], "big") ^ last_key
            out = self._enc.update(
                first.to_bytes(16, "big") + msg[16:-16] + last.to_bytes(16, "big")
            )
        tag = out[-16:]
        self._chain = int.from_bytes(tag, "big")
        return tag


def aes_xcbc_key(key: bytes) -> bytes:
    """Normalise a variable-length AES-XCBC-PRF-128 key (RFC 4434 §2)."""
    if len(key) == 16:
        return key
    if len(key) < 16:
        return key + bytes(16 - len(key))
    return AesMac(_ZERO, cmac=False)(key)


def aes_cmac_key(key: bytes) -> bytes:
    """Normalise a variable-length AES-CMAC-PRF-128 key (RFC 4615 §3)."""
    if len(key) == 16:
        return key
    return AesMac(_ZERO, cmac=True)(key)
