"""C structs as pyroute2 field types.

pyroute2's `nlmsg`/`nla` classes accept, in `fields`, either a `struct` format string or a
class with `decode_from(data, offset) -> (value, offset)` and `encode_into(data, offset,
value) -> offset` (`pyroute2.netlink.nlmsg_decoder_generic.ft_decode`). `CStruct` is such a
class built from a member list, so the uapi structs nest the way <linux/xfrm.h> nests them
(`xfrm_usersa_info.sel` is an `xfrm_selector`, ...). Padding is explicit ("3x" members),
integers are native-endian with standard sizes ("=I"), network-order fields use ">".
Values are plain dicts; a missing member encodes as zero.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from functools import lru_cache
from typing import Any, ClassVar

Member = tuple[str, "str | type[CStruct]"]


class CStruct:
    """Subclass with `members = ((name, fmt | CStruct subclass), ...)`; `size` is computed
    (and checked against `expected_size`, the uapi sizeof on x86-64, when given). The whole
    nested layout compiles to one `struct.Struct` (network-order members are byte-swapped
    into it), so packing a struct is one call whatever its depth."""

    members: ClassVar[tuple[Member, ...]] = ()
    expected_size: ClassVar[int | None] = None
    leaf: ClassVar[str | None] = None  # set: a nested use of this struct is one opaque field
    size: ClassVar[int] = 0
    _struct: ClassVar[struct.Struct] = struct.Struct("")
    _leaves: ClassVar[tuple[tuple[tuple[str, ...], Any, Any, Any], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        parts: list[str] = []
        leaves: list[tuple[tuple[str, ...], Any, Any, Any]] = []
        for path, fmt in cls._flatten(()):
            order, code = (fmt[0], fmt[1:]) if fmt[0] in "=<>!" else ("=", fmt)
            parts.append(code)
            if path is None:
                continue
            to_kernel = from_kernel = None
            if order in ">!":
                to_kernel, from_kernel = _SWAP[code]
            leaves.append((path, 0 if code[-1] not in "s" else b"", to_kernel, from_kernel))
        cls._struct = struct.Struct("=" + "".join(parts))
        cls._leaves = tuple(leaves)
        cls.size = cls._struct.size
        if cls.expected_size is not None and cls.size != cls.expected_size:
            raise TypeError(f"{cls.__name__}: {cls.size} octets, uapi says {cls.expected_size}")

    @classmethod
    def _flatten(cls, prefix: tuple[str, ...]) -> Any:
        for name, fmt in cls.members:
            if isinstance(fmt, str):
                yield (None if name.startswith("_") else (*prefix, name)), fmt
            elif fmt.leaf is not None:
                yield (*prefix, name), fmt.leaf
            else:
                yield from fmt._flatten((*prefix, name))

    @classmethod
    def decode_from(cls, data: bytes | bytearray, offset: int = 0) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        values = cls._struct.unpack_from(data, offset)
        for (path, _default, _to, from_kernel), v in zip(cls._leaves, values, strict=True):
            node = out
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = from_kernel(v) if from_kernel is not None else v
        return out, offset + cls.size

    @classmethod
    def encode_into(cls, data: bytearray, offset: int, value: dict[str, Any] | None) -> int:
        """Append `size` octets at `offset` (pyroute2 grows `data` as it goes)."""
        if len(data) < offset + cls.size:
            data.extend(b"\0" * (offset + cls.size - len(data)))
        cls.pack_into(data, offset, value or {})
        return offset + cls.size

    @classmethod
    def pack_into(cls, data: bytearray, offset: int, value: dict[str, Any]) -> None:
        get = dict.get  # also on pyroute2 messages, whose own get() is a slow tree walk
        values = []
        for path, default, to_kernel, _from in cls._leaves:
            v: Any = value
            for key in path:
                v = get(v, key) if isinstance(v, dict) else None
            if v is None or isinstance(v, dict):
                v = default
            values.append(to_kernel(v) if to_kernel is not None else v)
        cls._struct.pack_into(data, offset, *values)

    @classmethod
    def pack(cls, value: dict[str, Any]) -> bytes:
        buf = bytearray(cls.size)
        cls.pack_into(buf, 0, value)
        return bytes(buf)

    @classmethod
    def unpack(cls, data: bytes | bytearray, offset: int = 0) -> dict[str, Any]:
        return cls.decode_from(data, offset)[0]


# network-order members inside the native-order struct: swap on the way in and out
_SWAP = {
    "H": (socket.htons, socket.ntohs),
    "I": (socket.htonl, socket.ntohl),
}


# --- xfrm_address_t: 16 octets, an IPv4 address in the first 4 ---------------------------
@lru_cache(maxsize=4096)
def pack_addr(address: str | None) -> bytes:
    """'2001:db8::1' / '192.0.2.1' / None → the 16-octet xfrm_address_t."""
    if not address:
        return b"\0" * 16
    return ipaddress.ip_address(address).packed.ljust(16, b"\0")


def unpack_addr(raw: bytes, family: int) -> str:
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(bytes(raw[:4])))
    return str(ipaddress.IPv6Address(bytes(raw[:16])))


def family_of(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET
