"""The home agent's binding cache: several care-of addresses per home address (RFC 5648
Binding Identifiers), lifetimes on an injected clock, RFC 6275 §9.5.1 sequence numbers,
deregistration, the primary CoA, and Binding Update validation that yields the Binding
Acknowledgement.

Pure logic: every method takes `now` (seconds, any monotonic origin); nothing here reads a
clock, sends a packet or calls the IKE daemon. mobility/handover.py turns an outcome into
the K-bit call.

Rules (docs/mobility.md has the table):
- A BU is checked in this order (RFC 6275 §9.5.1, §10.3.1; RFC 4877 §4.3; RFC 5648 §6):
  H flag (129: only home registrations here), HoA in a home prefix (132), HoA known and
  authorised for the authenticated identity (133 / 129, mobility/authorization.py),
  sequence number (135, the BA carrying the last accepted number), options (128 for two
  Alternate CoA options; 166/164/168/169/165 for Binding Identifier misuse), care-of
  addresses (174), room (130).
- Sequence numbers compare modulo 2**16 (x < y iff 0 < (y - x) mod 2**16 < 2**15); one
  sequence space per home address, shared by its BIDs (the MN keeps one Binding Update
  List entry per HA). With no entry for the HoA any number is accepted (RFC 6275 §9.5.1).
- Lifetime 0 deregisters (all bindings, or the listed BIDs); a CoA equal to the HoA is a
  return home and removes every binding. The granted lifetime is the requested one capped
  at `max_lifetime`, in whole 4-second units.
- Key 0 in the cache is the plain RFC 6275 binding (a BU without Binding Identifier
  option): RFC 5648 reserves BID 0, so it cannot clash. A plain BU replaces all BID
  bindings; a BID BU while a plain binding exists is refused (165).
- The primary CoA is the one the IKE SA rides on (RFC 4877 §4.4, REQUIREMENTS 4877-25,
  MON-01). It is sticky: registering more CoAs never moves it. It changes when its own
  binding gets a new CoA, or disappears (deregistered, expired, replaced); then the
  binding whose CoA sent this BU wins, else the best BID-PRI (RFC 6089), then lowest BID.
- Monami6: traffic and BUs are accepted from any registered CoA (`accepts_from`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from ikev2.config.model import Identity
from mobility.authorization import AuthorizationMap
from mobility.errors import AuthorizationError, MobilityError
from mobility.mh import BindingAck, BindingUpdate, lifetime_units
from mobility.options import (
    AlternateCareOfAddress,
    BindingIdentifier,
    BindingRefreshAdvice,
    Ipv4CareOfAddress,
    MobilityOption,
    NatDetection,
    any_ip,
    v6,
)
from mobility.registry import LIFETIME_UNIT, BaFlags, BaStatus, is_accepted

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address
Address = IPv4 | IPv6
PLAIN = 0  # cache key of a binding registered without a Binding Identifier option
SEQ_MOD = 1 << 16


def seq_greater(a: int, b: int) -> bool:
    """a > b modulo 2**16 (RFC 6275 §9.5.1: x < y iff 0 < (y - x) mod 2**16 < 32768)."""
    return 0 < (a - b) % SEQ_MOD < SEQ_MOD // 2


@dataclass(frozen=True, slots=True)
class HomeAgentPolicy:
    """What this home agent offers. `home_prefixes`: the prefixes it serves (RFC 6275
    §10.3.1 "on-link with respect to the Prefix List")."""

    home_prefixes: tuple[ipaddress.IPv6Network, ...]
    max_lifetime: float = 3600.0  # seconds; granted = min(requested, this)
    supports_k: bool = True  # RFC 4877 §4.4: can move the IKE SA with the CoA
    allow_mcoa: bool = True  # RFC 5648 Binding Identifiers
    allow_bulk: bool = True  # RFC 5648 several BIDs in one BU
    allow_ipv4_coa: bool = True  # RFC 5555 IPv4 care-of addresses
    allow_loopback_coa: bool = False  # testbeds on one host only
    max_bindings: int = 8  # per home address
    refresh_advice: float | None = None  # seconds, sent as Binding Refresh Advice
    nat_keepalive: int = 110  # RFC 5555 NAT Detection refresh time, seconds [M]

    def __post_init__(self) -> None:
        prefixes = []
        for p in self.home_prefixes:
            try:
                net = ipaddress.IPv6Network(p) if not isinstance(p, ipaddress.IPv6Network) else p
            except ValueError as exc:
                raise MobilityError(f"bad home prefix {p!r}: {exc}") from None
            prefixes.append(net)
        if not prefixes:
            raise MobilityError("a home agent needs at least one home prefix")
        object.__setattr__(self, "home_prefixes", tuple(prefixes))
        if self.max_lifetime < LIFETIME_UNIT:
            raise MobilityError(f"max_lifetime {self.max_lifetime} s is below one lifetime "
                                f"unit ({LIFETIME_UNIT} s)")
        if self.max_bindings < 1:
            raise MobilityError("max_bindings must be at least 1")

    def in_home_prefix(self, addr: Address) -> bool:
        return isinstance(addr, IPv6) and any(addr in p for p in self.home_prefixes)


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered care-of address of a home address. `bid` 0: a plain RFC 6275
    binding (no Binding Identifier)."""

    hoa: IPv6
    coa: Address
    bid: int
    priority: int
    seq: int
    lifetime: float  # granted seconds
    registered_at: float
    expires_at: float
    key_mgmt: bool  # K accepted for this registration

    def alive(self, now: float) -> bool:
        return now < self.expires_at


@dataclass(frozen=True, slots=True)
class PrimaryChange:
    hoa: IPv6
    old: Address | None
    new: Address | None


@dataclass(frozen=True, slots=True)
class BuOutcome:
    """What one Binding Update did. `ba` is the answer; send it when `reply` (A set, or
    a rejection: RFC 6275 §9.5.4 / §10.3.1)."""

    status: int
    reason: str
    ba: BindingAck
    reply: bool
    hoa: IPv6
    source: Address
    identity: Identity | None = None
    registered: tuple[Binding, ...] = ()
    removed: tuple[Binding, ...] = ()
    primary_before: Address | None = None
    primary_after: Address | None = None
    returned_home: bool = False
    nat_detected: bool = False

    @property
    def accepted(self) -> bool:
        return is_accepted(self.status)

    @property
    def primary_changed(self) -> bool:
        return self.accepted and self.primary_before != self.primary_after


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    removed: tuple[Binding, ...] = ()
    primary_changes: tuple[PrimaryChange, ...] = ()


@dataclass(slots=True)
class _Entry:
    hoa: IPv6
    identity: Identity | None
    last_seq: int
    bindings: dict[int, Binding] = field(default_factory=dict)
    primary: int | None = None

    def primary_coa(self) -> Address | None:
        b = self.bindings.get(self.primary) if self.primary is not None else None
        return b.coa if b is not None else None

    def elect(self, source: Address | None) -> None:
        """Keep the primary while its binding exists; else pick one (module docstring)."""
        if self.primary is not None and self.primary in self.bindings:
            return
        if not self.bindings:
            self.primary = None
            return
        from_source = [k for k, b in self.bindings.items() if b.coa == source]
        if from_source:
            self.primary = min(from_source)
            return
        self.primary = min(
            self.bindings, key=lambda k: (self.bindings[k].priority or 0x80, k)
        )


class _Reject(Exception):
    """Internal: ends BU processing with a rejection status; never escapes the module."""

    def __init__(self, status: BaStatus, reason: str, seq: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.seq = seq


class BindingCache:
    """Home agent binding cache (RFC 6275 §9.1 + RFC 5648 §4.1)."""

    __slots__ = ("_entries", "authorization", "policy")

    def __init__(self, policy: HomeAgentPolicy, authorization: AuthorizationMap) -> None:
        self.policy = policy
        self.authorization = authorization
        self._entries: dict[IPv6, _Entry] = {}

    # -- queries --------------------------------------------------------------------------
    def bindings(self, hoa: str | IPv6, now: float) -> tuple[Binding, ...]:
        """Live bindings of `hoa`, lowest BID first."""
        entry = self._entries.get(v6(hoa))
        if entry is None:
            return ()
        return tuple(b for _, b in sorted(entry.bindings.items()) if b.alive(now))

    def primary(self, hoa: str | IPv6, now: float) -> Binding | None:
        entry = self._entries.get(v6(hoa))
        if entry is None or entry.primary is None:
            return None
        b = entry.bindings.get(entry.primary)
        return b if b is not None and b.alive(now) else None

    def primary_coa(self, hoa: str | IPv6, now: float) -> Address | None:
        b = self.primary(hoa, now)
        return b.coa if b is not None else None

    def last_seq(self, hoa: str | IPv6) -> int | None:
        entry = self._entries.get(v6(hoa))
        return entry.last_seq if entry is not None else None

    def accepts_from(self, hoa: str | IPv6, address: str | Address, now: float) -> bool:
        """Monami6 (MON-01): BUs, HoTI and reverse-tunnelled packets of `hoa` are accepted
        from any registered CoA, not only the primary one."""
        addr = any_ip(address)
        return any(b.coa == addr for b in self.bindings(hoa, now))

    def home_addresses_at(self, coa: str | Address, now: float) -> tuple[IPv6, ...]:
        """Home addresses with a live binding at this CoA."""
        addr = any_ip(coa)
        return tuple(h for h in sorted(self._entries) if self.accepts_from(h, addr, now))

    def home_addresses(self) -> tuple[IPv6, ...]:
        """Every home address with a cache entry, sorted (status output)."""
        return tuple(sorted(self._entries))

    def identity_of(self, hoa: str | IPv6) -> Identity | None:
        """The identity that registered `hoa` (None without an entry)."""
        entry = self._entries.get(v6(hoa))
        return entry.identity if entry is not None else None

    def __len__(self) -> int:
        return len(self._entries)

    # -- time -----------------------------------------------------------------------------
    def expire(self, now: float) -> ExpiryReport:
        """Drop every binding whose lifetime ran out; report primary CoA changes."""
        removed: list[Binding] = []
        changes: list[PrimaryChange] = []
        for hoa in list(self._entries):
            gone, change = self._purge(hoa, now)
            removed.extend(gone)
            if change is not None:
                changes.append(change)
        return ExpiryReport(tuple(removed), tuple(changes))

    def next_expiry(self) -> float | None:
        """The earliest `expires_at` in the cache (for the caller's timer)."""
        times = [b.expires_at for e in self._entries.values() for b in e.bindings.values()]
        return min(times, default=None)

    def _purge(self, hoa: IPv6, now: float) -> tuple[list[Binding], PrimaryChange | None]:
        entry = self._entries.get(hoa)
        if entry is None:
            return [], None
        before = entry.primary_coa()
        gone = [b for b in entry.bindings.values() if not b.alive(now)]
        for b in gone:
            del entry.bindings[b.bid]
        entry.elect(None)
        if not entry.bindings:
            del self._entries[hoa]
        after = entry.primary_coa() if entry.bindings else None
        return gone, (PrimaryChange(hoa, before, after) if before != after else None)

    # -- Binding Update -------------------------------------------------------------------
    def process_bu(
        self, bu: BindingUpdate, *, hoa: str | IPv6, source: str | Address,
        identity: str | Identity | None, now: float,
    ) -> BuOutcome:
        """Validate `bu` (home address `hoa`, sent from `source`, over an IKE SA that
        authenticated `identity`), update the cache if it is acceptable, and return the
        outcome with its Binding Acknowledgement."""
        hoa_a = v6(hoa)
        src = any_ip(source)
        self._purge(hoa_a, now)
        entry = self._entries.get(hoa_a)
        before = entry.primary_coa() if entry is not None else None
        try:
            return self._accept(bu, hoa_a, src, identity, now, entry, before)
        except _Reject as rej:
            seq = rej.seq if rej.seq is not None else bu.seq
            return BuOutcome(
                status=rej.status, reason=rej.reason, ba=BindingAck(rej.status, seq),
                reply=True, hoa=hoa_a, source=src, primary_before=before,
                primary_after=before,
            )

    def _accept(
        self, bu: BindingUpdate, hoa: IPv6, src: Address, identity: str | Identity | None,
        now: float, entry: _Entry | None, before: Address | None,
    ) -> BuOutcome:
        pol = self.policy
        if not bu.home:
            raise _Reject(BaStatus.ADMINISTRATIVELY_PROHIBITED,
                          "H flag clear: this home agent accepts home registrations only")
        if not pol.in_home_prefix(hoa):
            raise _Reject(BaStatus.NOT_HOME_SUBNET,
                          f"home address {hoa} is not in a home prefix of this home agent")
        try:
            ident = self.authorization.check(identity, hoa)
        except AuthorizationError as exc:
            raise _Reject(exc.status, str(exc)) from None
        if entry is not None and not seq_greater(bu.seq, entry.last_seq):
            raise _Reject(
                BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW,
                f"sequence number {bu.seq} is not greater than {entry.last_seq} (mod 2^16)",
                seq=entry.last_seq,
            )
        requests, nat = self._requests(bu, hoa, src, entry)
        returned_home = any(coa == hoa for _, coa, _ in requests)
        dereg = bu.lifetime == 0 or returned_home
        if not dereg:
            for bid, coa, _ in requests:
                self._check_coa(coa, bid)
            keys = set(entry.bindings) if entry is not None else set()
            if any(bid != PLAIN for bid, _, _ in requests):
                keys |= {bid for bid, _, _ in requests}
            else:
                keys = {PLAIN}
            if len(keys) > pol.max_bindings:
                raise _Reject(BaStatus.INSUFFICIENT_RESOURCES,
                              f"{len(keys)} bindings for {hoa}; at most {pol.max_bindings}")

        key_mgmt = bu.key_mgmt and pol.supports_k
        removed: list[Binding] = []
        registered: list[Binding] = []
        granted_units = 0
        if dereg:
            if entry is not None:
                if returned_home or all(bid == PLAIN for bid, _, _ in requests):
                    removed = list(entry.bindings.values())
                    entry.bindings.clear()
                else:
                    for bid, _, _ in requests:
                        old = entry.bindings.pop(bid, None)
                        if old is not None:
                            removed.append(old)
                entry.last_seq = bu.seq
                entry.elect(src)
                if not entry.bindings:
                    del self._entries[hoa]
            reason = ("returned home: all bindings removed" if returned_home
                      else "deregistered")
        else:
            granted_units = lifetime_units(min(bu.lifetime_seconds, pol.max_lifetime))
            granted = float(granted_units * LIFETIME_UNIT)
            if entry is None:
                entry = _Entry(hoa, ident, bu.seq)
                self._entries[hoa] = entry
            entry.identity = ident
            entry.last_seq = bu.seq
            if requests[0][0] == PLAIN:
                removed = [b for k, b in entry.bindings.items() if k != PLAIN]
                for b in removed:
                    del entry.bindings[b.bid]
            for bid, coa, prio in requests:
                b = Binding(hoa, coa, bid, prio, bu.seq, granted, now, now + granted, key_mgmt)
                entry.bindings[bid] = b
                registered.append(b)
            entry.elect(src)
            reason = "registered"
        after = self._entries[hoa].primary_coa() if hoa in self._entries else None
        ba = BindingAck(
            BaStatus.ACCEPTED, bu.seq, BaFlags.K if key_mgmt else BaFlags(0), granted_units,
            self._ba_options(bu, dereg, nat),
        )
        return BuOutcome(
            status=BaStatus.ACCEPTED, reason=reason, ba=ba, reply=bu.ack, hoa=hoa, source=src,
            identity=ident, registered=tuple(registered), removed=tuple(removed),
            primary_before=before, primary_after=after, returned_home=returned_home,
            nat_detected=nat,
        )

    def _requests(
        self, bu: BindingUpdate, hoa: IPv6, src: Address, entry: _Entry | None,
    ) -> tuple[list[tuple[int, Address, int]], bool]:
        """(bid, coa, priority) per binding the BU asks for, and whether a NAT was seen."""
        pol = self.policy
        alts = [o for o in bu.options if isinstance(o, AlternateCareOfAddress)]
        if len(alts) > 1:
            raise _Reject(BaStatus.REASON_UNSPECIFIED, "more than one Alternate CoA option")
        v4opts = [o for o in bu.options if isinstance(o, Ipv4CareOfAddress)]
        nat = bool(v4opts) and isinstance(src, IPv4) and v4opts[0].address != src
        base: Address = alts[0].address if alts else src
        bids = [o for o in bu.options if isinstance(o, BindingIdentifier)]
        if not bids:
            return [(PLAIN, base, 0)], nat
        if not pol.allow_mcoa:
            raise _Reject(BaStatus.MCOA_PROHIBITED, "Binding Identifiers are not accepted here")
        ids = [b.bid for b in bids]
        if 0 in ids:
            raise _Reject(BaStatus.MCOA_MALFORMED, "BID 0 is reserved (RFC 5648 §6.1)")
        if len(set(ids)) != len(ids):
            raise _Reject(BaStatus.MCOA_MALFORMED, "a BID appears twice in one Binding Update")
        if len(bids) > 1 and not pol.allow_bulk:
            raise _Reject(BaStatus.MCOA_BULK_REGISTRATION_PROHIBITED,
                          "bulk registration (several BIDs in one BU) is not accepted here")
        if bu.lifetime and sum(b.coa is None for b in bids) > 1:  # deregistration needs none
            raise _Reject(BaStatus.MCOA_MALFORMED,
                          "more than one Binding Identifier without a care-of address")
        if any(b.simultaneous_home_and_foreign for b in bids):  # RFC 5648 §5.6: not offered
            raise _Reject(BaStatus.MCOA_SIMULTANEOUS_HOME_AND_FOREIGN_PROHIBITED,
                          "simultaneous home and foreign bindings are not accepted here")
        if entry is not None and PLAIN in entry.bindings:
            raise _Reject(BaStatus.MCOA_NON_MCOA_BINDING_EXISTS,
                          f"{hoa} has a binding without BID; deregister it first")
        return [(b.bid, b.coa if b.coa is not None else base, b.priority) for b in bids], nat

    def _check_coa(self, coa: Address, bid: int) -> None:
        pol = self.policy
        which = f"care-of address {coa}" + (f" (BID {bid})" if bid != PLAIN else "")
        bad = coa.is_multicast or coa.is_unspecified or (coa.version == 4 and coa.is_reserved)
        if isinstance(coa, IPv6):
            bad = bad or coa.is_link_local or coa.ipv4_mapped is not None
        if bad:
            raise _Reject(BaStatus.INVALID_CARE_OF_ADDRESS, f"{which} is not a unicast address")
        if coa.is_loopback and not pol.allow_loopback_coa:
            raise _Reject(BaStatus.INVALID_CARE_OF_ADDRESS, f"{which} is a loopback address")
        if coa.version == 4 and not pol.allow_ipv4_coa:
            raise _Reject(BaStatus.INVALID_CARE_OF_ADDRESS,
                          f"{which}: IPv4 care-of addresses (RFC 5555) are not accepted here")
        if pol.in_home_prefix(coa):
            raise _Reject(BaStatus.INVALID_CARE_OF_ADDRESS,
                          f"{which} lies in a home prefix; a care-of address is foreign")

    def _ba_options(self, bu: BindingUpdate, dereg: bool,
                    nat: bool) -> tuple[MobilityOption, ...]:
        out: list[MobilityOption] = [
            BindingIdentifier(o.bid, BaStatus.ACCEPTED, o.flags)
            for o in bu.options if isinstance(o, BindingIdentifier)
        ]
        if self.policy.refresh_advice is not None and not dereg:
            out.append(BindingRefreshAdvice(lifetime_units(self.policy.refresh_advice)))
        if nat:
            out.append(NatDetection(True, self.policy.nat_keepalive))
        return tuple(out)


def policy_for(prefixes: Iterable[str], **kwargs: object) -> HomeAgentPolicy:
    """HomeAgentPolicy from prefix strings."""
    return HomeAgentPolicy(tuple(ipaddress.IPv6Network(p) for p in prefixes), **kwargs)  # type: ignore[arg-type]
