"""Codec micro-benchmark: µs per parse / build of a typical IKE_SA_INIT request and of an
IKE_AUTH inner payload list (plus SK protect/unprotect with AES-GCM-16 for scale).

    python3 bench/codec.py [iterations]
"""

from __future__ import annotations

import os
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ikev2.protocol.codec import (
    build_message,
    decode_payloads,
    encode_payloads,
    parse_message,
)
from ikev2.protocol.header import parse_header
from ikev2.protocol.payloads import (
    AUTH,
    KE,
    SA,
    IDi,
    IDr,
    Nonce,
    Notify,
    Payload,
    Proposal,
    Transform,
    TSi,
    TSr,
)
from ikev2.protocol.sk import protect, unprotect
from ikev2.protocol.ts import TrafficSelector

SPI_I, SPI_R = os.urandom(8), bytes(8)

INIT: list[Payload] = [
    SA((Proposal(1, 1, b"", (Transform(1, 20, 256), Transform(2, 5), Transform(4, 31))),)),
    KE(31, os.urandom(32)),
    Nonce(os.urandom(32)),
    Notify(0, 16388, b"", os.urandom(20)),
    Notify(0, 16389, b"", os.urandom(20)),
]
AUTH_INNER: list[Payload] = [
    IDi(3, b"user@example.org"),
    Notify(0, 16384),
    IDr(2, b"gw.example.org"),
    AUTH(2, os.urandom(32)),
    SA((Proposal(1, 3, os.urandom(4), (Transform(1, 20, 128), Transform(5, 0))),)),
    TSi((TrafficSelector.from_network("2001:db8:a::1/128"),)),
    TSr((TrafficSelector.from_network("2001:db8:b::1/128"),)),
    Notify(0, 16396),
]


class Gcm:
    iv_size, block_size, icv_size = 8, 1, 16

    def __init__(self) -> None:
        self.aead, self.salt = AESGCM(os.urandom(16)), os.urandom(4)

    def seal(self, aad: bytes, iv: bytes, pt: bytes) -> bytes:
        return self.aead.encrypt(self.salt + iv, pt, aad)

    def open(self, aad: bytes, iv: bytes, ct: bytes) -> bytes:
        return self.aead.decrypt(self.salt + iv, ct, aad)


def per_call_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    init_msg = build_message(SPI_I, SPI_R, 34, 0x08, 0, INIT)
    first, inner = encode_payloads(AUTH_INNER)
    assert parse_message(init_msg)[1] == INIT and decode_payloads(first, inner) == AUTH_INNER
    gcm = Gcm()
    iv = os.urandom(8)
    auth_msg = protect(SPI_I, SPI_R, 35, 0x08, 1, AUTH_INNER, gcm, iv)
    auth_hdr = parse_header(auth_msg)
    rows = [
        (f"IKE_SA_INIT request ({len(init_msg)} B) parse", lambda: parse_message(init_msg)),
        ("IKE_SA_INIT request build",
         lambda: build_message(SPI_I, SPI_R, 34, 0x08, 0, INIT)),
        (f"IKE_AUTH inner list ({len(inner)} B) decode", lambda: decode_payloads(first, inner)),
        ("IKE_AUTH inner list encode", lambda: encode_payloads(AUTH_INNER)),
        (f"IKE_AUTH SK protect, AES-GCM ({len(auth_msg)} B)",
         lambda: protect(SPI_I, SPI_R, 35, 0x08, 1, AUTH_INNER, gcm, iv)),
        ("IKE_AUTH SK unprotect, AES-GCM",
         lambda: unprotect(auth_msg, auth_hdr, gcm)),
    ]
    print(f"python {sys.version.split()[0]}, best of 5 x {n}")
    for label, fn in rows:
        print(f"{label:48s} {per_call_us(fn, n):7.2f} us")


if __name__ == "__main__":
    main()
