"""Traffic selectors → XFRM policies, priorities and algorithm names (no kernel needed)."""

from __future__ import annotations

import socket

import pytest

from ikev2.errors import KernelError
from ikev2.kernel.base import ChildSaSpec, moved_selectors
from ikev2.kernel.xfrm.algorithms import algorithm_attrs
from ikev2.kernel.xfrm.consts import PolicyDir
from ikev2.kernel.xfrm.cstruct import pack_addr
from ikev2.kernel.xfrm.ownership import Ownership, ReqidMap
from ikev2.kernel.xfrm.policies import wanted_policies
from ikev2.kernel.xfrm.selectors import (
    XfrmSelector,
    policy_priority,
    policy_selectors,
    port_blocks,
)
from ikev2.protocol.enums import EncrId, IntegId
from ikev2.protocol.ts import TrafficSelector as TS

HOA, HA = "2001:db8:a::1", "2001:db8:b::1"


def test_port_blocks() -> None:
    assert port_blocks(0, 65535) == ((0, 0),)
    assert port_blocks(80, 80) == ((80, 0xFFFF),)
    assert port_blocks(1024, 2047) == ((1024, 0xFC00),)
    assert port_blocks(1000, 1003) == ((1000, 0xFFFC),)
    assert port_blocks(5, 9) == ((5, 0xFFFF), (6, 0xFFFE), (8, 0xFFFE))
    assert port_blocks(0, 255, 8) == ((0, 0),)


def test_mh_type_selectors_follow_direction() -> None:
    """REQUIREMENTS X-01/X-02 (and 7296-20): MH type from the TS high octet goes into
    sport, dport unmasked; outbound = local type (MN: BU 5), inbound/fwd = remote (BA 6)."""
    local, remote = (TS.mh_type(HOA, 5),), (TS.mh_type(HA, 6),)
    (out,) = policy_selectors(local, remote, PolicyDir.OUT)
    assert (out.saddr, out.daddr, out.proto) == (HOA, HA, 135)
    assert (out.sport, out.sport_mask, out.dport, out.dport_mask) == (5, 0xFFFF, 0, 0)
    (inb,) = policy_selectors(local, remote, PolicyDir.IN)
    assert (inb.saddr, inb.daddr) == (HA, HOA)
    assert (inb.sport, inb.sport_mask, inb.dport, inb.dport_mask) == (6, 0xFFFF, 0, 0)
    # the kernel-side bytes: sport = htons(5) at offset 36 of xfrm_selector
    raw = pack_addr(HA) + pack_addr(HOA) + bytes(4) + bytes.fromhex("0005ffff")
    from ikev2.kernel.xfrm.structs import Selector

    assert Selector.pack(out.to_struct())[:40] == raw
    assert XfrmSelector.from_struct(Selector.unpack(Selector.pack(out.to_struct()))) == out


def test_icmp_type_and_code() -> None:
    """ICMP(v6) TS ports are type << 8 | code: the kernel matches type in sport, code in
    dport."""
    echo = TS.from_network(HOA, 58, 128 << 8, (128 << 8) | 0xFF)
    (sel,) = policy_selectors((echo,), (TS.from_network(HA, 58),), PolicyDir.OUT)
    assert (sel.sport, sel.sport_mask, sel.dport, sel.dport_mask) == (128, 0xFFFF, 0, 0)
    unreachable4 = TS.from_network("192.0.2.1", 1, (3 << 8) | 4, (3 << 8) | 4)
    (sel,) = policy_selectors((unreachable4,), (TS.from_network("192.0.2.2"),),
                              PolicyDir.OUT)
    assert sel.family == socket.AF_INET and sel.proto == 1
    assert (sel.sport, sel.sport_mask, sel.dport, sel.dport_mask) == (3, 0xFFFF, 4, 0xFFFF)
    # types 1..2 with any code, then type 3 codes 0..1: split without widening
    sels = policy_selectors((TS.from_network(HOA, 58, 1 << 8, (3 << 8) | 1),),
                            (TS.from_network(HA),), PolicyDir.OUT)
    assert [(s.sport, s.sport_mask, s.dport, s.dport_mask) for s in sels] == [
        (1, 0xFFFF, 0, 0), (2, 0xFFFF, 0, 0), (3, 0xFFFF, 0, 0xFFFE)]


def test_ports_and_ranges() -> None:
    web = TS.from_network("192.0.2.0/24", 6, 80, 80)
    (out,) = policy_selectors((web,), (TS.from_network("203.0.113.0/24"),), PolicyDir.OUT)
    assert (out.proto, out.sport, out.sport_mask, out.dport_mask) == (6, 80, 0xFFFF, 0)
    (inb,) = policy_selectors((web,), (TS.from_network("203.0.113.0/24"),), PolicyDir.IN)
    assert (inb.dport, inb.dport_mask, inb.sport_mask) == (80, 0xFFFF, 0)
    rng = TS.from_range("198.51.100.0", "198.51.100.5")
    sels = policy_selectors((rng,), (TS.any(4),), PolicyDir.OUT)
    assert [(s.saddr, s.prefixlen_s) for s in sels] == [("198.51.100.0", 30),
                                                        ("198.51.100.4", 31)]
    # different protocols or families never pair
    assert policy_selectors((TS.from_network(HOA, 6),), (TS.from_network(HA, 17),),
                            PolicyDir.OUT) == []
    assert policy_selectors((TS.any(4),), (TS.any(6),), PolicyDir.OUT) == []


def test_priorities_prefer_specific_selectors() -> None:
    """REQUIREMENTS X-16: MH-type host entries beat the host-to-host payload entry, which
    beats subnets; all inside ikev2d's band."""
    mh = policy_selectors((TS.mh_type(HOA, 5),), (TS.mh_type(HA, 6),), PolicyDir.OUT)[0]
    host = policy_selectors((TS.from_network(HOA),), (TS.from_network(HA),), PolicyDir.OUT)[0]
    net = policy_selectors((TS.from_network("2001:db8:a::/48"),), (TS.any(6),),
                           PolicyDir.OUT)[0]
    base = Ownership().priority_base
    assert base < policy_priority(mh) < policy_priority(host) < policy_priority(net)
    assert policy_priority(net) < base + 0x4000


def _spec(mode: str, **kw: object) -> ChildSaSpec:
    args: dict = dict(
        reqid=1, protocol=3, mode=mode, local="2001:db8:1::1", remote="2001:db8:1::2",
        spi_in=0xC0000001, spi_out=0xC0000002, encr_id=EncrId.AES_GCM_16,
        encr_key_bits=128, integ_id=0, esn=False, encr_key_in=bytes(20),
        encr_key_out=bytes(20), integ_key_in=b"", integ_key_out=b"",
        local_ts=(TS.from_network("2001:db8:a::/64"),),
        remote_ts=(TS.from_network("2001:db8:b::/64"),),
    )
    args.update(kw)
    return ChildSaSpec(**args)


def test_tunnel_child_needs_in_out_fwd_with_endpoints() -> None:
    """REQUIREMENTS X-03 (tunnel: IN, OUT and FWD) and X-15 (tunnel templates carry the
    outer endpoints, transport ones none)."""
    wants = wanted_policies(_spec("tunnel"), 0x1CE00001, Ownership())
    assert sorted(w.key[0] for w in wants) == [PolicyDir.IN, PolicyDir.OUT, PolicyDir.FWD]
    out = next(w for w in wants if w.key[0] == PolicyDir.OUT)
    tmpl = dict(out.tmpl)
    assert dict(tmpl["id"])["daddr"] == pack_addr("2001:db8:1::2")
    assert tmpl["saddr"] == pack_addr("2001:db8:1::1") and tmpl["reqid"] == 0x1CE00001
    wants = wanted_policies(_spec("transport", local_ts=(TS.from_network("2001:db8:1::1"),),
                                  remote_ts=(TS.from_network("2001:db8:1::2"),)),
                            0x1CE00001, Ownership())
    assert sorted(w.key[0] for w in wants) == [PolicyDir.IN, PolicyDir.OUT]
    tmpl = dict(wants[0].tmpl)
    assert tmpl["saddr"] == bytes(16) and dict(tmpl["id"])["daddr"] == bytes(16)
    assert not wanted_policies(_spec("tunnel", install_policies=False), 1, Ownership())


def test_reqid_mapping_is_owned_and_refcounted() -> None:
    own = Ownership(reqid_base=0x1CE00000, reqid_span=4)
    rm = ReqidMap(own)
    assert rm.ref(1) == 0x1CE00001 and rm.ref(1) == 0x1CE00001  # a rekey keeps it
    assert rm.ref(4) == 0x1CE00002  # (4-1) % 3 = 0 is taken by reqid 1: probe onward
    assert rm.core_reqid(0x1CE00002) == 4 and own.owns(0x1CE00003)
    assert not own.owns(0x1CE00004) and not own.owns(5)
    rm.unref(1)
    assert rm.core_reqid(0x1CE00001) == 1
    rm.unref(1)
    assert rm.core_reqid(0x1CE00001) == 0
    rm.ref(2)
    rm.ref(3)
    with pytest.raises(KernelError):
        rm.ref(7)


def test_moved_selectors_follow_host_addresses() -> None:
    """REQUIREMENTS X-05: host-address selectors follow a move, protocol kept."""
    ts = (TS.from_network("2001:db8:1::1", 58), TS.from_network("2001:db8:a::/64"))
    moved = moved_selectors(ts, "2001:db8:1::1", "192.0.2.1")
    assert moved[0] == TS.from_network("192.0.2.1", 58) and moved[1] == ts[1]


def test_algorithm_names_and_keys() -> None:
    """REQUIREMENTS X-10 / 7634-05: AEAD key length includes the salt; SHA-256 integrity
    is truncated to 128 bits via XFRMA_ALG_AUTH_TRUNC."""
    (aead,) = algorithm_attrs(EncrId.AES_GCM_16, 0, bytes(20), b"")
    assert aead == ("XFRMA_ALG_AEAD", {"alg_name": "rfc4106(gcm(aes))", "alg_key_len": 160,
                                       "alg_icv_len": 128, "alg_key": bytes(20)})
    (aead,) = algorithm_attrs(EncrId.CHACHA20_POLY1305, 0, bytes(36), b"")
    assert aead[1]["alg_name"] == "rfc7539esp(chacha20,poly1305)"
    assert aead[1]["alg_key_len"] == 288
    (aead,) = algorithm_attrs(EncrId.AES_CCM_8, 0, bytes(19), b"")
    assert (aead[1]["alg_name"], aead[1]["alg_icv_len"]) == ("rfc4309(ccm(aes))", 64)
    crypt, auth = algorithm_attrs(EncrId.AES_CBC, IntegId.HMAC_SHA2_256_128, bytes(32),
                                  bytes(32))
    assert crypt == ("XFRMA_ALG_CRYPT", {"alg_name": "cbc(aes)", "alg_key_len": 256,
                                         "alg_key": bytes(32)})
    assert auth[0] == "XFRMA_ALG_AUTH_TRUNC"
    assert (auth[1]["alg_name"], auth[1]["alg_trunc_len"]) == ("hmac(sha256)", 128)
    ctr, _ = algorithm_attrs(EncrId.AES_CTR, IntegId.HMAC_SHA2_512_256, bytes(20), bytes(64))
    assert ctr[1]["alg_name"] == "rfc3686(ctr(aes))"
    with pytest.raises(KernelError, match="AEAD"):
        algorithm_attrs(EncrId.AES_GCM_16, IntegId.HMAC_SHA2_256_128, bytes(20), bytes(32))
    with pytest.raises(KernelError, match="no XFRM algorithm"):
        algorithm_attrs(EncrId.IDEA, 0, bytes(16), b"")
    with pytest.raises(KernelError, match="no XFRM algorithm"):
        algorithm_attrs(EncrId.AES_CBC, IntegId.DES_MAC, bytes(16), bytes(8))


def test_sa_messages() -> None:
    """The xfrm_usersa_info of each direction: addresses/SPIs per direction, tunnel SAs
    keep an unspecified selector family (XFRM_STATE_AF_UNSPEC: IPv4 inner traffic over an
    IPv6 tunnel), ESN/large windows use XFRMA_REPLAY_ESN_VAL with replay_window 0 (X-09),
    encap ports per direction (X-08), no limit = XFRM_INF."""
    from ikev2.kernel.xfrm.consts import XFRM_INF, StateFlag
    from ikev2.kernel.xfrm.sas import sa_message

    s = _spec("tunnel", encap=(4500, 31337), esn=True, replay_window=128, soft_bytes=1000)
    body, attrs = sa_message(s, 0x1CE00001, inbound=True)
    assert body["id"] == {"daddr": pack_addr(s.local), "spi": s.spi_in, "proto": 50}
    assert body["saddr"] == pack_addr(s.remote) and body["family"] == socket.AF_INET6
    assert body["flags"] == StateFlag.ESN | StateFlag.AF_UNSPEC and body["replay_window"] == 0
    assert body["lft"]["soft_byte_limit"] == 1000 and body["lft"]["hard_byte_limit"] == XFRM_INF
    named = dict(attrs)
    assert named["XFRMA_REPLAY_ESN_VAL"]["replay_window"] == 128
    assert (named["XFRMA_ENCAP"]["encap_sport"], named["XFRMA_ENCAP"]["encap_dport"]) == (
        31337, 4500)
    assert named["XFRMA_ALG_AEAD"]["alg_key"] == s.encr_key_in
    body, attrs = sa_message(s, 0x1CE00001, inbound=False)
    named = dict(attrs)
    assert body["id"]["spi"] == s.spi_out and body["id"]["daddr"] == pack_addr(s.remote)
    assert (named["XFRMA_ENCAP"]["encap_sport"], named["XFRMA_ENCAP"]["encap_dport"]) == (
        4500, 31337)
    body, attrs = sa_message(_spec("transport", replay_window=32), 7, inbound=True)
    assert body["flags"] == 0 and body["replay_window"] == 32
    assert "XFRMA_REPLAY_ESN_VAL" not in dict(attrs)
