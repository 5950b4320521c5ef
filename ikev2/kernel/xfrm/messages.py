"""XFRM netlink messages declared on pyroute2's `nlmsg`/`nla` framework.

pyroute2 (0.9) ships only the NETLINK_XFRM number. Each message here is pyroute2's nlmsg
header and NLA chain around one uapi struct (structs.py) as its body; the XFRMA_* attributes
are `nla` classes whose payloads are structs too, or algorithm/replay records with a
variable tail.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

from pyroute2.netlink import NotInitialized, nla, nlmsg

from ikev2.kernel.xfrm.consts import XfrmAttr, XfrmMsg
from ikev2.kernel.xfrm.cstruct import CStruct
from ikev2.kernel.xfrm.structs import (
    Address,
    EncapTmpl,
    LifetimeCur,
    Mark,
    ReplayState,
    ReplayStateEsn,
    UserAcquire,
    UserExpire,
    UserKmAddress,
    UserMapping,
    UserMigrate,
    UserPolExpire,
    UserPolicyId,
    UserPolicyInfo,
    UserPolicyType,
    UserSaFlush,
    UserSaId,
    UserSaInfo,
    UserSpiInfo,
    UserTmpl,
)

# --- attributes ---------------------------------------------------------------------------


class _struct_nla(nla):
    """An NLA whose payload is one CStruct (`body`); the value is the struct's dict."""

    __slots__ = ()
    body: ClassVar[type[CStruct]] = CStruct

    def ft_encode(self, offset: int) -> tuple[int, int]:
        value = self.value if self.value is not NotInitialized else dict(self)
        offset = self.body.encode_into(self.data, offset, value)
        diff = self._pad_to_align(offset)
        return offset + diff, diff

    def ft_decode(self, offset: int) -> None:
        value, _ = self.body.decode_from(self.data, offset)
        self.value = value
        self.pop("attrs", None)
        self.pop("value", None)

    def _pad_to_align(self, offset: int) -> int:
        diff = ((offset + 3) & ~3) - offset
        self.data.extend(b"\0" * diff)
        return diff


class _array_nla(_struct_nla):
    """An NLA carrying back-to-back structs (XFRMA_TMPL, XFRMA_MIGRATE): value is a list."""

    __slots__ = ()

    def ft_encode(self, offset: int) -> tuple[int, int]:
        for item in self.value or ():
            offset = self.body.encode_into(self.data, offset, item)
        diff = self._pad_to_align(offset)
        return offset + diff, diff

    def ft_decode(self, offset: int) -> None:
        end = self.offset + self.length
        items = []
        while offset + self.body.size <= end:
            item, offset = self.body.decode_from(self.data, offset)
            items.append(item)
        self.value = items
        self.pop("attrs", None)
        self.pop("value", None)


class _algo_nla(nla):
    """xfrm_algo / xfrm_algo_auth / xfrm_algo_aead: fixed head, then alg_key[]."""

    __slots__ = ()
    head: ClassVar[struct.Struct] = struct.Struct("=64sI")
    head_names: ClassVar[tuple[str, ...]] = ("alg_name", "alg_key_len")

    def ft_encode(self, offset: int) -> tuple[int, int]:
        v = self.value if self.value is not NotInitialized else dict(self)
        name = v["alg_name"]
        if isinstance(name, str):
            name = name.encode()
        key = bytes(v.get("alg_key", b""))
        values = [name, *(v.get(n, 0) for n in self.head_names[1:])]
        if not v.get("alg_key_len"):
            values[1] = len(key) * 8
        chunk = self.head.pack(*values) + key
        self.data.extend(chunk)
        offset += len(chunk)
        diff = ((offset + 3) & ~3) - offset
        self.data.extend(b"\0" * diff)
        return offset + diff, diff

    def ft_decode(self, offset: int) -> None:
        values = self.head.unpack_from(self.data, offset)
        out: dict[str, Any] = dict(zip(self.head_names, values, strict=True))
        out["alg_name"] = out["alg_name"].rstrip(b"\0").decode("ascii", "replace")
        start = offset + self.head.size
        out["alg_key"] = bytes(self.data[start : start + (out["alg_key_len"] + 7) // 8])
        self.value = out
        self.pop("attrs", None)
        self.pop("value", None)


class _xfrm_attrs:
    """The NLA table shared by every XFRM message (enum xfrm_attr_type_t)."""

    nla_map = (
        (XfrmAttr.UNSPEC, "XFRMA_UNSPEC", "none"),
        (XfrmAttr.ALG_AUTH, "XFRMA_ALG_AUTH", "xfrm_algo"),
        (XfrmAttr.ALG_CRYPT, "XFRMA_ALG_CRYPT", "xfrm_algo"),
        (XfrmAttr.ALG_COMP, "XFRMA_ALG_COMP", "xfrm_algo"),
        (XfrmAttr.ENCAP, "XFRMA_ENCAP", "xfrm_encap_tmpl"),
        (XfrmAttr.TMPL, "XFRMA_TMPL", "xfrm_user_tmpl"),
        (XfrmAttr.SA, "XFRMA_SA", "xfrm_usersa_info"),
        (XfrmAttr.POLICY, "XFRMA_POLICY", "xfrm_userpolicy_info"),
        (XfrmAttr.SEC_CTX, "XFRMA_SEC_CTX", "hex"),
        (XfrmAttr.LTIME_VAL, "XFRMA_LTIME_VAL", "xfrm_lifetime_cur"),
        (XfrmAttr.REPLAY_VAL, "XFRMA_REPLAY_VAL", "xfrm_replay_state"),
        (XfrmAttr.REPLAY_THRESH, "XFRMA_REPLAY_THRESH", "uint32"),
        (XfrmAttr.ETIMER_THRESH, "XFRMA_ETIMER_THRESH", "uint32"),
        (XfrmAttr.SRCADDR, "XFRMA_SRCADDR", "xfrm_address"),
        (XfrmAttr.COADDR, "XFRMA_COADDR", "xfrm_address"),
        (XfrmAttr.LASTUSED, "XFRMA_LASTUSED", "uint64"),
        (XfrmAttr.POLICY_TYPE, "XFRMA_POLICY_TYPE", "xfrm_userpolicy_type"),
        (XfrmAttr.MIGRATE, "XFRMA_MIGRATE", "xfrm_user_migrate"),
        (XfrmAttr.ALG_AEAD, "XFRMA_ALG_AEAD", "xfrm_algo_aead"),
        (XfrmAttr.KMADDRESS, "XFRMA_KMADDRESS", "xfrm_user_kmaddress"),
        (XfrmAttr.ALG_AUTH_TRUNC, "XFRMA_ALG_AUTH_TRUNC", "xfrm_algo_auth"),
        (XfrmAttr.MARK, "XFRMA_MARK", "xfrm_mark"),
        (XfrmAttr.TFCPAD, "XFRMA_TFCPAD", "uint32"),
        (XfrmAttr.REPLAY_ESN_VAL, "XFRMA_REPLAY_ESN_VAL", "xfrm_replay_state_esn"),
        (XfrmAttr.SA_EXTRA_FLAGS, "XFRMA_SA_EXTRA_FLAGS", "uint32"),
        (XfrmAttr.PROTO, "XFRMA_PROTO", "uint8"),
        (XfrmAttr.ADDRESS_FILTER, "XFRMA_ADDRESS_FILTER", "hex"),
        (XfrmAttr.PAD, "XFRMA_PAD", "none"),
        (XfrmAttr.OFFLOAD_DEV, "XFRMA_OFFLOAD_DEV", "hex"),
        (XfrmAttr.SET_MARK, "XFRMA_SET_MARK", "uint32"),
        (XfrmAttr.SET_MARK_MASK, "XFRMA_SET_MARK_MASK", "uint32"),
        (XfrmAttr.IF_ID, "XFRMA_IF_ID", "uint32"),
        (XfrmAttr.MTIMER_THRESH, "XFRMA_MTIMER_THRESH", "uint32"),
        (XfrmAttr.SA_DIR, "XFRMA_SA_DIR", "uint8"),
    )

    class xfrm_algo(_algo_nla):
        __slots__ = ()

    class xfrm_algo_auth(_algo_nla):
        __slots__ = ()
        head = struct.Struct("=64sII")
        head_names = ("alg_name", "alg_key_len", "alg_trunc_len")

    class xfrm_algo_aead(_algo_nla):
        __slots__ = ()
        head = struct.Struct("=64sII")
        head_names = ("alg_name", "alg_key_len", "alg_icv_len")

    class xfrm_encap_tmpl(_struct_nla):
        __slots__ = ()
        body = EncapTmpl

    class xfrm_user_tmpl(_array_nla):
        __slots__ = ()
        body = UserTmpl

    class xfrm_user_migrate(_array_nla):
        __slots__ = ()
        body = UserMigrate

    class xfrm_usersa_info(_struct_nla):
        __slots__ = ()
        body = UserSaInfo

    class xfrm_userpolicy_info(_struct_nla):
        __slots__ = ()
        body = UserPolicyInfo

    class xfrm_lifetime_cur(_struct_nla):
        __slots__ = ()
        body = LifetimeCur

    class xfrm_replay_state(_struct_nla):
        __slots__ = ()
        body = ReplayState

    class xfrm_address(_struct_nla):
        __slots__ = ()
        body = Address

    class xfrm_userpolicy_type(_struct_nla):
        __slots__ = ()
        body = UserPolicyType

    class xfrm_user_kmaddress(_struct_nla):
        __slots__ = ()
        body = UserKmAddress

    class xfrm_mark(_struct_nla):
        __slots__ = ()
        body = Mark

    class xfrm_replay_state_esn(_struct_nla):
        """Head plus `bmp_len` u32 bitmap words, value['bmp'] a tuple of ints."""

        __slots__ = ()
        body = ReplayStateEsn

        def ft_encode(self, offset: int) -> tuple[int, int]:
            value = dict(self.value if self.value is not NotInitialized else self)
            bmp = tuple(value.get("bmp") or ())
            words = max(len(bmp), (int(value.get("replay_window", 0)) + 31) // 32)
            bmp = bmp + (0,) * (words - len(bmp))
            value["bmp_len"] = words
            offset = self.body.encode_into(self.data, offset, value)
            chunk = struct.pack(f"={words}I", *bmp)
            self.data.extend(chunk)
            return offset + len(chunk), 0

        def ft_decode(self, offset: int) -> None:
            value, offset = self.body.decode_from(self.data, offset)
            n = min(value["bmp_len"], (self.offset + self.length - offset) // 4)
            value["bmp"] = struct.unpack_from(f"={n}I", self.data, offset)
            self.value = value
            self.pop("attrs", None)
            self.pop("value", None)


class _xfrm_msg(_xfrm_attrs, nlmsg):
    """An XFRM message: pyroute2's header and NLA chain around one CStruct body. The body
    is (de)serialised by the CStruct in one pass (pyroute2's generic per-field path looks
    every field up through `get_nested`, which dominated the cost of a request)."""

    __slots__ = ()
    body: ClassVar[type[CStruct]] = CStruct

    def ft_encode(self, offset: int) -> tuple[int, int]:
        offset = self.body.encode_into(self.data, offset, self)
        diff = ((offset + 3) & ~3) - offset
        self.data.extend(b"\0" * diff)
        return offset + diff, diff

    def ft_decode(self, offset: int) -> None:
        values, offset = self.body.decode_from(self.data, offset)
        self.update(values)
        self.decode_nlas((offset + 3) & ~3)


def _message(name: str, body: type[CStruct]) -> type[nlmsg]:
    """An nlmsg class whose `fields` are the struct's members, then the XFRMA table."""
    fields = tuple((m, fmt) for m, fmt in body.members)
    return type(name, (_xfrm_msg,), {"__slots__": (), "fields": fields, "body": body})


# The kernel pads fields with "_pad" names; pyroute2 encodes "x" formats as zero octets and
# our CStruct members as nested dicts.
xfrm_usersa_info_msg = _message("xfrm_usersa_info_msg", UserSaInfo)
xfrm_usersa_id_msg = _message("xfrm_usersa_id_msg", UserSaId)
xfrm_userspi_info_msg = _message("xfrm_userspi_info_msg", UserSpiInfo)
xfrm_userpolicy_info_msg = _message("xfrm_userpolicy_info_msg", UserPolicyInfo)
xfrm_userpolicy_id_msg = _message("xfrm_userpolicy_id_msg", UserPolicyId)
xfrm_user_acquire_msg = _message("xfrm_user_acquire_msg", UserAcquire)
xfrm_user_expire_msg = _message("xfrm_user_expire_msg", UserExpire)
xfrm_user_polexpire_msg = _message("xfrm_user_polexpire_msg", UserPolExpire)
xfrm_user_mapping_msg = _message("xfrm_user_mapping_msg", UserMapping)
xfrm_usersa_flush_msg = _message("xfrm_usersa_flush_msg", UserSaFlush)


class xfrm_sadinfo_msg(nlmsg):
    """XFRM_MSG_GETSADINFO request body (a u32 of flags): a cheap permission probe."""

    __slots__ = ()
    fields = (("flags", "I"),)

# Which body a message of each type carries (requests and kernel messages alike).
MESSAGE_CLASSES: dict[int, type[nlmsg]] = {
    XfrmMsg.NEWSA: xfrm_usersa_info_msg,
    XfrmMsg.UPDSA: xfrm_usersa_info_msg,
    XfrmMsg.DELSA: xfrm_usersa_id_msg,
    XfrmMsg.GETSA: xfrm_usersa_id_msg,
    XfrmMsg.NEWPOLICY: xfrm_userpolicy_info_msg,
    XfrmMsg.UPDPOLICY: xfrm_userpolicy_info_msg,
    XfrmMsg.DELPOLICY: xfrm_userpolicy_id_msg,
    XfrmMsg.GETPOLICY: xfrm_userpolicy_id_msg,
    XfrmMsg.ALLOCSPI: xfrm_userspi_info_msg,
    XfrmMsg.ACQUIRE: xfrm_user_acquire_msg,
    XfrmMsg.EXPIRE: xfrm_user_expire_msg,
    XfrmMsg.POLEXPIRE: xfrm_user_polexpire_msg,
    XfrmMsg.MIGRATE: xfrm_userpolicy_id_msg,
    XfrmMsg.MAPPING: xfrm_user_mapping_msg,
    XfrmMsg.FLUSHSA: xfrm_usersa_flush_msg,
    XfrmMsg.GETSADINFO: xfrm_sadinfo_msg,
}

# Replies: a GETSA / ALLOCSPI answer is an SA, a GETPOLICY answer a policy, and a delete
# notification repeats the id; dumps carry full objects.
REPLY_CLASSES: dict[int, type[nlmsg]] = {
    **MESSAGE_CLASSES,
    XfrmMsg.GETSA: xfrm_usersa_info_msg,
    XfrmMsg.GETPOLICY: xfrm_userpolicy_info_msg,
}


def encode(msg_type: int, body: dict[str, Any], attrs: list[tuple[str, Any]],
           *, flags: int, seq: int, cls: type[nlmsg] | None = None) -> bytes:
    """One netlink message: header + body fields + attributes, via pyroute2's encoder."""
    msg = (cls or MESSAGE_CLASSES[msg_type])()
    for k, v in body.items():
        msg[k] = v
    msg["attrs"] = list(attrs)
    msg["header"]["type"] = int(msg_type)
    msg["header"]["flags"] = int(flags)
    msg["header"]["sequence_number"] = seq
    msg["header"]["pid"] = 0
    msg.encode()
    return bytes(msg.data)


def decode(data: bytes | bytearray, offset: int = 0, *, reply: bool = True) -> nlmsg | None:
    """Decode one XFRM message at `offset` (None if its type has no declaration here)."""
    (msg_type,) = struct.unpack_from("=H", data, offset + 4)
    cls = (REPLY_CLASSES if reply else MESSAGE_CLASSES).get(msg_type)
    if cls is None:
        return None
    (length,) = struct.unpack_from("=I", data, offset)
    msg = cls(bytes(data[offset : offset + length]))
    msg.decode()
    return msg


def attr(msg: nlmsg, name: str) -> Any:
    """The first attribute `name`'s value, or None."""
    return msg.get_attr(name)
