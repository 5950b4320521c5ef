"""Mobility options (RFC 6275 §6.2, RFC 5555 §3.1-§3.2, RFC 5648 §6.1): values, encoding
with the alignment rules, strict decoding.

Pad1/PadN are an encoding detail: `encode_options` inserts them so that every option's
Type octet sits at its `xn+y` alignment (RFC 6275 §6.2, measured from the start of the
Mobility Header, as for IPv6 options in RFC 8200 §4.2) and the whole header ends on a
multiple of 8 octets; `decode_options` skips them. Options of types this module does not
decode are kept as RawOption (RFC 6275 §6.2.1: unrecognized options are skipped, so the
receiver must not fail on them) and re-encoded byte for byte.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Any, ClassVar, TypeAlias

from mobility.errors import MhReservedError, MhValueError, OptionError
from mobility.registry import BidFlags, OptionType, status_of

IPv6 = ipaddress.IPv6Address
IPv4 = ipaddress.IPv4Address
NO_BID_FLAGS = BidFlags(0)


def v6(value: object) -> IPv6:
    """An IPv6Address from a str/bytes/IPv6Address (MhValueError otherwise)."""
    if isinstance(value, IPv6):
        return value
    try:
        return IPv6(value)
    except (ValueError, TypeError) as exc:
        raise MhValueError(f"not an IPv6 address: {value!r}") from exc


def any_ip(value: object) -> IPv4 | IPv6:
    """An IPv4Address or IPv6Address (for care-of addresses, which DSMIPv6 allows in v4)."""
    if isinstance(value, IPv4 | IPv6):
        return value
    try:
        return ipaddress.ip_address(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise MhValueError(f"not an IP address: {value!r}") from exc


def _check_uint(name: str, value: int, bits: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise MhValueError(f"{name} must be an integer 0-{(1 << bits) - 1}, not {value!r}")


def _expect_len(cls: type, data: bytes, lengths: tuple[int, ...], offset: int) -> None:
    if len(data) not in lengths:
        want = " or ".join(str(n) for n in lengths)
        raise OptionError(
            f"{cls.__name__} option has Length {len(data)}, must be {want}",
            option_type=int(cls.TYPE), offset=offset + 1,  # type: ignore[attr-defined]
        )


@dataclass(frozen=True, slots=True)
class BindingRefreshAdvice:
    """RFC 6275 §6.2.4: when to refresh, in units of 4 seconds. Alignment 2n."""

    TYPE: ClassVar[OptionType] = OptionType.BINDING_REFRESH_ADVICE
    refresh_interval: int

    def __post_init__(self) -> None:
        _check_uint("refresh_interval", self.refresh_interval, 16)

    def alignment(self) -> tuple[int, int]:
        return 2, 0

    def encode_data(self) -> bytes:
        return struct.pack("!H", self.refresh_interval)

    @classmethod
    def decode_data(cls, data: bytes, offset: int, strict: bool) -> BindingRefreshAdvice:
        _expect_len(cls, data, (2,), offset)
        return cls(struct.unpack("!H", data)[0])


@dataclass(frozen=True, slots=True)
class AlternateCareOfAddress:
    """RFC 6275 §6.2.5: the CoA to register instead of the packet's source. Alignment 8n+6."""

    TYPE: ClassVar[OptionType] = OptionType.ALTERNATE_COA
    address: IPv6

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", v6(self.address))

    def alignment(self) -> tuple[int, int]:
        return 8, 6

    def encode_data(self) -> bytes:
        return self.address.packed

    @classmethod
    def decode_data(cls, data: bytes, offset: int, strict: bool) -> AlternateCareOfAddress:
        _expect_len(cls, data, (16,), offset)
        return cls(IPv6(data))


@dataclass(frozen=True, slots=True)
class NonceIndices:
    """RFC 6275 §6.2.6: home and care-of nonce indices (return routability). Alignment 2n."""

    TYPE: ClassVar[OptionType] = OptionType.NONCE_INDICES
    home_nonce_index: int
    care_of_nonce_index: int

    def __post_init__(self) -> None:
        _check_uint("home_nonce_index", self.home_nonce_index, 16)
        _check_uint("care_of_nonce_index", self.care_of_nonce_index, 16)

    def alignment(self) -> tuple[int, int]:
        return 2, 0

    def encode_data(self) -> bytes:
        return struct.pack("!HH", self.home_nonce_index, self.care_of_nonce_index)

    @classmethod
    def decode_data(cls, data: bytes, offset: int, strict: bool) -> NonceIndices:
        _expect_len(cls, data, (4,), offset)
        return cls(*struct.unpack("!HH", data))


@dataclass(frozen=True, slots=True)
class BindingAuthorizationData:
    """RFC 6275 §6.2.7: the authenticator (96 bits from HMAC-SHA1 in RFC 6275 §5.2.6; any
    length up to 255 is carried). Alignment 8n+2."""

    TYPE: ClassVar[OptionType] = OptionType.BINDING_AUTHORIZATION_DATA
    authenticator: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.authenticator, bytes) or len(self.authenticator) > 255:
            raise MhValueError("authenticator must be at most 255 octets")

    def alignment(self) -> tuple[int, int]:
        return 8, 2

    def encode_data(self) -> bytes:
        return self.authenticator

    @classmethod
    def decode_data(cls, data: bytes, offset: int, strict: bool) -> BindingAuthorizationData:
        return cls(bytes(data))


@dataclass(frozen=True, slots=True)
class NatDetection:
    """RFC 5555 §3.2.2 (BA from the HA): F = UDP encapsulation required, 15 reserved bits,
    refresh time in seconds for keepalives. Alignment 4n."""

    TYPE: ClassVar[OptionType] = OptionType.NAT_DETECTION
    udp_encapsulation_required: bool
    refresh_time: int

    def __post_init__(self) -> None:
        _check_uint("refresh_time", self.refresh_time, 32)

    def alignment(self) -> tuple[int, int]:
        return 4, 0

    def encode_data(self) -> bytes:
        return struct.pack("!HI", 0x8000 if self.udp_encapsulation_required else 0,
                           self.refresh_time)

    @classmethod
    def decode_data(cls, data: bytes, offset: int, strict: bool) -> NatDetection:
        _expect_len(cls, data, (6,), offset)
        word, refresh = struct.unpack("!HI", data)
        if strict and word & 0x7FFF:
            raise MhReservedError("NAT Detection option: Reserved bits are not zero",
                                  offset=offset + 2)
        return cls(bool(word & 0x8000), refresh)


@dataclass(frozen=True, slots=True)
class Ipv4CareOfAddress:
    """RFC 5555 §3.1.3: the IPv4 care-of address (BU over IPv4). Alignment 4n."""

    TYPE: ClassVar[OptionType] = OptionType.IPV4_CARE_OF_ADDRESS
    address: IPv4

    def __post_init__(self) -> None:
        try:
            addr = self.address if isinstance(self.address, IPv4) else IPv4(self.address)
        except (ValueError, TypeError) as exc:
            raise MhValueError(f"not an IPv4 address: {self.address!r}") from exc
        object.__setattr__(self, "address", addr)

    def alignment(self) -> tuple[int, int]:
        return 4, 0

    def encode_data(self) -> bytes:
        return b"\x00\x00" + self.address.packed

    @classmethod
    def decode_data(cls, data: bytes, offset: int, strict: bool) -> Ipv4CareOfAddress:
        _expect_len(cls, data, (6,), offset)
        if strict and data[:2] != b"\x00\x00":
            raise MhReservedError("IPv4 Care-of Address option: Reserved is not zero",
                                  offset=offset + 2)
        return cls(IPv4(data[2:]))


@dataclass(frozen=True, slots=True)
class BindingIdentifier:
    """RFC 5648 §6.1: Binding ID, Status (BA only; 0 elsewhere), flags octet (H = 0x80;
    the other 7 bits are reserved in RFC 5648 and BID-PRI in RFC 6089, kept as they are),
    and an optional IPv4 or IPv6 care-of address (bulk registration).

    Alignment [M: RFC 5648 §6.1 not re-read]: chosen so the CoA field is naturally
    aligned: 8n+2 with an IPv6 CoA, 4n+2 with an IPv4 CoA, 2n without one."""

    TYPE: ClassVar[OptionType] = OptionType.BINDING_IDENTIFIER
    bid: int
    status: int = 0
    flags: BidFlags = NO_BID_FLAGS
    coa: IPv4 | IPv6 | None = None

    def __post_init__(self) -> None:
        _check_uint("bid", self.bid, 16)
        _check_uint("status", int(self.status), 8)
        _check_uint("flags", int(self.flags), 8)
        object.__setattr__(self, "status", status_of(int(self.status)))
        object.__setattr__(self, "flags", BidFlags(int(self.flags)))
        if self.coa is not None:
            object.__setattr__(self, "coa", any_ip(self.coa))

    @property
    def simultaneous_home_and_foreign(self) -> bool:
        return bool(self.flags & BidFlags.H)

    @property
    def priority(self) -> int:
        """BID-PRI (RFC 6089), the low 7 bits of the flags octet; 0 = none."""
        return int(self.flags) & 0x7F

    def alignment(self) -> tuple[int, int]:
        if self.coa is None:
            return 2, 0
        return (4, 2) if self.coa.version == 4 else (8, 2)

    def encode_data(self) -> bytes:
        head = struct.pack("!HBB", self.bid, int(self.status), int(self.flags))
        return head + (self.coa.packed if self.coa is not None else b"")

    @classmethod
    def decode_data(cls, data: bytes, offset: int, strict: bool) -> BindingIdentifier:
        _expect_len(cls, data, (4, 8, 20), offset)
        bid, status, flags = struct.unpack("!HBB", data[:4])
        coa = ipaddress.ip_address(bytes(data[4:])) if len(data) > 4 else None
        return cls(bid, status, BidFlags(flags), coa)


@dataclass(frozen=True, slots=True)
class RawOption:
    """An option of a type not decoded here, kept as it came (RFC 6275 §6.2.1)."""

    option_type: int
    data: bytes
    TYPE: ClassVar[None] = None

    def __post_init__(self) -> None:
        _check_uint("option_type", self.option_type, 8)
        if self.option_type in _DECODED_TYPES:
            raise MhValueError(
                f"option type {self.option_type} has its own class "
                f"({OptionType(self.option_type).name}); padding is added by the encoder"
            )
        if not isinstance(self.data, bytes) or len(self.data) > 255:
            raise MhValueError("option data must be at most 255 octets")

    def alignment(self) -> tuple[int, int]:
        return 1, 0

    def encode_data(self) -> bytes:
        return self.data


MobilityOption: TypeAlias = (
    BindingRefreshAdvice | AlternateCareOfAddress | NonceIndices | BindingAuthorizationData
    | NatDetection | Ipv4CareOfAddress | BindingIdentifier | RawOption
)

_DECODERS: dict[int, Any] = {
    cls.TYPE: cls
    for cls in (BindingRefreshAdvice, AlternateCareOfAddress, NonceIndices,
                BindingAuthorizationData, NatDetection, Ipv4CareOfAddress, BindingIdentifier)
}
_DECODED_TYPES = frozenset(_DECODERS) | {OptionType.PAD1, OptionType.PADN}


def padding(n: int) -> bytes:
    """n octets of padding: nothing, Pad1, or PadN with n-2 zero octets (RFC 6275 §6.2.2)."""
    if n == 0:
        return b""
    if n == 1:
        return bytes([OptionType.PAD1])
    return bytes([OptionType.PADN, n - 2]) + bytes(n - 2)


def encode_options(options: tuple[MobilityOption, ...], start: int) -> bytes:
    """Options placed at MH offset `start`: each Type octet at its alignment, then padding
    to the next multiple of 8 (the MH length unit)."""
    out = bytearray()
    for opt in options:
        x, y = opt.alignment()
        out += padding((y - (start + len(out))) % x)
        data = opt.encode_data()
        opt_type = opt.option_type if isinstance(opt, RawOption) else int(opt.TYPE)
        out += bytes([opt_type, len(data)]) + data
    out += padding(-(start + len(out)) % 8)
    return bytes(out)


def decode_options(data: bytes, start: int, *, strict: bool) -> tuple[MobilityOption, ...]:
    """Options from MH offset `start` to the end of `data` (the whole MH)."""
    out: list[MobilityOption] = []
    i, end = start, len(data)
    while i < end:
        opt_type = data[i]
        if opt_type == OptionType.PAD1:
            i += 1
            continue
        if i + 2 > end:
            raise OptionError(f"option type {opt_type} at offset {i}: no Length octet",
                              option_type=opt_type, offset=i)
        length = data[i + 1]
        if i + 2 + length > end:
            raise OptionError(
                f"option type {opt_type} at offset {i}: Length {length} runs past the end "
                f"of the Mobility Header ({end} octets)", option_type=opt_type, offset=i + 1,
            )
        body = data[i + 2:i + 2 + length]
        if opt_type == OptionType.PADN:
            if strict and any(body):
                raise MhReservedError(f"PadN at offset {i} carries non-zero octets",
                                      offset=i + 2)
        else:
            cls = _DECODERS.get(opt_type)
            out.append(cls.decode_data(body, i, strict) if cls else RawOption(opt_type, body))
        i += 2 + length
    return tuple(out)
