"""The K-bit hook (RFC 4877 §4.4; RFC 6275 §10.3.1, §10.3.2, §11.7.3): which accepted BUs
move the IKE SA, checked against a fake Mover (REQUIREMENTS 4877-11..15, 4877-25)."""

from __future__ import annotations

import asyncio
import inspect
import ipaddress

from mobility.authorization import AuthorizationMap
from mobility.binding_cache import BindingCache, policy_for
from mobility.handover import (
    FakeMover,
    HaDecision,
    HandoverCall,
    HandoverMode,
    Mover,
    home_agent_handler,
    home_agent_process_bu,
    mobile_node_decide,
)
from mobility.mh import BindingAck, BindingUpdate
from mobility.options import AlternateCareOfAddress, BindingIdentifier, MobilityOption
from mobility.registry import BaFlags, BaStatus, BuFlags
from mobility.transport import ReceivedBu

HOA, HA = "2001:db8:1::a", "2001:db8:1::1"
COA1, COA2, COA3 = "2001:db8:2::1", "2001:db8:3::2", "2001:db8:4::3"
ALICE = "alice@example.org"


def cache(**kwargs: object) -> BindingCache:
    return BindingCache(policy_for(["2001:db8:1::/64"], **kwargs),
                        AuthorizationMap({ALICE: [HOA]}))


def bu(seq: int, *, k: bool = True, lifetime: int = 100,
       options: tuple[MobilityOption, ...] = ()) -> BindingUpdate:
    flags = BuFlags.A | BuFlags.H | (BuFlags.K if k else BuFlags(0))
    return BindingUpdate(seq, flags, lifetime, options)


def process(c: BindingCache, msg: BindingUpdate, source: str, now: float = 0.0,
            identity: str | None = ALICE):  # type: ignore[no-untyped-def]
    return home_agent_process_bu(c, msg, hoa=HOA, source=source, identity=identity, now=now)


def run(call: HandoverCall, mover: FakeMover) -> dict[str, object]:
    return asyncio.run(call.apply(mover))


def test_mover_protocol_shape() -> None:
    """The call the agents make: handover(*, ike_sa, identity, local, remote, mode)."""
    params = inspect.signature(Mover.handover).parameters
    assert list(params) == ["self", "ike_sa", "identity", "local", "remote", "mode"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in params.items() if n != "self")
    assert set(HandoverCall().kwargs()) == set(params) - {"self"}
    assert isinstance(FakeMover(), Mover)


def test_first_registration_moves_nothing() -> None:
    d = process(cache(), bu(1), COA1)
    assert d.ba.accepted and d.ba.key_mgmt
    assert d.handover is None and d.drop_ike_sa_to is None


def test_k_bit_primary_change_moves_the_ike_sa() -> None:
    """4877-11: BU with K accepted and K echoed, primary CoA changed → the HA moves the
    IKE SA's peer to the new CoA (mode kbit, no IKE exchange: 4877-13)."""
    c = cache()
    process(c, bu(1), COA1)
    d = process(c, bu(2), COA2, now=5)
    assert d.ba == BindingAck(BaStatus.ACCEPTED, 2, BaFlags.K, 100)
    assert d.handover == HandoverCall(identity=ALICE, remote=COA2, mode=HandoverMode.KBIT)
    mover = FakeMover()
    answer = run(d.handover, mover)
    assert mover.calls == [{"ike_sa": None, "identity": ALICE, "local": None,
                            "remote": COA2, "mode": "kbit"}]
    assert answer["moved"] is True


def test_without_k_the_old_ike_sa_is_dropped() -> None:
    """RFC 6275 §10.3.1 / 4877-11: K clear in the BU, or the HA lacks K support → no move;
    IKE SAs to the old CoA are to be discarded."""
    c = cache()
    process(c, bu(1, k=False), COA1)
    d = process(c, bu(2, k=False), COA2)
    assert d.handover is None and d.drop_ike_sa_to == ipaddress.ip_address(COA1)
    c = cache(supports_k=False)
    process(c, bu(1), COA1)
    d = process(c, bu(2), COA2)
    assert not d.ba.key_mgmt and d.handover is None
    assert d.drop_ike_sa_to == ipaddress.ip_address(COA1)


def test_second_care_of_address_moves_nothing() -> None:
    """4877-25 / MON-01: registering another CoA keeps the IKE SA on the primary."""
    c = cache()
    process(c, bu(1, options=(BindingIdentifier(1),)), COA1)
    d = process(c, bu(2, options=(BindingIdentifier(2),)), COA2)
    assert d.ba.accepted and d.handover is None and d.drop_ike_sa_to is None


def test_primary_bid_moving_moves_the_ike_sa() -> None:
    c = cache()
    process(c, bu(1, options=(BindingIdentifier(1), BindingIdentifier(2, coa=COA2))), COA1)
    d = process(c, bu(2, options=(BindingIdentifier(1),)), COA3)
    assert d.handover is not None and d.handover.remote == COA3


def test_primary_deregistered_moves_to_the_next_coa() -> None:
    c = cache()
    process(c, bu(1, options=(BindingIdentifier(1), BindingIdentifier(2, coa=COA2))), COA1)
    d = process(c, bu(2, lifetime=0, options=(BindingIdentifier(1),)), COA2)
    assert d.handover is not None and d.handover.remote == COA2


def test_return_home_moves_the_ike_sa_to_the_home_address() -> None:
    """RFC 6275 §10.3.2 (4877-14): on de-registration at home the HoA is the new address of
    the key management connection."""
    c = cache()
    process(c, bu(1), COA1)
    d = process(c, bu(2, lifetime=0, options=(AlternateCareOfAddress(HOA),)), HOA)
    assert d.handover == HandoverCall(identity=ALICE, remote=HOA)
    c = cache()
    process(c, bu(1, k=False), COA1)
    d = process(c, bu(2, k=False, options=(AlternateCareOfAddress(HOA),)), HOA)
    assert d.handover is None and d.drop_ike_sa_to == ipaddress.ip_address(COA1)


def test_deregistration_while_away_moves_nothing() -> None:
    c = cache()
    process(c, bu(1), COA1)
    d = process(c, bu(2, lifetime=0), COA1)
    assert d.ba.accepted and d.handover is None and d.drop_ike_sa_to is None


def test_rejected_bus_never_move_anything() -> None:
    """4877-05/15: a BU that is not accepted (wrong identity, stale seq) changes nothing."""
    c = cache()
    process(c, bu(5), COA1)
    d = process(c, bu(6), COA2, identity="mallory@example.org")
    assert d.ba.status == BaStatus.ADMINISTRATIVELY_PROHIBITED and d.handover is None
    d = process(c, bu(5), COA2)
    assert d.ba.status == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW and d.handover is None
    assert c.primary_coa(HOA, 0) == ipaddress.ip_address(COA1)


def test_mobile_node_side() -> None:
    """4877-12: K in BU and BA → move the local end of the IKE SA to the new CoA; K cleared
    by the HA → renegotiate from the new CoA; nothing before an accepted matching BA (4877-15)."""
    sent = bu(7)
    d = mobile_node_decide(sent, BindingAck(0, 7, BaFlags.K, 100), old_coa=COA1, new_coa=COA2,
                           ike_sa=3)
    assert d.handover == HandoverCall(local=COA2, ike_sa=3) and not d.renegotiate
    d = mobile_node_decide(sent, BindingAck(0, 7, BaFlags(0), 100), old_coa=COA1, new_coa=COA2)
    assert d.handover is None and d.renegotiate
    assert mobile_node_decide(sent, BindingAck(129, 7), old_coa=COA1, new_coa=COA2).handover \
        is None
    assert mobile_node_decide(sent, BindingAck(0, 6, BaFlags.K), old_coa=COA1,
                              new_coa=COA2).handover is None
    assert mobile_node_decide(sent, BindingAck(0, 7, BaFlags.K), old_coa=COA1,
                              new_coa=COA1).handover is None
    assert mobile_node_decide(sent, BindingAck(0, 7, BaFlags.K), old_coa=None,
                              new_coa=COA1).handover is None


def test_home_agent_handler_calls_the_mover_and_answers() -> None:
    """The transport glue: identity from the CoA's IKE SA, clock injected, the BA comes
    back even when the mover fails."""
    c = cache()
    mover = FakeMover()
    clock = iter([0.0, 10.0, 20.0])
    seen: list[HaDecision] = []
    handle = home_agent_handler(c, mover, identity_for=lambda coa: ALICE,
                                clock=lambda: next(clock), on_decision=seen.append)
    hoa, ha = ipaddress.IPv6Address(HOA), ipaddress.IPv6Address(HA)

    async def scenario() -> list[BindingAck | None]:
        out = [await handle(ReceivedBu(bu(1), hoa, ha, (COA1, 4191)))]
        out.append(await handle(ReceivedBu(bu(2), hoa, ha, (COA2 + "%eth0", 4191))))
        mover.fail_with = RuntimeError("REST API down")
        no_ack = BindingUpdate(3, BuFlags.H | BuFlags.K, 100)
        out.append(await handle(ReceivedBu(no_ack, hoa, ha, (COA3, 4191))))
        return out

    first, second, third = asyncio.run(scenario())
    assert first is not None and second is not None and second.key_mgmt
    assert third is None  # A clear and accepted: no BA
    assert [call["remote"] for call in mover.calls] == [COA2, COA3]
    assert len(seen) == 3 and seen[2].handover is not None
    assert c.bindings(HOA, 20)[0].registered_at == 20.0
