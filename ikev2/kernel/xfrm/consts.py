"""XFRM netlink constants from the Linux uapi header <linux/xfrm.h> (numbers are facts of
the kernel ABI; names follow the header) plus the few netlink/UDP numbers we need."""

from __future__ import annotations

from enum import IntEnum, IntFlag

NETLINK_XFRM = 6
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

XFRM_INF = 0xFFFF_FFFF_FFFF_FFFF  # "no limit" in xfrm_lifetime_cfg
IPSEC_ULPROTO_ANY = 255  # selector proto wildcard understood by MIGRATE's selector match
XFRM_MAX_DEPTH = 6  # max templates per policy / entries per MIGRATE
XFRMA_REPLAY_ESN_MAX = 4096  # bits of replay bitmap the kernel accepts

IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_COMP = 108


class NlMsgType(IntEnum):
    NOOP = 1
    ERROR = 2
    DONE = 3
    OVERRUN = 4


class NlFlag(IntFlag):
    REQUEST = 0x01
    MULTI = 0x02
    ACK = 0x04
    ECHO = 0x08
    DUMP_INTR = 0x10
    ROOT = 0x100
    MATCH = 0x200
    DUMP = 0x300
    # NLMSG_ERROR flags (same bits, other meaning)
    CAPPED = 0x100
    ACK_TLVS = 0x200


class NlErrAttr(IntEnum):
    UNUSED = 0
    MSG = 1
    OFFS = 2
    COOKIE = 3


class XfrmMsg(IntEnum):
    NEWSA = 0x10
    DELSA = 0x11
    GETSA = 0x12
    NEWPOLICY = 0x13
    DELPOLICY = 0x14
    GETPOLICY = 0x15
    ALLOCSPI = 0x16
    ACQUIRE = 0x17
    EXPIRE = 0x18
    UPDPOLICY = 0x19
    UPDSA = 0x1A
    POLEXPIRE = 0x1B
    FLUSHSA = 0x1C
    FLUSHPOLICY = 0x1D
    NEWAE = 0x1E
    GETAE = 0x1F
    REPORT = 0x20
    MIGRATE = 0x21
    NEWSADINFO = 0x22
    GETSADINFO = 0x23
    NEWSPDINFO = 0x24
    GETSPDINFO = 0x25
    MAPPING = 0x26
    SETDEFAULT = 0x27
    GETDEFAULT = 0x28


class XfrmAttr(IntEnum):
    """enum xfrm_attr_type_t (SA_DIR is Linux >= 6.10, not sent by default)."""

    UNSPEC = 0
    ALG_AUTH = 1
    ALG_CRYPT = 2
    ALG_COMP = 3
    ENCAP = 4
    TMPL = 5
    SA = 6
    POLICY = 7
    SEC_CTX = 8
    LTIME_VAL = 9
    REPLAY_VAL = 10
    REPLAY_THRESH = 11
    ETIMER_THRESH = 12
    SRCADDR = 13
    COADDR = 14
    LASTUSED = 15
    POLICY_TYPE = 16
    MIGRATE = 17
    ALG_AEAD = 18
    KMADDRESS = 19
    ALG_AUTH_TRUNC = 20
    MARK = 21
    TFCPAD = 22
    REPLAY_ESN_VAL = 23
    SA_EXTRA_FLAGS = 24
    PROTO = 25
    ADDRESS_FILTER = 26
    PAD = 27
    OFFLOAD_DEV = 28
    SET_MARK = 29
    SET_MARK_MASK = 30
    IF_ID = 31
    MTIMER_THRESH = 32
    SA_DIR = 33


class XfrmGroup(IntEnum):
    """enum xfrm_nlgroups: multicast groups of NETLINK_XFRM (REQUIREMENTS X-12, X-18)."""

    ACQUIRE = 1
    EXPIRE = 2
    SA = 3
    POLICY = 4
    AEVENTS = 5
    REPORT = 6
    MIGRATE = 7
    MAPPING = 8


class XfrmMode(IntEnum):
    """XFRM_MODE_* (REQUIREMENTS X-04)."""

    TRANSPORT = 0
    TUNNEL = 1
    ROUTEOPTIMIZATION = 2
    IN_TRIGGER = 3
    BEET = 4


class PolicyDir(IntEnum):
    """XFRM_POLICY_IN/OUT/FWD (REQUIREMENTS X-03)."""

    IN = 0
    OUT = 1
    FWD = 2


class PolicyType(IntEnum):
    MAIN = 0
    SUB = 1
    ANY = 255


class PolicyAction(IntEnum):
    ALLOW = 0
    BLOCK = 1


class PolicyShare(IntEnum):
    ANY = 0
    SESSION = 1
    USER = 2
    UNIQUE = 3


class StateFlag(IntFlag):
    NOECN = 1
    DECAP_DSCP = 2
    NOPMTUDISC = 4
    WILDRECV = 8
    ICMP = 16
    AF_UNSPEC = 32
    ALIGN4 = 64
    ESN = 128


class UdpEncap(IntEnum):
    """UDP_ENCAP_* from <linux/udp.h>; the socket option is UDP_ENCAP (100) at SOL_UDP."""

    ESPINUDP_NON_IKE = 1
    ESPINUDP = 2


SOL_UDP = 17
UDP_ENCAP = 100
IP_XFRM_POLICY = 17  # <linux/in.h>
IPV6_XFRM_POLICY = 35  # <linux/in6.h>
