"""IKEv2 payloads as frozen values (RFC 7296 §3.2-§3.16, RFC 7383 §2.5).

Every class carries `TYPE` (its Payload Type code). Fields hold wire values as plain ints
and bytes so the codec builds them without lookups; compare them with the IntEnums of
`ikev2.protocol.enums`. `Unknown` keeps a non-critical payload of a type this
implementation does not support; its `type` field is the real code (`TYPE` is NONE).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeAlias, TypeVar

from ikev2.protocol.enums import PayloadType
from ikev2.protocol.ts import TrafficSelector

__all__ = [
    "AF_TV",
    "AUTH",
    "CERT",
    "CERTREQ",
    "CP",
    "EAP",
    "KE",
    "PAYLOAD_CLASSES",
    "SA",
    "SK",
    "SKF",
    "Delete",
    "IDi",
    "IDr",
    "Nonce",
    "Notify",
    "Payload",
    "Proposal",
    "TSi",
    "TSr",
    "Transform",
    "Unknown",
    "VendorId",
    "fast_constructor",
]

_C = TypeVar("_C")


def fast_constructor(cls: type[_C]) -> Callable[..., _C]:
    """A positional constructor for a frozen slotted dataclass that sets the slots
    directly instead of going through the generated frozen __init__ (about 2x faster;
    the parser's hot path). Equality, hashing and repr are those of the class."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    ns: dict[str, Any] = {"new": object.__new__, "cls": cls}
    body = []
    for i, name in enumerate(names):
        ns[f"set{i}"] = getattr(cls, name).__set__
        body.append(f"    set{i}(x, {name})\n")
    src = f"def make({', '.join(names)}):\n    x = new(cls)\n{''.join(body)}    return x\n"
    exec(src, ns)
    make: Callable[..., _C] = ns["make"]
    make.__qualname__ = make.__name__ = f"make_{cls.__name__}"
    return make


AF_TV = 0x8000  # Attribute Format bit of a transform attribute: TV (RFC 7296 §3.3.5)


@dataclass(frozen=True, slots=True)
class Transform:
    """Transform substructure (RFC 7296 §3.3.2).

    key_length: the Key Length attribute (TV type 14, in bits), if present.
    attrs: every other attribute, raw: (the 16-bit Attribute Type field *including* the AF
    bit 0x8000, value). A TV attribute's value is exactly 2 octets. A transform with
    anything in attrs is unacceptable to a negotiator (7296-12), but it round-trips.
    """

    type: int
    id: int
    key_length: int | None = None
    attrs: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Proposal:
    """Proposal substructure (RFC 7296 §3.3.1); the SPI size is len(spi)."""

    num: int
    protocol: int
    spi: bytes
    transforms: tuple[Transform, ...]


@dataclass(frozen=True, slots=True)
class SA:
    """Security Association payload (RFC 7296 §3.3)."""

    TYPE: ClassVar[PayloadType] = PayloadType.SA
    proposals: tuple[Proposal, ...]


@dataclass(frozen=True, slots=True)
class KE:
    """Key Exchange payload (RFC 7296 §3.4)."""

    TYPE: ClassVar[PayloadType] = PayloadType.KE
    group: int
    data: bytes


@dataclass(frozen=True, slots=True)
class IDi:
    """Identification - Initiator (RFC 7296 §3.5)."""

    TYPE: ClassVar[PayloadType] = PayloadType.IDI
    id_type: int
    data: bytes

    def rest(self) -> bytes:
        """RestOfInitIDPayload: the body AUTH signs (RFC 7296 §2.15)."""
        return bytes((self.id_type, 0, 0, 0)) + self.data


@dataclass(frozen=True, slots=True)
class IDr:
    """Identification - Responder (RFC 7296 §3.5)."""

    TYPE: ClassVar[PayloadType] = PayloadType.IDR
    id_type: int
    data: bytes

    def rest(self) -> bytes:
        """RestOfRespIDPayload: the body AUTH signs (RFC 7296 §2.15)."""
        return bytes((self.id_type, 0, 0, 0)) + self.data


@dataclass(frozen=True, slots=True)
class CERT:
    """Certificate payload (RFC 7296 §3.6)."""

    TYPE: ClassVar[PayloadType] = PayloadType.CERT
    encoding: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CERTREQ:
    """Certificate Request payload (RFC 7296 §3.7)."""

    TYPE: ClassVar[PayloadType] = PayloadType.CERTREQ
    encoding: int
    data: bytes


@dataclass(frozen=True, slots=True)
class AUTH:
    """Authentication payload (RFC 7296 §3.8)."""

    TYPE: ClassVar[PayloadType] = PayloadType.AUTH
    method: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Nonce:
    """Nonce payload, 16..256 octets (RFC 7296 §3.9)."""

    TYPE: ClassVar[PayloadType] = PayloadType.NONCE
    data: bytes


@dataclass(frozen=True, slots=True)
class Notify:
    """Notify payload (RFC 7296 §3.10); SPI size is len(spi)."""

    TYPE: ClassVar[PayloadType] = PayloadType.NOTIFY
    protocol: int
    type: int
    spi: bytes = b""
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete payload (RFC 7296 §3.11); SPI size 0 for IKE, 4 for AH/ESP (7296-19)."""

    TYPE: ClassVar[PayloadType] = PayloadType.DELETE
    protocol: int
    spis: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class VendorId:
    """Vendor ID payload (RFC 7296 §3.12)."""

    TYPE: ClassVar[PayloadType] = PayloadType.VENDOR
    data: bytes


@dataclass(frozen=True, slots=True)
class TSi:
    """Traffic Selector - Initiator (RFC 7296 §3.13)."""

    TYPE: ClassVar[PayloadType] = PayloadType.TSI
    selectors: tuple[TrafficSelector, ...]


@dataclass(frozen=True, slots=True)
class TSr:
    """Traffic Selector - Responder (RFC 7296 §3.13)."""

    TYPE: ClassVar[PayloadType] = PayloadType.TSR
    selectors: tuple[TrafficSelector, ...]


@dataclass(frozen=True, slots=True)
class CP:
    """Configuration payload (RFC 7296 §3.15); attributes are (type without the R bit, value)."""

    TYPE: ClassVar[PayloadType] = PayloadType.CP
    cfg_type: int
    attributes: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class EAP:
    """EAP payload: one whole EAP message (RFC 7296 §3.16)."""

    TYPE: ClassVar[PayloadType] = PayloadType.EAP
    data: bytes


@dataclass(frozen=True, slots=True)
class SK:
    """Encrypted and Authenticated payload, still sealed (RFC 7296 §3.14).

    next_type: the type of the first inner payload; data: IV | ciphertext | ICV.
    """

    TYPE: ClassVar[PayloadType] = PayloadType.SK
    next_type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SKF:
    """Encrypted and Authenticated Fragment (RFC 7383 §2.5).

    next_type: first inner payload type in fragment 1, 0 in the others. data: IV |
    ciphertext | ICV as received, or the plaintext content after `sk.unprotect_fragment`.
    """

    TYPE: ClassVar[PayloadType] = PayloadType.SKF
    next_type: int
    fragment_number: int
    total_fragments: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Unknown:
    """A payload of a type we do not support, kept for round trip (RFC 7296 §2.5, 7296-08)."""

    TYPE: ClassVar[PayloadType] = PayloadType.NONE
    type: int
    critical: bool
    data: bytes


Payload: TypeAlias = (
    SA | KE | IDi | IDr | CERT | CERTREQ | AUTH | Nonce | Notify | Delete | VendorId | TSi
    | TSr | CP | EAP | SK | SKF | Unknown
)

PAYLOAD_CLASSES: dict[int, type] = {
    cls.TYPE: cls
    for cls in (SA, KE, IDi, IDr, CERT, CERTREQ, AUTH, Nonce, Notify, Delete, VendorId, TSi,
                TSr, CP, EAP, SK, SKF)
}
