"""Home agent binding cache: BU validation → BA status, sequence numbers, lifetimes on an
injected clock, deregistration, several CoAs per HoA and the primary CoA (RFC 6275 §9.5.1,
§10.3.1; RFC 4877 §4.3-§4.4; RFC 5648; REQUIREMENTS 4877-05/07/09/11/16/25, MON-01)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mobility.authorization import AuthorizationMap
from mobility.binding_cache import BindingCache, HomeAgentPolicy, policy_for, seq_greater
from mobility.errors import MobilityError
from mobility.mh import BindingAck, BindingUpdate
from mobility.options import (
    AlternateCareOfAddress,
    BindingIdentifier,
    BindingRefreshAdvice,
    Ipv4CareOfAddress,
    MobilityOption,
    NatDetection,
)
from mobility.registry import BaFlags, BaStatus, BidFlags, BuFlags

HOME = "2001:db8:1::/64"
HOA_A, HOA_B = "2001:db8:1::a", "2001:db8:1::b"
COA1, COA2, COA3 = "2001:db8:2::1", "2001:db8:3::2", "2001:db8:4::3"
ALICE, BOB = "alice@example.org", "bob@example.org"
AUTH = AuthorizationMap({ALICE: [HOA_A], BOB: [HOA_B]})
ip = ipaddress.ip_address


def cache(**kwargs: object) -> BindingCache:
    kwargs.setdefault("max_lifetime", 600.0)
    return BindingCache(policy_for([HOME], **kwargs), AUTH)


def bu(seq: int, *, k: bool = True, a: bool = True, h: bool = True, lifetime: float = 400,
       options: tuple[MobilityOption, ...] = ()) -> BindingUpdate:
    flags = BuFlags(0)
    for bit, on in ((BuFlags.A, a), (BuFlags.H, h), (BuFlags.K, k)):
        if on:
            flags |= bit
    return BindingUpdate(seq, flags, int(lifetime // 4), options)


def send(c: BindingCache, msg: BindingUpdate, *, source: str = COA1, hoa: str = HOA_A,
         identity: str | None = ALICE, now: float = 0.0):  # type: ignore[no-untyped-def]
    return c.process_bu(msg, hoa=hoa, source=source, identity=identity, now=now)


# --- acceptance ------------------------------------------------------------------------------
def test_first_registration() -> None:
    """RFC 6275 §10.3.1: status 0, K echoed when supported (4877-11), seq echoed, granted
    lifetime in 4-second units, primary CoA = the CoA."""
    c = cache()
    out = send(c, bu(10))
    assert out.accepted and out.status == BaStatus.ACCEPTED and out.reply
    assert out.ba == BindingAck(BaStatus.ACCEPTED, 10, BaFlags.K, 100)
    assert out.primary_before is None and out.primary_after == ip(COA1)
    assert not out.primary_changed or out.primary_before is None
    (b,) = c.bindings(HOA_A, now=1)
    assert (b.coa, b.bid, b.seq, b.lifetime, b.expires_at, b.key_mgmt) == (
        ip(COA1), 0, 10, 400.0, 400.0, True)
    assert c.primary_coa(HOA_A, now=1) == ip(COA1)
    assert c.last_seq(HOA_A) == 10 and len(c) == 1
    assert str(out.identity) == ALICE


def test_lifetime_is_capped_and_rounded_down() -> None:
    c = cache(max_lifetime=602)
    out = send(c, bu(1, lifetime=65535 * 4))
    assert out.ba.lifetime == 150 and out.ba.lifetime_seconds == 600  # 602 → whole units
    assert c.bindings(HOA_A, 0)[0].expires_at == 600


def test_k_bit_not_supported_is_cleared_in_ba() -> None:
    """RFC 6275 §10.3.1: K in the BA only if set in the BU and supported by the HA."""
    out = send(cache(supports_k=False), bu(1, k=True))
    assert out.accepted and not out.ba.key_mgmt
    out = send(cache(), bu(1, k=False))
    assert out.accepted and not out.ba.key_mgmt and not out.registered[0].key_mgmt


def test_no_ack_requested() -> None:
    """A clear: no BA needed on success; a rejection is always answered."""
    c = cache()
    assert send(c, bu(1, a=False)).reply is False
    assert send(c, bu(1, a=False)).reply is True  # 135: rejected


def test_home_address_spelling_does_not_matter() -> None:
    c = cache()
    send(c, bu(1), hoa="2001:0db8:0001:0000::000a")
    assert c.primary_coa(ipaddress.IPv6Address(HOA_A), 0) == ip(COA1)


# --- sequence numbers ------------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b", "greater"), [
    (1, 0, True), (0, 1, False), (5, 5, False), (0, 65535, True), (65535, 0, False),
    (32767, 0, True), (32768, 0, False), (32769, 0, False), (100, 65000, True),
])
def test_seq_greater_modulo(a: int, b: int, greater: bool) -> None:
    """RFC 6275 §9.5.1: x < y iff 0 < (y - x) mod 2^16 < 32768."""
    assert seq_greater(a, b) is greater


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_seq_greater_is_antisymmetric(a: int, b: int) -> None:
    assert not (seq_greater(a, b) and seq_greater(b, a))
    if a != b and (a - b) % 65536 != 32768:
        assert seq_greater(a, b) or seq_greater(b, a)


@pytest.mark.parametrize("second", [10, 9, 0, 10 + 32768, 10 + 40000])
def test_stale_sequence_number_gets_135_with_last_accepted(second: int) -> None:
    """RFC 6275 §9.5.1: 135 SEQUENCE_NUMBER_OUT_OF_WINDOW, the BA's seq = last accepted;
    the cache is unchanged."""
    c = cache()
    send(c, bu(10))
    out = send(c, bu(second % 65536), source=COA2, now=5)
    assert out.status == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW == 135
    assert out.ba.seq == 10 and out.ba.lifetime == 0 and not out.ba.key_mgmt and out.reply
    assert c.last_seq(HOA_A) == 10 and c.primary_coa(HOA_A, 5) == ip(COA1)


def test_sequence_number_wraps() -> None:
    c = cache()
    send(c, bu(65535))
    assert send(c, bu(0), now=1).accepted
    assert send(c, bu(32767), now=2).accepted  # 0 + 32767: still ahead
    assert not send(c, bu(32767 + 32768), now=3).accepted  # exactly half way: not greater


def test_any_sequence_number_without_an_entry() -> None:
    """RFC 6275 §9.5.1: no Binding Cache entry → any sequence number is accepted (also
    after a deregistration removed the entry)."""
    c = cache()
    send(c, bu(500))
    assert send(c, bu(501, lifetime=0)).accepted
    assert c.last_seq(HOA_A) is None
    assert send(c, bu(3)).accepted


def test_sequence_spaces_are_per_home_address() -> None:
    c = cache()
    send(c, bu(100))
    assert send(c, bu(1), hoa=HOA_B, identity=BOB).accepted


# --- rejections ------------------------------------------------------------------------------
@pytest.mark.parametrize(("hoa", "identity", "status"), [
    ("2001:db8:1::99", ALICE, BaStatus.NOT_HOME_AGENT_FOR_THIS_MN),  # no MN owns it
    ("2001:db8:9::a", ALICE, BaStatus.NOT_HOME_SUBNET),  # not in a home prefix
    (HOA_B, ALICE, BaStatus.ADMINISTRATIVELY_PROHIBITED),  # 4877-05: bob's HoA
    (HOA_A, "mallory@example.org", BaStatus.ADMINISTRATIVELY_PROHIBITED),  # unknown IDi
    (HOA_A, None, BaStatus.ADMINISTRATIVELY_PROHIBITED),  # no authenticated identity
])
def test_home_address_and_identity_checks(hoa: str, identity: str | None,
                                          status: BaStatus) -> None:
    """RFC 4877 §4.3 / §7 (4877-05, 4877-16, 4877-21): the IDi must be authorised for the
    HoA. RFC 4877 defines no status of its own, so 129; 133/132 per RFC 6275 §10.3.1."""
    c = cache()
    out = send(c, bu(1), hoa=hoa, identity=identity)
    assert out.status == status and not out.accepted and out.reply
    assert out.ba.status == status and out.ba.seq == 1 and out.ba.lifetime == 0
    assert len(c) == 0 and out.reason


def test_h_flag_clear_is_refused() -> None:
    """Only home registrations here (no return routability): 129."""
    out = send(cache(), bu(1, h=False))
    assert out.status == BaStatus.ADMINISTRATIVELY_PROHIBITED and "H flag" in out.reason


@pytest.mark.parametrize("coa", [
    "ff02::1", "fe80::1", "::", "::1", "::ffff:192.0.2.1", "2001:db8:1::77",
    "224.0.0.1", "0.0.0.0", "127.0.0.1", "240.0.0.1",
])
def test_invalid_care_of_addresses(coa: str) -> None:
    """RFC 6275 status 174: multicast, link-local, unspecified, loopback, v4-mapped,
    inside a home prefix (not foreign), reserved IPv4."""
    c = cache()
    out = send(c, bu(1), source=coa)
    assert out.status == BaStatus.INVALID_CARE_OF_ADDRESS, out.reason
    assert len(c) == 0


def test_invalid_alternate_care_of_address() -> None:
    out = send(cache(), bu(1, options=(AlternateCareOfAddress("ff05::2"),)))
    assert out.status == BaStatus.INVALID_CARE_OF_ADDRESS


def test_loopback_and_ipv4_care_of_address_policies() -> None:
    assert send(cache(allow_loopback_coa=True), bu(1), source="::1").accepted
    assert send(cache(), bu(1), source="198.51.100.7").accepted  # DSMIPv6 IPv4 CoA
    out = send(cache(allow_ipv4_coa=False), bu(1), source="198.51.100.7")
    assert out.status == BaStatus.INVALID_CARE_OF_ADDRESS


def test_alternate_care_of_address_overrides_the_source() -> None:
    """RFC 6275 §6.2.5: the Alternate CoA option names the CoA to register."""
    c = cache()
    out = send(c, bu(1, options=(AlternateCareOfAddress(COA2),)), source=COA1)
    assert out.primary_after == ip(COA2)
    assert c.accepts_from(HOA_A, COA2, 0) and not c.accepts_from(HOA_A, COA1, 0)
    two = (AlternateCareOfAddress(COA2), AlternateCareOfAddress(COA3))
    assert send(c, bu(2, options=two)).status == BaStatus.REASON_UNSPECIFIED


def test_rejection_leaves_the_cache_alone() -> None:
    c = cache()
    send(c, bu(5))
    send(c, bu(6), source="ff02::1")
    assert c.last_seq(HOA_A) == 5 and c.primary_coa(HOA_A, 0) == ip(COA1)


# --- deregistration and lifetimes ------------------------------------------------------------
def test_lifetime_zero_deregisters() -> None:
    c = cache()
    send(c, bu(1))
    out = send(c, bu(2, lifetime=0), now=10)
    assert out.accepted and out.ba.lifetime == 0 and out.reason == "deregistered"
    assert [b.coa for b in out.removed] == [ip(COA1)]
    assert out.primary_after is None and len(c) == 0
    assert not c.accepts_from(HOA_A, COA1, 10)


def test_deregistration_without_entry_is_accepted() -> None:
    out = send(cache(), bu(1, lifetime=0))
    assert out.accepted and out.removed == ()


def test_return_home_removes_every_binding() -> None:
    """CoA == HoA (RFC 6275 §11.5.4) deregisters; with K the BA still carries K so the IKE
    SA can move to the HoA (4877-14)."""
    c = cache()
    send(c, bu(1, options=(BindingIdentifier(1), BindingIdentifier(2, coa=COA2))))
    out = send(c, bu(2, options=(AlternateCareOfAddress(HOA_A),)), now=3)
    assert out.accepted and out.returned_home and out.ba.key_mgmt
    assert len(out.removed) == 2 and len(c) == 0


def test_expiry_on_the_injected_clock() -> None:
    c = cache()
    send(c, bu(1, lifetime=40), now=100)
    assert c.next_expiry() == 140
    assert c.bindings(HOA_A, now=139.9) and not c.bindings(HOA_A, now=140)
    assert c.primary(HOA_A, now=140) is None
    report = c.expire(now=140)
    assert [b.coa for b in report.removed] == [ip(COA1)]
    assert report.primary_changes[0].old == ip(COA1) and report.primary_changes[0].new is None
    assert len(c) == 0 and c.expire(now=1000).removed == ()
    assert c.next_expiry() is None


def test_refresh_extends_the_lifetime() -> None:
    c = cache()
    send(c, bu(1, lifetime=40), now=0)
    send(c, bu(2, lifetime=40), now=30)
    assert c.bindings(HOA_A, now=60)[0].expires_at == 70


def test_an_expired_entry_accepts_any_sequence_number() -> None:
    c = cache()
    send(c, bu(900, lifetime=8), now=0)
    assert send(c, bu(1), now=9).accepted


# --- several care-of addresses (RFC 5648) ----------------------------------------------------
def bulk(seq: int, **kwargs: object) -> BindingUpdate:
    return bu(seq, options=(BindingIdentifier(1), BindingIdentifier(2, coa=COA2)), **kwargs)  # type: ignore[arg-type]


def test_bulk_registration_and_monami6_acceptance() -> None:
    """RFC 5648: BID 1 takes the source CoA, BID 2 its own; the BA echoes each BID with its
    status; BUs and tunnelled traffic are accepted from any registered CoA (MON-01)."""
    c = cache()
    out = send(c, bulk(1))
    assert out.accepted and out.primary_after == ip(COA1)
    assert out.ba.options == (BindingIdentifier(1, 0), BindingIdentifier(2, 0))
    assert {(b.bid, b.coa) for b in c.bindings(HOA_A, 0)} == {(1, ip(COA1)), (2, ip(COA2))}
    assert c.accepts_from(HOA_A, COA1, 0) and c.accepts_from(HOA_A, COA2, 0)
    assert not c.accepts_from(HOA_A, COA3, 0)
    assert c.home_addresses_at(COA2, 0) == (ipaddress.IPv6Address(HOA_A),)
    # a BU refreshing BID 2 may come from CoA 2: accepted, primary stays on CoA 1
    out = send(c, bu(2, options=(BindingIdentifier(2),)), source=COA2, now=1)
    assert out.accepted and not out.primary_changed and out.primary_after == ip(COA1)


def test_registering_another_coa_does_not_move_the_primary() -> None:
    """4877-25: the IKE SA stays on the primary CoA when a second CoA is registered."""
    c = cache()
    send(c, bu(1, options=(BindingIdentifier(1),)))
    out = send(c, bu(2, options=(BindingIdentifier(2),)), source=COA2, now=1)
    assert out.accepted and out.primary_before == out.primary_after == ip(COA1)
    assert not out.primary_changed


def test_primary_binding_with_a_new_coa_moves_the_primary() -> None:
    c = cache()
    send(c, bulk(1))
    out = send(c, bu(2, options=(BindingIdentifier(1),)), source=COA3, now=1)
    assert out.primary_changed and out.primary_after == ip(COA3)


def test_deregistering_the_primary_elects_by_priority() -> None:
    """The primary's binding goes: the best BID-PRI (RFC 6089, lower = better) wins."""
    c = cache()
    send(c, bu(1, options=(BindingIdentifier(1),
                           BindingIdentifier(2, flags=BidFlags(9), coa=COA2),
                           BindingIdentifier(3, flags=BidFlags(3), coa=COA3))))
    out = send(c, bu(2, lifetime=0, options=(BindingIdentifier(1),)), source=COA2, now=1)
    assert out.accepted and out.primary_before == ip(COA1)
    # the BU came from CoA 2, whose binding exists: the sender's CoA wins over priority
    assert out.primary_after == ip(COA2)
    out = send(c, bu(3, lifetime=0, options=(BindingIdentifier(2),)), source=COA1, now=2)
    assert out.primary_after == ip(COA3)
    assert [b.bid for b in c.bindings(HOA_A, 2)] == [3]


def test_plain_bu_replaces_bid_bindings() -> None:
    c = cache()
    send(c, bulk(1))
    out = send(c, bu(2), source=COA3, now=1)
    assert out.accepted and {b.bid for b in out.removed} == {1, 2}
    assert [(b.bid, b.coa) for b in c.bindings(HOA_A, 1)] == [(0, ip(COA3))]


@pytest.mark.parametrize(("options", "policy", "status"), [
    ((BindingIdentifier(0),), {}, BaStatus.MCOA_MALFORMED),
    ((BindingIdentifier(1), BindingIdentifier(1, coa=COA2)), {}, BaStatus.MCOA_MALFORMED),
    ((BindingIdentifier(1), BindingIdentifier(2)), {}, BaStatus.MCOA_MALFORMED),
    ((BindingIdentifier(1),), {"allow_mcoa": False}, BaStatus.MCOA_PROHIBITED),
    ((BindingIdentifier(1), BindingIdentifier(2, coa=COA2)), {"allow_bulk": False},
     BaStatus.MCOA_BULK_REGISTRATION_PROHIBITED),
    ((BindingIdentifier(1, flags=BidFlags.H),), {},
     BaStatus.MCOA_SIMULTANEOUS_HOME_AND_FOREIGN_PROHIBITED),
    ((BindingIdentifier(1), BindingIdentifier(2, coa=COA2), BindingIdentifier(3, coa=COA3)),
     {"max_bindings": 2}, BaStatus.INSUFFICIENT_RESOURCES),
    ((BindingIdentifier(1, coa="fe80::5"),), {}, BaStatus.INVALID_CARE_OF_ADDRESS),
])
def test_binding_identifier_misuse(options: tuple[MobilityOption, ...],
                                   policy: dict[str, object], status: BaStatus) -> None:
    """RFC 5648 status codes 164-169 (and 130, 174 for BIDs)."""
    c = cache(**policy)
    out = send(c, bu(1, options=options))
    assert out.status == status, out.reason
    assert len(c) == 0


def test_bid_bu_while_a_plain_binding_exists() -> None:
    c = cache()
    send(c, bu(1))
    out = send(c, bu(2, options=(BindingIdentifier(1),)), now=1)
    assert out.status == BaStatus.MCOA_NON_MCOA_BINDING_EXISTS


def test_partial_deregistration_by_bid() -> None:
    c = cache()
    send(c, bulk(1))
    out = send(c, bu(2, lifetime=0, options=(BindingIdentifier(2), BindingIdentifier(7))))
    assert out.accepted and [b.bid for b in out.removed] == [2]
    assert [b.bid for b in c.bindings(HOA_A, 0)] == [1] and c.last_seq(HOA_A) == 2


def test_bid_lifetimes_expire_separately() -> None:
    c = cache()
    send(c, bu(1, lifetime=100, options=(BindingIdentifier(1),)), now=0)
    send(c, bu(2, lifetime=20, options=(BindingIdentifier(2),)), source=COA2, now=0)
    report = c.expire(now=50)
    assert [b.bid for b in report.removed] == [2] and report.primary_changes == ()
    assert c.primary_coa(HOA_A, 50) == ip(COA1)


# --- DSMIPv6 and options in the BA -----------------------------------------------------------
def test_nat_detected_for_ipv4_care_of_address() -> None:
    """5555-03: the IPv4 CoA option differs from the outer source → NAT; the BA carries
    the NAT Detection option (F set)."""
    c = cache()
    out = send(c, bu(1, options=(Ipv4CareOfAddress("192.0.2.10"),)), source="203.0.113.9")
    assert out.accepted and out.nat_detected
    assert NatDetection(True, 110) in out.ba.options
    out = send(c, bu(2, options=(Ipv4CareOfAddress("203.0.113.9"),)), source="203.0.113.9")
    assert not out.nat_detected and not any(isinstance(o, NatDetection) for o in out.ba.options)


def test_binding_refresh_advice_when_configured() -> None:
    out = send(cache(refresh_advice=300), bu(1))
    assert BindingRefreshAdvice(75) in out.ba.options
    assert not send(cache(refresh_advice=300), bu(1, lifetime=0)).ba.options


def test_policy_validation() -> None:
    with pytest.raises(MobilityError, match="at least one home prefix"):
        HomeAgentPolicy(())
    with pytest.raises(MobilityError, match="below one lifetime unit"):
        policy_for([HOME], max_lifetime=3)
    with pytest.raises(MobilityError, match="bad home prefix"):
        HomeAgentPolicy(("2001:db8::1/64",))  # type: ignore[arg-type]
    with pytest.raises(MobilityError, match="max_bindings"):
        policy_for([HOME], max_bindings=0)
