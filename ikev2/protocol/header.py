"""The IKE header (RFC 7296 §3.1): 28 octets in front of every IKEv2 message."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ikev2.errors import DropMessage, InvalidMajorVersion
from ikev2.protocol.payloads import fast_constructor

__all__ = [
    "FLAG_INITIATOR",
    "FLAG_RESPONSE",
    "FLAG_VERSION",
    "HEADER",
    "HEADER_LEN",
    "IKEV2_VERSION",
    "Header",
    "parse_header",
]

HEADER_LEN = 28
IKEV2_VERSION = 0x20  # major 2, minor 0 (RFC 7296 §3.1)
FLAG_INITIATOR = 0x08
FLAG_VERSION = 0x10
FLAG_RESPONSE = 0x20

# SPIi(8) SPIr(8) Next Payload(1) MjVer|MnVer(1) Exchange Type(1) Flags(1) Message ID(4) Length(4)
HEADER = struct.Struct("!8s8sBBBBII")
_unpack_header = HEADER.unpack_from


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded IKE header; `flags` and `version` are kept raw (RFC 7296 §3.1)."""

    spi_i: bytes
    spi_r: bytes
    next_payload: int
    version: int
    exchange: int
    flags: int
    message_id: int
    length: int

    @property
    def is_response(self) -> bool:
        """R flag (0x20)."""
        return bool(self.flags & FLAG_RESPONSE)

    @property
    def is_initiator(self) -> bool:
        """I flag (0x08): sent by the original initiator (RFC 7296 §3.1)."""
        return bool(self.flags & FLAG_INITIATOR)

    @property
    def major(self) -> int:
        return self.version >> 4

    @property
    def minor(self) -> int:
        return self.version & 0x0F

    def pack(self) -> bytes:
        """The 28 header octets (RFC 7296 §3.1)."""
        return HEADER.pack(
            self.spi_i,
            self.spi_r,
            self.next_payload,
            self.version,
            self.exchange,
            self.flags,
            self.message_id,
            self.length,
        )


_new_header = fast_constructor(Header)


def parse_header(data: bytes | memoryview) -> Header:
    """Decode and sanity-check the IKE header of a whole datagram (RFC 7296 §3.1, §2.5).

    DropMessage: fewer than 28 octets, Length field != len(data) (7296-01), or a major
    version below 2 (IKEv1 and older get no IKEv2 answer). InvalidMajorVersion (with the
    decoded header as `.header`, so the core can answer it, 7296-81): major version > 2.
    The minor version, unknown flag bits and unknown exchange types are not judged here.
    """
    n = len(data)
    if n < HEADER_LEN:
        raise DropMessage(f"IKE header: datagram of {n} octets is shorter than 28")
    spi_i, spi_r, nxt, version, exchange, flags, mid, length = _unpack_header(data)
    if length != n:
        raise DropMessage(f"IKE header: Length field {length} != datagram length {n}")
    hdr = _new_header(spi_i, spi_r, nxt, version, exchange, flags, mid, length)
    major = version >> 4
    if major != 2:
        if major > 2:
            err = InvalidMajorVersion(f"IKE header: major version {major} > 2")
            err.header = hdr
            raise err
        raise DropMessage(f"IKE header: major version {major} < 2 (not IKEv2)")
    return hdr
