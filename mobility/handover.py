"""The K-bit hook: from a Binding Update outcome to "move the IKE SA" (RFC 4877 §4.4,
RFC 6275 §10.3.1 / §11.7.3).

`Mover` is what the MN and HA agents call; `mobility.ike_api.ApiMover` (over ikev2d's REST
API) and `FakeMover` (tests) implement it. The decisions here
are pure: they return the call to make, and `HandoverCall.apply(mover)` makes it.

Home agent (REQUIREMENTS 4877-11, 4877-14, 4877-25):
- BU accepted with K (and K echoed in the BA) and the primary CoA changed →
  handover(identity=<IDi>, remote=<new primary CoA>, mode="kbit"): the HA's IKE SA to this
  MN now talks to the new CoA, with the same SPIs, no IKE exchange (4877-13).
- K not echoed (BU without K, or the HA does not support it) and the primary CoA changed →
  no call; `drop_ike_sa_to` names the old CoA whose IKE SAs are to be discarded.
- Return home (CoA == HoA) with K → handover(remote=<HoA>) (RFC 6275 §10.3.2, 4877-14).
- A first registration, or a second CoA (Monami6), moves nothing.
Mobile node (4877-12): BA accepted with K in both BU and BA → handover(local=<new CoA>);
K cleared by the HA → `renegotiate`: run IKE again from the new CoA.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from mobility.binding_cache import Address, BindingCache, BuOutcome
from mobility.mh import BindingAck, BindingUpdate
from mobility.options import any_ip
from mobility.transport import ReceivedBu

log = logging.getLogger(__name__)


class HandoverMode(StrEnum):
    """How the IKE daemon moves an IKE SA (the REST API's `mode`)."""

    KBIT = "kbit"  # RFC 4877 K bit: update endpoints locally, nothing sent in IKE


@runtime_checkable
class Mover(Protocol):
    """The IKE daemon's handover entry point as the mobility agents see it."""

    async def handover(
        self, *, ike_sa: int | None, identity: str | None, local: str | None,
        remote: str | None, mode: str,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class HandoverCall:
    """One `Mover.handover` call, as data."""

    identity: str | None = None
    local: str | None = None
    remote: str | None = None
    ike_sa: int | None = None
    mode: str = HandoverMode.KBIT

    def kwargs(self) -> dict[str, Any]:
        return {"ike_sa": self.ike_sa, "identity": self.identity, "local": self.local,
                "remote": self.remote, "mode": str(self.mode)}

    async def apply(self, mover: Mover) -> dict[str, Any]:
        return await mover.handover(**self.kwargs())


@dataclass(frozen=True, slots=True)
class HaDecision:
    outcome: BuOutcome
    handover: HandoverCall | None = None
    drop_ike_sa_to: Address | None = None

    @property
    def ba(self) -> BindingAck:
        return self.outcome.ba


@dataclass(frozen=True, slots=True)
class MnDecision:
    handover: HandoverCall | None = None
    renegotiate: bool = False  # K cleared: re-establish the IKE SA from the new CoA


def home_agent_decide(outcome: BuOutcome) -> HaDecision:
    """The HA's K-bit reaction to an already processed Binding Update."""
    if not outcome.accepted:
        return HaDecision(outcome)
    ident = str(outcome.identity) if outcome.identity is not None else None
    k = outcome.ba.key_mgmt
    before, after = outcome.primary_before, outcome.primary_after
    if outcome.returned_home:
        if k:
            return HaDecision(outcome, HandoverCall(identity=ident, remote=str(outcome.hoa)))
        return HaDecision(outcome, drop_ike_sa_to=before)
    if before is None or after is None or before == after:
        return HaDecision(outcome)
    if k:
        return HaDecision(outcome, HandoverCall(identity=ident, remote=str(after)))
    return HaDecision(outcome, drop_ike_sa_to=before)


def home_agent_process_bu(
    cache: BindingCache, bu: BindingUpdate, *, hoa: str | ipaddress.IPv6Address,
    source: str | Address, identity: str | None, now: float,
) -> HaDecision:
    """Validate and apply `bu` in `cache` (whose AuthorizationMap checks identity → HoA),
    then decide the K-bit handover. Returns the BA to send and the call to make, if any."""
    return home_agent_decide(
        cache.process_bu(bu, hoa=hoa, source=source, identity=identity, now=now)
    )


def mobile_node_decide(
    bu: BindingUpdate, ba: BindingAck, *, old_coa: str | Address | None,
    new_coa: str | Address, ike_sa: int | None = None,
) -> MnDecision:
    """The MN's reaction to the BA of a home registration (RFC 6275 §11.7.3, 4877-12)."""
    if not ba.accepted or ba.seq != bu.seq:
        return MnDecision()
    new = any_ip(new_coa)
    old = any_ip(old_coa) if old_coa is not None else None
    if old is None or old == new:
        return MnDecision()
    if bu.key_mgmt and ba.key_mgmt:
        return MnDecision(HandoverCall(local=str(new), ike_sa=ike_sa))
    return MnDecision(renegotiate=True)


@dataclass
class FakeMover:
    """A Mover for tests: records every call, answers like the REST API would."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    async def handover(
        self, *, ike_sa: int | None, identity: str | None, local: str | None,
        remote: str | None, mode: str,
    ) -> dict[str, Any]:
        call = {"ike_sa": ike_sa, "identity": identity, "local": local, "remote": remote,
                "mode": mode}
        self.calls.append(call)
        if self.fail_with is not None:
            raise self.fail_with
        return {"ike_sa": ike_sa if ike_sa is not None else 1, "moved": True, **call}


def _coa_text(host: str) -> str:
    """A socket address as a CoA: no zone index, IPv4-mapped IPv6 (a dual-stack socket)
    back to IPv4 (a DSMIPv6 IPv4 CoA)."""
    addr = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def home_agent_handler(
    cache: BindingCache, mover: Mover, *,
    identity_for: Callable[[str], str | None], clock: Callable[[], float],
    on_decision: Callable[[HaDecision], None] | None = None,
) -> Callable[[ReceivedBu], Awaitable[BindingAck | None]]:
    """Glue for mobility.transport.BindingUpdateServer: process each BU against `cache`,
    make the K-bit call (after the cache accepted the BU: 4877-15), return the BA to send.

    `identity_for(coa)` names the IDi of the IKE SA whose peer is that CoA (for unprotected
    BUs: the agents take it from the BU/BA SA instead, mobility/protection.py); `clock()`
    gives `now`."""

    async def handle(rx: ReceivedBu) -> BindingAck | None:
        host = _coa_text(rx.source[0])
        decision = home_agent_process_bu(
            cache, rx.bu, hoa=rx.hoa, source=host, identity=identity_for(host), now=clock()
        )
        if decision.handover is not None:
            try:
                await decision.handover.apply(mover)
            except Exception:  # the BA still goes out; the agent retries the move
                log.exception("K-bit handover %s failed", decision.handover)
        if on_decision is not None:
            on_decision(decision)
        return decision.ba if decision.outcome.reply else None

    return handle
