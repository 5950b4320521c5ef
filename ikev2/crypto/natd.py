"""NAT detection hashes (RFC 7296 §2.23)."""

from __future__ import annotations

import hashlib
import ipaddress
from functools import lru_cache

__all__ = ["natd_hash"]


def natd_hash(spi_i: bytes, spi_r: bytes, address: str, port: int) -> bytes:
    """SHA-1(SPIi | SPIr | IP address | port), 20 octets (RFC 7296 §2.23)."""
    if len(spi_i) != 8 or len(spi_r) != 8:
        raise ValueError("IKE SPIs are 8 octets")
    packed = _packed(address)
    return hashlib.sha1(spi_i + spi_r + packed + port.to_bytes(2, "big")).digest()


@lru_cache(maxsize=4096)
def _packed(address: str) -> bytes:
    """Address strings repeat per peer; parsing them is most of a NAT-D hash's cost."""
    return ipaddress.ip_address(address).packed
