"""The uapi structs of <linux/xfrm.h> as CStruct layouts (x86-64 / LP64 padding).

`expected_size` records sizeof() of each; tests/kernel/test_structs.py checks sizes, member
offsets and packed bytes against a C program compiled with the installed header.
"""

from __future__ import annotations

from typing import Any

from ikev2.kernel.xfrm.cstruct import CStruct


class Address(CStruct):
    """xfrm_address_t (union of __be32 a4 / a6[4] / in6_addr): raw 16 octets."""

    members = (("addr", "16s"),)
    expected_size = 16
    leaf = "16s"

    @classmethod
    def decode_from(cls, data: bytes | bytearray, offset: int = 0) -> tuple[Any, int]:
        return bytes(data[offset : offset + 16]), offset + 16

    @classmethod
    def pack_into(cls, data: bytearray, offset: int, value: Any) -> None:
        raw = value if isinstance(value, bytes | bytearray) and value else b""
        data[offset : offset + 16] = bytes(raw).ljust(16, b"\0")[:16]


class XfrmId(CStruct):
    members = (("daddr", Address), ("spi", ">I"), ("proto", "B"), ("_pad", "3x"))
    expected_size = 24


class Selector(CStruct):
    """struct xfrm_selector. Ports are network order; for ICMP sport/dport carry type/code,
    for the Mobility Header sport carries the MH type (REQUIREMENTS X-01)."""

    members = (
        ("daddr", Address),
        ("saddr", Address),
        ("dport", ">H"),
        ("dport_mask", ">H"),
        ("sport", ">H"),
        ("sport_mask", ">H"),
        ("family", "H"),
        ("prefixlen_d", "B"),
        ("prefixlen_s", "B"),
        ("proto", "B"),
        ("_pad", "3x"),
        ("ifindex", "i"),
        ("user", "I"),
    )
    expected_size = 56


class LifetimeCfg(CStruct):
    members = (
        ("soft_byte_limit", "Q"),
        ("hard_byte_limit", "Q"),
        ("soft_packet_limit", "Q"),
        ("hard_packet_limit", "Q"),
        ("soft_add_expires_seconds", "Q"),
        ("hard_add_expires_seconds", "Q"),
        ("soft_use_expires_seconds", "Q"),
        ("hard_use_expires_seconds", "Q"),
    )
    expected_size = 64


class LifetimeCur(CStruct):
    members = (("bytes", "Q"), ("packets", "Q"), ("add_time", "Q"), ("use_time", "Q"))
    expected_size = 32


class Stats(CStruct):
    members = (("replay_window", "I"), ("replay", "I"), ("integrity_failed", "I"))
    expected_size = 12


class UserSaInfo(CStruct):
    """struct xfrm_usersa_info."""

    members = (
        ("sel", Selector),
        ("id", XfrmId),
        ("saddr", Address),
        ("lft", LifetimeCfg),
        ("curlft", LifetimeCur),
        ("stats", Stats),
        ("seq", "I"),
        ("reqid", "I"),
        ("family", "H"),
        ("mode", "B"),
        ("replay_window", "B"),
        ("flags", "B"),
        ("_pad", "7x"),
    )
    expected_size = 224


class UserSaId(CStruct):
    members = (
        ("daddr", Address),
        ("spi", ">I"),
        ("family", "H"),
        ("proto", "B"),
        ("_pad", "x"),
    )
    expected_size = 24


class UserPolicyInfo(CStruct):
    """struct xfrm_userpolicy_info."""

    members = (
        ("sel", Selector),
        ("lft", LifetimeCfg),
        ("curlft", LifetimeCur),
        ("priority", "I"),
        ("index", "I"),
        ("dir", "B"),
        ("action", "B"),
        ("flags", "B"),
        ("share", "B"),
        ("_pad", "4x"),
    )
    expected_size = 168


class UserTmpl(CStruct):
    """struct xfrm_user_tmpl (REQUIREMENTS X-15: transport templates leave addresses 0)."""

    members = (
        ("id", XfrmId),
        ("family", "H"),
        ("_pad", "2x"),
        ("saddr", Address),
        ("reqid", "I"),
        ("mode", "B"),
        ("share", "B"),
        ("optional", "B"),
        ("_pad2", "x"),
        ("aalgos", "I"),
        ("ealgos", "I"),
        ("calgos", "I"),
    )
    expected_size = 64


class EncapTmpl(CStruct):
    """struct xfrm_encap_tmpl (REQUIREMENTS X-08)."""

    members = (
        ("encap_type", "H"),
        ("encap_sport", ">H"),
        ("encap_dport", ">H"),
        ("_pad", "2x"),
        ("encap_oa", Address),
    )
    expected_size = 24


class UserMigrate(CStruct):
    """struct xfrm_user_migrate (REQUIREMENTS X-06)."""

    members = (
        ("old_daddr", Address),
        ("old_saddr", Address),
        ("new_daddr", Address),
        ("new_saddr", Address),
        ("proto", "B"),
        ("mode", "B"),
        ("reserved", "H"),
        ("reqid", "I"),
        ("old_family", "H"),
        ("new_family", "H"),
    )
    expected_size = 76


class UserKmAddress(CStruct):
    members = (
        ("local", Address),
        ("remote", Address),
        ("reserved", "I"),
        ("family", "H"),
        ("_pad", "2x"),
    )
    expected_size = 40


class ReplayState(CStruct):
    members = (("oseq", "I"), ("seq", "I"), ("bitmap", "I"))
    expected_size = 12


class ReplayStateEsn(CStruct):
    """struct xfrm_replay_state_esn without its flexible `bmp[]` (REQUIREMENTS X-09)."""

    members = (
        ("bmp_len", "I"),
        ("oseq", "I"),
        ("seq", "I"),
        ("oseq_hi", "I"),
        ("seq_hi", "I"),
        ("replay_window", "I"),
    )
    expected_size = 24


class Mark(CStruct):
    members = (("v", "I"), ("m", "I"))
    expected_size = 8


class UserPolicyType(CStruct):
    members = (("type", "B"), ("_pad", "x"), ("reserved1", "H"), ("reserved2", "B"),
               ("_pad2", "x"))
    expected_size = 6


class UserSpiInfo(CStruct):
    members = (("info", UserSaInfo), ("min", "I"), ("max", "I"))
    expected_size = 232


class UserPolicyId(CStruct):
    members = (("sel", Selector), ("index", "I"), ("dir", "B"), ("_pad", "3x"))
    expected_size = 64


class UserAcquire(CStruct):
    members = (
        ("id", XfrmId),
        ("saddr", Address),
        ("sel", Selector),
        ("policy", UserPolicyInfo),
        ("aalgos", "I"),
        ("ealgos", "I"),
        ("calgos", "I"),
        ("seq", "I"),
    )
    expected_size = 280


class UserExpire(CStruct):
    members = (("state", UserSaInfo), ("hard", "B"), ("_pad", "7x"))
    expected_size = 232


class UserPolExpire(CStruct):
    members = (("pol", UserPolicyInfo), ("hard", "B"), ("_pad", "7x"))
    expected_size = 176


class UserMapping(CStruct):
    members = (
        ("id", UserSaId),
        ("reqid", "I"),
        ("old_saddr", Address),
        ("new_saddr", Address),
        ("old_sport", ">H"),
        ("new_sport", ">H"),
    )
    expected_size = 64


class UserSaFlush(CStruct):
    members = (("proto", "B"), ("_pad", "3x"))
    expected_size = 4  # sizeof is 1; netlink pads the body to 4


ALGO_NAME_LEN = 64
ALGO_SIZE = 68  # struct xfrm_algo without alg_key[]
ALGO_AUTH_SIZE = 72  # struct xfrm_algo_auth / xfrm_algo_aead without alg_key[]
