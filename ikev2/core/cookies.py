"""Stateless cookies (RFC 7296 §2.6): <version> | SHA-256(Ni | IPi | SPIi | secret)[:16]."""

from __future__ import annotations

import hashlib
import hmac


class CookieJar:
    __slots__ = ("_previous", "_secret", "_version")

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._previous: bytes | None = None
        self._version = 0

    def rotate(self, secret: bytes) -> None:
        self._previous, self._secret = self._secret, secret
        self._version = (self._version + 1) & 0xFF

    def make(self, ni: bytes, address: str, spi_i: bytes) -> bytes:
        return self._make(self._version, self._secret, ni, address, spi_i)

    def verify(self, cookie: bytes, ni: bytes, address: str, spi_i: bytes) -> bool:
        """A cookie that does not verify is treated as absent (7296-46)."""
        if len(cookie) != 17:
            return False
        if cookie[0] == self._version:
            secret = self._secret
        elif self._previous is not None and cookie[0] == (self._version - 1) & 0xFF:
            secret = self._previous
        else:
            return False
        return hmac.compare_digest(cookie, self._make(cookie[0], secret, ni, address, spi_i))

    @staticmethod
    def _make(version: int, secret: bytes, ni: bytes, address: str, spi_i: bytes) -> bytes:
        digest = hashlib.sha256(ni + address.encode() + spi_i + secret).digest()
        return bytes([version]) + digest[:16]
