"""XFRM netlink messages on pyroute2's nlmsg/nla framework: golden bytes derived from the
uapi layout, round trips, netlink error/extended-ACK parsing, kernel notifications →
KernelEvents (REQUIREMENTS X-06, X-07, X-08, X-09, X-12, X-18)."""

from __future__ import annotations

import errno
import socket
import struct

from ikev2.kernel.base import AcquireRequest, ChildSaExpired, NatMappingChanged, SaMigrated
from ikev2.kernel.xfrm import events, messages
from ikev2.kernel.xfrm.consts import NlFlag, NlMsgType, PolicyDir, XfrmMsg
from ikev2.kernel.xfrm.cstruct import pack_addr, unpack_addr
from ikev2.kernel.xfrm.netlink import iter_messages, parse_error, translate

A6, B6 = "2001:db8:1::1", "2001:db8:1::2"


def test_delsa_golden_bytes() -> None:
    """nlmsghdr (len 40, type 0x11, flags REQUEST|ACK, seq 7) + xfrm_usersa_id: daddr,
    spi in network order, family AF_INET6 (10), proto 50, one octet of padding."""
    data = messages.encode(XfrmMsg.DELSA, {"daddr": pack_addr(A6), "spi": 0xC0000001,
                                           "family": socket.AF_INET6, "proto": 50},
                           [], flags=NlFlag.REQUEST | NlFlag.ACK, seq=7)
    golden = (
        "28000000" "1100" "0500" "07000000" "00000000"
        "20010db8000100000000000000000001" "c0000001" "0a00" "32" "00"
    )
    assert data.hex() == golden


def test_newpolicy_golden_attributes_and_round_trip() -> None:
    """XFRMA_TMPL (64 octets per template) and XFRMA_POLICY_TYPE (6 octets, NLA length 10,
    padded to 12) are laid out as the uapi says; decoding gives the values back."""
    sel = {"daddr": pack_addr(B6), "saddr": pack_addr(A6), "sport": 5, "sport_mask": 0xFFFF,
           "family": socket.AF_INET6, "prefixlen_d": 128, "prefixlen_s": 128, "proto": 135}
    tmpl = {"id": {"daddr": pack_addr(B6), "spi": 0, "proto": 50}, "family": 10,
            "saddr": pack_addr(A6), "reqid": 0x1CE00001, "mode": 1,
            "aalgos": 0xFFFFFFFF, "ealgos": 0xFFFFFFFF, "calgos": 0xFFFFFFFF}
    data = messages.encode(
        XfrmMsg.NEWPOLICY, {"sel": sel, "priority": 0x10001, "dir": 1},
        [("XFRMA_TMPL", [tmpl]), ("XFRMA_POLICY_TYPE", {"type": 0}),
         ("XFRMA_MARK", {"v": 0x10, "m": 0xF0}), ("XFRMA_IF_ID", 3)],
        flags=NlFlag.REQUEST | NlFlag.ACK, seq=1,
    )
    body_end = 16 + 168
    assert struct.unpack_from("=I", data)[0] == len(data) == body_end + 68 + 12 + 12 + 8
    assert struct.unpack_from("=HH", data, body_end) == (68, 5)  # XFRMA_TMPL
    assert struct.unpack_from("=HH", data, body_end + 68) == (10, 16)  # XFRMA_POLICY_TYPE
    assert data[body_end + 68 + 10 : body_end + 68 + 12] == b"\0\0"
    # selector: sport (offset 36) = htons(5) -> MH type (REQUIREMENTS X-01)
    assert data[16 + 36 : 16 + 40] == bytes.fromhex("0005ffff")
    msg = messages.decode(data)
    assert msg is not None
    assert msg["priority"] == 0x10001 and msg["dir"] == 1
    assert msg["sel"]["sport"] == 5 and msg["sel"]["proto"] == 135
    got = msg.get_attr("XFRMA_TMPL")[0]
    assert got["reqid"] == 0x1CE00001 and got["id"]["daddr"] == pack_addr(B6)
    assert msg.get_attr("XFRMA_MARK") == {"v": 0x10, "m": 0xF0}
    assert msg.get_attr("XFRMA_IF_ID") == 3


def test_algorithm_attributes_pad_odd_key_lengths() -> None:
    """AES-CCM keys are 16+3 octets (RFC 4309 §7.1): NLA length 4+72+19 = 95, padded."""
    key = bytes(range(19))
    data = messages.encode(
        XfrmMsg.NEWSA, {"family": socket.AF_INET6},
        [("XFRMA_ALG_AEAD", {"alg_name": "rfc4309(ccm(aes))", "alg_icv_len": 128,
                             "alg_key": key}),
         ("XFRMA_IF_ID", 7)],
        flags=NlFlag.REQUEST, seq=2,
    )
    off = 16 + 224
    assert struct.unpack_from("=HH", data, off) == (95, 18)
    name = data[off + 4 : off + 4 + 64].rstrip(b"\0")
    assert name == b"rfc4309(ccm(aes))"
    assert struct.unpack_from("=II", data, off + 68) == (152, 128)  # key bits incl. salt
    assert struct.unpack_from("=HHI", data, off + 96) == (8, 31, 7)  # next NLA aligned
    msg = messages.decode(data)
    assert msg is not None
    aead = msg.get_attr("XFRMA_ALG_AEAD")
    assert aead == {"alg_name": "rfc4309(ccm(aes))", "alg_key_len": 152,
                    "alg_icv_len": 128, "alg_key": key}


def test_replay_esn_bitmap_length_follows_the_window() -> None:
    """REQUIREMENTS X-09: bmp_len = number of u32 words for the window (128 → 4)."""
    data = messages.encode(
        XfrmMsg.NEWSA, {}, [("XFRMA_REPLAY_ESN_VAL", {"replay_window": 128, "oseq": 9,
                                                      "oseq_hi": 1})],
        flags=NlFlag.REQUEST, seq=3,
    )
    off = 16 + 224
    assert struct.unpack_from("=HH", data, off) == (4 + 24 + 16, 23)
    assert struct.unpack_from("=6I", data, off + 4) == (4, 9, 0, 1, 0, 128)
    msg = messages.decode(data)
    assert msg is not None
    esn = msg.get_attr("XFRMA_REPLAY_ESN_VAL")
    assert esn["bmp"] == (0, 0, 0, 0) and esn["oseq"] == 9 and esn["replay_window"] == 128


def test_migrate_request_round_trip() -> None:
    """XFRM_MSG_MIGRATE: xfrm_userpolicy_id + XFRMA_MIGRATE (back-to-back 76-octet
    xfrm_user_migrate) + XFRMA_KMADDRESS (REQUIREMENTS X-06)."""
    entry = {"old_daddr": pack_addr(B6), "old_saddr": pack_addr(A6),
             "new_daddr": pack_addr("192.0.2.2"), "new_saddr": pack_addr("192.0.2.1"),
             "proto": 50, "mode": 1, "reserved": 0, "reqid": 5, "old_family": 10,
             "new_family": 2}
    km = {"local": pack_addr("192.0.2.1"), "remote": pack_addr("192.0.2.2"),
          "reserved": 0, "family": 2}
    data = messages.encode(
        XfrmMsg.MIGRATE, {"sel": {"family": 10}, "dir": 1},
        [("XFRMA_MIGRATE", [entry, {**entry, "reqid": 6}]), ("XFRMA_KMADDRESS", km)],
        flags=NlFlag.REQUEST | NlFlag.ACK, seq=4,
    )
    assert struct.unpack_from("=HH", data, 16 + 64) == (4 + 2 * 76, 17)
    msg = messages.decode(data, reply=False)
    assert msg is not None
    assert [e["reqid"] for e in msg.get_attr("XFRMA_MIGRATE")] == [5, 6]
    assert msg.get_attr("XFRMA_MIGRATE")[0] == entry
    assert msg.get_attr("XFRMA_KMADDRESS") == km


def _nlerr(err: int, text: str, seq: int = 9) -> bytes:
    """An NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK + NETLINK_EXT_ACK."""
    inner = struct.pack("=IHHII", 40, XfrmMsg.NEWSA, 5, seq, 0)
    attr_payload = text.encode() + b"\0"
    attr = struct.pack("=HH", 4 + len(attr_payload), 1) + attr_payload
    attr += b"\0" * (-len(attr) % 4)
    body = struct.pack("=i", -err) + inner + attr
    hdr = struct.pack("=IHHII", 16 + len(body), NlMsgType.ERROR,
                      NlFlag.CAPPED | NlFlag.ACK_TLVS, seq, 0)
    return hdr + body


def test_netlink_error_with_extended_ack() -> None:
    buf = _nlerr(errno.EPROTONOSUPPORT, "Requested type not found")
    buf += struct.pack("=IHHII", 16, NlMsgType.DONE, 0, 10, 0)
    msgs = list(iter_messages(buf))
    assert [(t, s) for _o, _l, t, _f, s in msgs] == [(NlMsgType.ERROR, 9),
                                                     (NlMsgType.DONE, 10)]
    off, length, _t, flags, _s = msgs[0]
    assert parse_error(buf, off, length, flags) == (errno.EPROTONOSUPPORT,
                                                   "Requested type not found")


def test_kernel_errors_become_clear_kernel_errors() -> None:
    """Missing ESP module / algorithm, EPERM, no CONFIG_XFRM_MIGRATE: KernelError (what the
    core turns into a failed CHILD_SA with a notify) saying what to do."""
    e = translate(XfrmMsg.NEWSA, errno.EPROTONOSUPPORT, "Requested type not found", "x")
    assert e.errno == errno.EPROTONOSUPPORT and "ESP" in str(e) and "esp4/esp6" in str(e)
    assert "Requested type not found" in str(e)
    e = translate(XfrmMsg.UPDSA, errno.ENOSYS, "Requested AEAD algorithm not found", "x")
    assert "crypto" in str(e) and "algorithm" in str(e)
    assert "CAP_NET_ADMIN" in str(translate(XfrmMsg.GETSADINFO, errno.EPERM, "", "probe"))
    assert "CONFIG_XFRM_MIGRATE" in str(translate(XfrmMsg.MIGRATE, errno.ENOPROTOOPT, "", ""))


# --- notifications -----------------------------------------------------------------------


class Resolver:
    def __init__(self) -> None:
        self.sas = {(A6, 0xC0000001): (4, 0xC0000001, True), (B6, 0x0B0B0B0B): (4, 0xC0000001,
                                                                            False)}

    def lookup_sa(self, daddr: str, spi: int) -> tuple[int, int, bool] | None:
        return self.sas.get((daddr, spi))

    def core_reqid(self, kreqid: int) -> int:
        return kreqid - 0x1CE00000 if 0x1CE00000 < kreqid < 0x1CF00000 else 0

    def larval_expired(self, daddr: str, spi: int) -> bool:
        return False

    def own_migration(self, kreqid: int) -> bool:
        return kreqid == 0x1CE00009


def _kernel_msg(msg_type: XfrmMsg, body: dict, attrs: list | None = None) -> object:
    data = messages.encode(msg_type, body, attrs or [], flags=0, seq=0)
    msg = messages.decode(data, reply=False)
    assert msg is not None
    return msg


def test_expire_notification() -> None:
    """XFRM_MSG_EXPIRE (xfrm_user_expire: usersa_info + hard) for our outbound SA."""
    state = {"id": {"daddr": pack_addr(B6), "spi": 0x0B0B0B0B, "proto": 50},
             "family": socket.AF_INET6, "reqid": 0x1CE00004}
    ev = events.translate(_kernel_msg(XfrmMsg.EXPIRE, {"state": state, "hard": 0}), Resolver())
    assert ev == ChildSaExpired(4, 0xC0000001, 0x0B0B0B0B, False, False, 3)
    ev = events.translate(_kernel_msg(XfrmMsg.EXPIRE, {"state": {**state, "id": {
        **state["id"], "spi": 1}}, "hard": 1}), Resolver())
    assert ev is None  # not ours


def test_acquire_notification() -> None:
    acq = {"id": {"daddr": pack_addr(B6), "proto": 50}, "saddr": pack_addr(A6),
           "sel": {"daddr": pack_addr("2001:db8:b::1"), "saddr": pack_addr("2001:db8:a::1"),
                   "family": 10, "prefixlen_d": 128, "prefixlen_s": 128, "proto": 58},
           "policy": {"sel": {"family": 10}, "dir": 1}, "seq": 42}
    tmpl = {"id": {"proto": 50}, "reqid": 0x1CE00007}
    ev = events.translate(_kernel_msg(XfrmMsg.ACQUIRE, acq, [("XFRMA_TMPL", [tmpl])]),
                          Resolver())
    assert ev == AcquireRequest(7, 0x1CE00007, A6, B6, "2001:db8:a::1", "2001:db8:b::1", 58,
                                42)


def test_migrate_notification_marks_our_own() -> None:
    """REQUIREMENTS X-07: the kernel's MIGRATE multicast; `own` when we caused it."""
    entry = {"old_daddr": pack_addr(B6), "old_saddr": pack_addr(A6),
             "new_daddr": pack_addr(B6), "new_saddr": pack_addr("2001:db8:1::11"),
             "proto": 50, "mode": 1, "reqid": 0x1CE00009, "old_family": 10, "new_family": 10}
    km = {"local": pack_addr("2001:db8:1::11"), "remote": pack_addr(B6), "family": 10}
    msg = _kernel_msg(XfrmMsg.MIGRATE, {"sel": {"family": 10}, "dir": int(PolicyDir.OUT)},
                      [("XFRMA_MIGRATE", [entry]), ("XFRMA_KMADDRESS", km)])
    ev = events.translate(msg, Resolver())
    assert isinstance(ev, SaMigrated)
    assert ev.own and ev.km_local == "2001:db8:1::11" and ev.km_remote == B6
    (move,) = ev.moves
    assert (move.reqid, move.mode, move.old_local, move.new_local, move.new_remote) == (
        9, "tunnel", A6, "2001:db8:1::11", B6)


def test_mapping_notification() -> None:
    body = {"id": {"daddr": pack_addr(A6), "spi": 0xC0000001, "family": 10, "proto": 50},
            "reqid": 0x1CE00004, "old_saddr": pack_addr(B6), "new_saddr": pack_addr(B6),
            "old_sport": 4500, "new_sport": 31000}
    ev = events.translate(_kernel_msg(XfrmMsg.MAPPING, body), Resolver())
    assert ev == NatMappingChanged(4, 0xC0000001, (B6, 4500), (B6, 31000))


def test_addresses() -> None:
    assert pack_addr("192.0.2.1") == bytes([192, 0, 2, 1]) + bytes(12)
    assert unpack_addr(pack_addr("192.0.2.1"), socket.AF_INET) == "192.0.2.1"
    assert unpack_addr(pack_addr(A6), socket.AF_INET6) == A6
    assert pack_addr(None) == bytes(16)
