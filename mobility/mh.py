"""Mobility Header messages (RFC 6275 §6.1): values, `build_mh` and strict `parse_mh`.

Wire format of every message (§6.1.1):

    Payload Proto (59) | Header Len | MH Type | Reserved | Checksum (2) | Message Data

Header Len counts 8-octet units after the first 8 octets, so a Mobility Header is always a
multiple of 8 octets; options (mobility/options.py) fill the message data after the fixed
fields, padded to that boundary.

`parse_mh` follows RFC 6275 §9.2: length checks first (MhLengthError), then the checksum
when the pseudo-header addresses are given (MhChecksumError), then the MH type
(UnknownMhType: answer with a Binding Error, status 2 — see `binding_error_for`).
Reserved fields and Payload Proto are checked only with `strict=True` (the default; §6.1
tells receivers to ignore Reserved fields, so a receive path facing other implementations
passes `strict=False`). Flag bits without a name (BU/BA) are never an error: they are kept
in `flags` and written back unchanged.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from mobility.checksum import AddressLike, mh_checksum, with_checksum
from mobility.errors import (
    MhChecksumError,
    MhLengthError,
    MhReservedError,
    MhValueError,
    PayloadProtoError,
    UnknownMhType,
)
from mobility.options import (
    IPv6,
    MobilityOption,
    RawOption,
    _check_uint,
    decode_options,
    encode_options,
    v6,
)
from mobility.registry import (
    IPPROTO_NONE,
    LIFETIME_UNIT,
    MAX_LIFETIME_UNITS,
    BaFlags,
    BeStatus,
    BuFlags,
    MhType,
    is_accepted,
    status_of,
)

HEADER_LEN = 6  # Payload Proto .. Checksum
NO_BA_FLAGS = BaFlags(0)
UNSPECIFIED = IPv6("::")
MAX_MH_LEN = (0xFF + 1) * 8


def _check_options(options: tuple[MobilityOption, ...]) -> tuple[MobilityOption, ...]:
    options = tuple(options)
    for opt in options:
        if not hasattr(opt, "encode_data"):
            raise MhValueError(f"not a mobility option: {opt!r}")
    return options


def _check_cookie(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != 8:
        raise MhValueError(f"{name} must be 8 octets")


def lifetime_units(seconds: float) -> int:
    """Seconds → the 4-second units of the BU/BA Lifetime field, rounded down, capped at
    0xFFFF (RFC 6275 §6.1.7: 262140 s at most)."""
    if seconds < 0:
        raise MhValueError(f"a lifetime cannot be negative ({seconds})")
    return min(int(seconds // LIFETIME_UNIT), MAX_LIFETIME_UNITS)


# --- messages --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BindingRefreshRequest:
    """RFC 6275 §6.1.2: Reserved (16), options."""

    MH_TYPE: ClassVar[MhType] = MhType.BRR
    FIXED: ClassVar[int] = 2
    options: tuple[MobilityOption, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _check_options(self.options))

    def encode_fixed(self) -> bytes:
        return b"\x00\x00"

    @classmethod
    def decode(cls, d: bytes, options: tuple[MobilityOption, ...],
               strict: bool) -> BindingRefreshRequest:
        _reserved(strict, d[6:8], 6)
        return cls(options)


@dataclass(frozen=True, slots=True)
class _TestInit:
    """HoTI / CoTI (RFC 6275 §6.1.3-§6.1.4): Reserved (16), init cookie (64), options."""

    FIXED: ClassVar[int] = 10
    cookie: bytes
    options: tuple[MobilityOption, ...] = ()

    def __post_init__(self) -> None:
        _check_cookie("cookie", self.cookie)
        object.__setattr__(self, "options", _check_options(self.options))

    def encode_fixed(self) -> bytes:
        return b"\x00\x00" + self.cookie

    @classmethod
    def decode(cls, d: bytes, options: tuple[MobilityOption, ...], strict: bool) -> _TestInit:
        _reserved(strict, d[6:8], 6)
        return cls(bytes(d[8:16]), options)


@dataclass(frozen=True, slots=True)
class HomeTestInit(_TestInit):
    MH_TYPE: ClassVar[MhType] = MhType.HOTI


@dataclass(frozen=True, slots=True)
class CareOfTestInit(_TestInit):
    MH_TYPE: ClassVar[MhType] = MhType.COTI


@dataclass(frozen=True, slots=True)
class _Test:
    """HoT / CoT (RFC 6275 §6.1.5-§6.1.6): nonce index (16), init cookie (64), keygen token
    (64), options."""

    FIXED: ClassVar[int] = 18
    nonce_index: int
    cookie: bytes
    keygen_token: bytes
    options: tuple[MobilityOption, ...] = ()

    def __post_init__(self) -> None:
        _check_uint("nonce_index", self.nonce_index, 16)
        _check_cookie("cookie", self.cookie)
        _check_cookie("keygen_token", self.keygen_token)
        object.__setattr__(self, "options", _check_options(self.options))

    def encode_fixed(self) -> bytes:
        return struct.pack("!H", self.nonce_index) + self.cookie + self.keygen_token

    @classmethod
    def decode(cls, d: bytes, options: tuple[MobilityOption, ...], strict: bool) -> _Test:
        return cls(struct.unpack("!H", d[6:8])[0], bytes(d[8:16]), bytes(d[16:24]), options)


@dataclass(frozen=True, slots=True)
class HomeTest(_Test):
    MH_TYPE: ClassVar[MhType] = MhType.HOT


@dataclass(frozen=True, slots=True)
class CareOfTest(_Test):
    MH_TYPE: ClassVar[MhType] = MhType.COT


@dataclass(frozen=True, slots=True)
class BindingUpdate:
    """RFC 6275 §6.1.7: Sequence # (16), flags word A|H|L|K|... (16), Lifetime in 4-second
    units (16), options. `flags` keeps every bit, named or not."""

    MH_TYPE: ClassVar[MhType] = MhType.BU
    FIXED: ClassVar[int] = 6
    seq: int
    flags: BuFlags = BuFlags.A | BuFlags.H
    lifetime: int = 0
    options: tuple[MobilityOption, ...] = ()

    def __post_init__(self) -> None:
        _check_uint("seq", self.seq, 16)
        _check_uint("flags", int(self.flags), 16)
        _check_uint("lifetime", self.lifetime, 16)
        object.__setattr__(self, "flags", BuFlags(int(self.flags)))
        object.__setattr__(self, "options", _check_options(self.options))

    @property
    def ack(self) -> bool:
        return bool(self.flags & BuFlags.A)

    @property
    def home(self) -> bool:
        return bool(self.flags & BuFlags.H)

    @property
    def link_local(self) -> bool:
        return bool(self.flags & BuFlags.L)

    @property
    def key_mgmt(self) -> bool:
        """K: the IKE SA can follow the CoA (RFC 6275 §6.1.7, RFC 4877 §4.4)."""
        return bool(self.flags & BuFlags.K)

    @property
    def lifetime_seconds(self) -> int:
        return self.lifetime * LIFETIME_UNIT

    def encode_fixed(self) -> bytes:
        return struct.pack("!HHH", self.seq, int(self.flags), self.lifetime)

    @classmethod
    def decode(cls, d: bytes, options: tuple[MobilityOption, ...],
               strict: bool) -> BindingUpdate:
        seq, flags, lifetime = struct.unpack("!HHH", d[6:12])
        return cls(seq, BuFlags(flags), lifetime, options)


@dataclass(frozen=True, slots=True)
class BindingAck:
    """RFC 6275 §6.1.8: Status (8), flags K|... (8), Sequence # (16), Lifetime (16, 4-second
    units), options. `status` is a BaStatus when the value is known, else the plain int."""

    MH_TYPE: ClassVar[MhType] = MhType.BA
    FIXED: ClassVar[int] = 6
    status: int
    seq: int
    flags: BaFlags = NO_BA_FLAGS
    lifetime: int = 0
    options: tuple[MobilityOption, ...] = ()

    def __post_init__(self) -> None:
        _check_uint("status", int(self.status), 8)
        _check_uint("seq", self.seq, 16)
        _check_uint("flags", int(self.flags), 8)
        _check_uint("lifetime", self.lifetime, 16)
        object.__setattr__(self, "status", status_of(int(self.status)))
        object.__setattr__(self, "flags", BaFlags(int(self.flags)))
        object.__setattr__(self, "options", _check_options(self.options))

    @property
    def accepted(self) -> bool:
        return is_accepted(self.status)

    @property
    def key_mgmt(self) -> bool:
        return bool(self.flags & BaFlags.K)

    @property
    def lifetime_seconds(self) -> int:
        return self.lifetime * LIFETIME_UNIT

    def encode_fixed(self) -> bytes:
        return struct.pack("!BBHH", int(self.status), int(self.flags), self.seq, self.lifetime)

    @classmethod
    def decode(cls, d: bytes, options: tuple[MobilityOption, ...], strict: bool) -> BindingAck:
        status, flags, seq, lifetime = struct.unpack("!BBHH", d[6:12])
        return cls(status, seq, BaFlags(flags), lifetime, options)


@dataclass(frozen=True, slots=True)
class BindingError:
    """RFC 6275 §6.1.9: Status (8), Reserved (8), Home Address (128; the HAO address that
    caused it, or :: when none), options."""

    MH_TYPE: ClassVar[MhType] = MhType.BE
    FIXED: ClassVar[int] = 18
    status: int
    home_address: IPv6 = UNSPECIFIED
    options: tuple[MobilityOption, ...] = ()

    def __post_init__(self) -> None:
        _check_uint("status", int(self.status), 8)
        try:
            object.__setattr__(self, "status", BeStatus(int(self.status)))
        except ValueError:
            object.__setattr__(self, "status", int(self.status))
        object.__setattr__(self, "home_address", v6(self.home_address))
        object.__setattr__(self, "options", _check_options(self.options))

    def encode_fixed(self) -> bytes:
        return bytes([int(self.status), 0]) + self.home_address.packed

    @classmethod
    def decode(cls, d: bytes, options: tuple[MobilityOption, ...],
               strict: bool) -> BindingError:
        _reserved(strict, d[7:8], 7)
        return cls(d[6], IPv6(bytes(d[8:24])), options)


Message: TypeAlias = (
    BindingRefreshRequest | HomeTestInit | CareOfTestInit | HomeTest | CareOfTest
    | BindingUpdate | BindingAck | BindingError
)
MESSAGE_CLASSES: dict[MhType, type] = {
    cls.MH_TYPE: cls
    for cls in (BindingRefreshRequest, HomeTestInit, CareOfTestInit, HomeTest, CareOfTest,
                BindingUpdate, BindingAck, BindingError)
}


def min_length(mh_type: MhType) -> int:
    """The smallest MH of this type: fixed fields rounded up to 8 octets (§9.2 check)."""
    fixed = HEADER_LEN + MESSAGE_CLASSES[mh_type].FIXED  # type: ignore[attr-defined]
    return -(-fixed // 8) * 8


# --- build / parse ---------------------------------------------------------------------------
def build_mh(msg: Message, *, src: AddressLike | None = None,
             dst: AddressLike | None = None) -> bytes:
    """The Mobility Header for `msg`. With `src` and `dst` (the pseudo-header addresses,
    see mobility.checksum.checksum_addresses) the checksum is filled in; without them it
    is left 0 for a later layer to fill."""
    fixed = msg.encode_fixed()
    start = HEADER_LEN + len(fixed)
    opts = encode_options(msg.options, start)
    total = start + len(opts)
    if total > MAX_MH_LEN:
        raise MhValueError(f"Mobility Header of {total} octets exceeds {MAX_MH_LEN}")
    head = struct.pack("!BBBBH", IPPROTO_NONE, total // 8 - 1, int(msg.MH_TYPE), 0, 0)
    data = head + fixed + opts
    if (src is None) != (dst is None):
        raise MhValueError("give both src and dst for the checksum, or neither")
    return with_checksum(src, dst, data) if src is not None and dst is not None else data


def parse_mh(data: bytes, *, src: AddressLike | None = None, dst: AddressLike | None = None,
             strict: bool = True) -> Message:
    """Decode one Mobility Header occupying all of `data` (RFC 6275 §9.2 order of checks).
    With `src` and `dst` the checksum is verified."""
    data = bytes(data)
    if len(data) < 8:
        raise MhLengthError(f"a Mobility Header has at least 8 octets, got {len(data)}",
                            offset=1)
    payload_proto, hdr_len, mh_type = data[0], data[1], data[2]
    total = (hdr_len + 1) * 8
    if total != len(data):
        raise MhLengthError(
            f"Header Len {hdr_len} means {total} octets, but the message has {len(data)}",
            offset=1,
        )
    if src is not None and dst is not None:
        got = int.from_bytes(data[4:6], "big")
        expected = mh_checksum(src, dst, data)
        if got != expected:
            raise MhChecksumError(expected, got)
    if mh_type not in MESSAGE_CLASSES:
        raise UnknownMhType(mh_type)
    kind = MhType(mh_type)
    if total < min_length(kind):
        raise MhLengthError(
            f"{kind.name} needs at least {min_length(kind)} octets, Header Len {hdr_len} "
            f"gives {total}", offset=1,
        )
    if strict:
        if payload_proto != IPPROTO_NONE:
            raise PayloadProtoError(
                f"Payload Proto is {payload_proto}, must be {IPPROTO_NONE} (IPPROTO_NONE)",
                offset=0,
            )
        _reserved(True, data[3:4], 3, what="MH Reserved")
    cls = MESSAGE_CLASSES[kind]
    options = decode_options(data, HEADER_LEN + cls.FIXED, strict=strict)  # type: ignore[attr-defined]
    return cls.decode(data, options, strict)  # type: ignore[attr-defined]


def _reserved(strict: bool, field: bytes, offset: int, what: str = "Reserved") -> None:
    if strict and any(field):
        raise MhReservedError(f"{what} field at offset {offset} is not zero", offset=offset)


def binding_error_for(exc: UnknownMhType, home_address: AddressLike = "::") -> BindingError:
    """The Binding Error answering an unrecognized MH type (RFC 6275 §9.2: status 2, the
    Home Address option's address if the packet had one)."""
    return BindingError(BeStatus.UNRECOGNIZED_MH_TYPE, v6(home_address))


__all__ = [
    "MESSAGE_CLASSES",
    "BindingAck",
    "BindingError",
    "BindingRefreshRequest",
    "BindingUpdate",
    "CareOfTest",
    "CareOfTestInit",
    "HomeTest",
    "HomeTestInit",
    "Message",
    "RawOption",
    "binding_error_for",
    "build_mh",
    "lifetime_units",
    "min_length",
    "parse_mh",
]
