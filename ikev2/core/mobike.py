"""MOBIKE (RFC 4555), both roles: address lists (§3.4, §3.6), the initiator's
UPDATE_SA_ADDRESSES with fresh NAT-D and COOKIE2 (§3.5, §3.7), the responder's checks
(NO_NATS_ALLOWED, UNACCEPTABLE_ADDRESSES) and the move of the IKE SA and its CHILD_SAs."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from ikev2.core import natd
from ikev2.core.events import Endpoint, IkeSaUpdated, IkeSaUpdateFailed
from ikev2.core.sa import LIVE_IKE, ChildSa, IkeSa
from ikev2.errors import KernelError
from ikev2.protocol.enums import ExchangeType, NotifyType, ProtocolId
from ikev2.protocol.header import Header
from ikev2.protocol.payloads import Notify

if TYPE_CHECKING:
    from ikev2.core.engine import Engine

log = logging.getLogger("ikev2.core")
_NONE = ProtocolId.NONE
_INFO = ExchangeType.INFORMATIONAL
_ADDR4, _ADDR6 = NotifyType.ADDITIONAL_IP4_ADDRESS, NotifyType.ADDITIONAL_IP6_ADDRESS
_LIST = frozenset({_ADDR4, _ADDR6, NotifyType.NO_ADDITIONAL_ADDRESSES})


@dataclass(frozen=True, slots=True)
class Moved:
    old_local: Endpoint
    old_remote: Endpoint


# -- address lists ----------------------------------------------------------------------------
def address_list(engine: Engine, sa: IkeSa) -> list[Notify]:
    """ADDITIONAL_IP4/6_ADDRESS for our other addresses, or NO_ADDITIONAL_ADDRESSES
    (4555-08): never the address in the IP header."""
    out: list[Notify] = []
    for a in engine.local_addresses:
        if a == sa.local[0]:
            continue
        ip = ipaddress.ip_address(a)
        out.append(Notify(_NONE, _ADDR4 if ip.version == 4 else _ADDR6, b"", ip.packed))
    return out or [Notify(_NONE, NotifyType.NO_ADDITIONAL_ADDRESSES)]


def note_peer_addresses(sa: IkeSa, notifies: list[Notify]) -> bool:
    """A received list replaces the previous one entirely (4555-09). False if none."""
    if not any(n.type in _LIST for n in notifies):
        return False
    addrs: list[str] = []
    for n in notifies:
        if (n.type == _ADDR4 and len(n.data) == 4) or (n.type == _ADDR6 and len(n.data) == 16):
            addrs.append(str(ipaddress.ip_address(n.data)))
    sa.peer_addrs = tuple(addrs)
    return True


# -- initiator (§3.5) -------------------------------------------------------------------------
def start_update(engine: Engine, sa: IkeSa, local: Endpoint, remote: Endpoint, now: float) -> None:
    """Move the IKE SA now (outstanding retransmissions follow, 4555-04/17) and send
    UPDATE_SA_ADDRESSES from the new address; the CHILD_SAs move on the answer."""
    moved = Moved(sa.local, sa.remote) if sa.moving is None else sa.moving
    sa.local, sa.remote = local, remote
    sa.moving = moved
    if sa.pending is not None and sa.pending.exchange == _INFO and sa.pending.update:
        sa.update_again = True  # answered first, then one more UPDATE (4555-05)
        return
    cookie2 = engine.random(16)
    payloads: list = [Notify(_NONE, NotifyType.UPDATE_SA_ADDRESSES)]
    payloads += natd.payloads(sa.spi_i, sa.spi_r, local, remote)
    payloads.append(Notify(_NONE, NotifyType.COOKIE2, b"", cookie2))
    log.info("IKE_SA %s[%d] MOBIKE update %s[%d] -> %s[%d]", sa.name, sa.ike_id, *local,
             *remote)
    engine.send_request(sa, _INFO, payloads, partial(_on_update_response, cookie2), now)
    if sa.pending is not None and sa.pending.exchange == _INFO and not sa.queue:
        sa.pending.update = True


def _on_update_response(
    cookie2: bytes, engine: Engine, sa: IkeSa, header: Header, payloads: list, data: bytes,
    now: float,
) -> None:
    notifies = [p for p in payloads if isinstance(p, Notify)]
    echoed = next((n.data for n in notifies if n.type == NotifyType.COOKIE2), None)
    if echoed != cookie2:  # 4555-10: a failed return routability check
        engine.remove(sa, "MOBIKE: the peer did not echo our COOKIE2")
        return
    error = next((n for n in notifies if n.type < 16384), None)
    moved = sa.moving
    sa.moving = None
    if error is not None:
        name = _name(error.type)
        log.warning("IKE_SA %s[%d] MOBIKE update refused: %s; keeping the old addresses",
                    sa.name, sa.ike_id, name)
        wanted = (sa.local, sa.remote)
        if moved is not None:
            sa.local, sa.remote = moved.old_local, moved.old_remote
        sa.update_again = False  # a later update folded into this one is moot: we are back
        engine.emit(IkeSaUpdateFailed(
            sa.ike_id, sa.name, *wanted,
            f"the peer refused UPDATE_SA_ADDRESSES to {wanted[0][0]}[{wanted[0][1]}]-"
            f"{wanted[1][0]}[{wanted[1][1]}] with {name}; the IKE SA stays at "
            f"{sa.local[0]}[{sa.local[1]}]-{sa.remote[0]}[{sa.remote[1]}]", name))
        return
    if moved is not None:
        _nat_and_move(engine, sa, notifies, moved, now)
    if sa.update_again:
        sa.update_again = False
        start_update(engine, sa, sa.local, sa.remote, now)


# -- responder (§3.5) -------------------------------------------------------------------------
def handle_request(
    engine: Engine, sa: IkeSa, notifies: list[Notify], local: Endpoint, remote: Endpoint,
    now: float,
) -> list:
    """MOBIKE notifies in an INFORMATIONAL request: the address list, UPDATE_SA_ADDRESSES
    (4555-06), path tests with NAT-D/COOKIE2 that change nothing (4555-13)."""
    out: list = []
    if not sa.mobike:
        return out
    note_peer_addresses(sa, notifies)
    update = any(n.type == NotifyType.UPDATE_SA_ADDRESSES for n in notifies)
    if update and sa.initiator:
        log.info("IKE_SA %s[%d]: UPDATE_SA_ADDRESSES from the responder ignored (4555-03)",
                 sa.name, sa.ike_id)
        update = False
    if update:
        problem = _refusal(sa, notifies, local, remote)
        if problem is not None:
            notify, why = problem
            log.info("IKE_SA %s[%d] MOBIKE update from %s[%d] refused: %s", sa.name,
                     sa.ike_id, *remote, why)
            out.append(Notify(_NONE, notify))
        elif (local, remote) != (sa.local, sa.remote):
            moved = Moved(sa.local, sa.remote)
            sa.local, sa.remote = local, remote  # from the IP/UDP header (4555-06 d)
            _nat_and_move(engine, sa, notifies, moved, now)
    if any(n.type in (NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP)
           for n in notifies):
        out += natd.payloads(sa.spi_i, sa.spi_r, local, remote)
    cookie2 = next((n.data for n in notifies if n.type == NotifyType.COOKIE2), None)
    if cookie2 is not None:
        out.append(Notify(_NONE, NotifyType.COOKIE2, b"", cookie2))
    return out


def _refusal(
    sa: IkeSa, notifies: list[Notify], local: Endpoint, remote: Endpoint
) -> tuple[NotifyType, str] | None:
    """NO_NATS_ALLOWED (4555-11) and our address policy (4555-06 c)."""
    for n in notifies:
        if n.type == NotifyType.NO_NATS_ALLOWED:
            seen = _nat_tuple(remote, local)
            if seen is None or n.data != seen:
                return NotifyType.UNEXPECTED_NAT_DETECTED, "the addresses changed in transit"
    conn = sa.conn
    if conn is not None:
        from ikev2.core.ike_init import _matches

        if not _matches(conn.remote_addrs, remote[0]):
            return NotifyType.UNACCEPTABLE_ADDRESSES, f"{remote[0]} not in remote_addrs"
        if ipaddress.ip_address(local[0]).version != ipaddress.ip_address(remote[0]).version:
            return NotifyType.UNACCEPTABLE_ADDRESSES, "address families differ"
    return None


def _nat_tuple(src: Endpoint, dst: Endpoint) -> bytes | None:
    try:
        s, d = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    except ValueError:
        return None
    return s.packed + d.packed + src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big")


# -- shared -----------------------------------------------------------------------------------
def _nat_and_move(
    engine: Engine, sa: IkeSa, notifies: list[Notify], moved: Moved, now: float
) -> None:
    """NAT-D over the new addresses decides UDP encapsulation (4555-05/06 h); then the
    CHILD_SAs follow the IKE SA (4555-14) and the world hears of it."""
    present, nat_local, nat_remote = natd.check(notifies, sa.spi_i, sa.spi_r, sa.local,
                                                sa.remote)
    if present:
        sa.nat_local, sa.nat_remote = nat_local, nat_remote
        forced = sa.conn.encap if sa.conn is not None else False
        sa.encap = forced or nat_local or nat_remote
    move_children(engine, sa, moved.old_local[0], moved.old_remote[0])
    log.info("IKE_SA %s[%d] moved %s[%d]-%s[%d] -> %s[%d]-%s[%d]%s", sa.name, sa.ike_id,
             *moved.old_local, *moved.old_remote, *sa.local, *sa.remote,
             " NAT-T" if sa.encap else "")
    engine.emit(IkeSaUpdated(moved.old_local, moved.old_remote, sa.info()))


def follows(c: ChildSa, old_local: str, old_remote: str) -> bool:
    """CHILD_SAs on the IKE SA's addresses move; SAs bound to other addresses (the HoA
    transport SAs of RFC 4877) stay (4555-14, 4877-06)."""
    return c.spec.local == old_local and c.spec.remote == old_remote


def move_children(engine: Engine, sa: IkeSa, old_local: str, old_remote: str) -> None:
    encap = (sa.local[1], sa.remote[1]) if sa.encap else None
    for c in sa.children.values():
        if not follows(c, old_local, old_remote):
            continue
        if c.spec.local == sa.local[0] and c.spec.remote == sa.remote[0] and c.spec.encap == encap:
            continue
        try:
            c.spec = engine.kernel.migrate_child(c.spec, sa.local[0], sa.remote[0], encap)
        except KernelError as e:
            log.warning("CHILD_SA %s{%d} cannot follow the IKE SA: %s", c.config.name,
                        c.child_id, e)


def follow_rebinding(engine: Engine, sa: IkeSa, local: Endpoint, remote: Endpoint) -> None:
    """A peer behind a NAT now comes from another address or port (a rebound NAT): the
    side not behind the NAT follows the last authenticated packet (RFC 7296 §2.23,
    7296-75; never with MOBIKE, 4555-15), CHILD_SAs' UDP encapsulation included."""
    if remote == sa.remote:
        return
    moved = Moved(sa.local, sa.remote)
    sa.remote = remote
    move_children(engine, sa, moved.old_local[0], moved.old_remote[0])
    log.info("IKE_SA %s[%d] peer's NAT mapping changed %s[%d] -> %s[%d]", sa.name, sa.ike_id,
             *moved.old_remote, *remote)
    engine.emit(IkeSaUpdated(moved.old_local, moved.old_remote, sa.info()))


def choose_path(engine: Engine, sa: IkeSa) -> tuple[str, str] | None:
    """The initiator lost its address: a new (local, remote) pair, the current peer
    address first, then the peer's other addresses (§3.5: the initiator decides)."""
    mine = list(engine.local_addresses)
    peers = [sa.remote[0], *[a for a in sa.peer_addrs if a != sa.remote[0]]]
    for peer in peers:
        version = ipaddress.ip_address(peer).version
        if engine.source_for is not None:  # what the routing table would use, if ours
            routed = engine.source_for(peer)
            if routed in mine:
                return routed, peer
        for a in mine:
            if ipaddress.ip_address(a).version == version:
                return a, peer
    return None


def addresses_changed(engine: Engine, now: float) -> None:
    """Our address set changed: initiators whose address went move (§3.5); every MOBIKE
    SA tells its peer the new list (§3.6)."""
    for sa in list(engine.by_id.values()):
        if not sa.mobike or sa.state not in LIVE_IKE:
            continue
        if sa.local[0] not in engine.local_addresses:
            if not sa.initiator:
                continue  # the initiator decides (4555-03); it will see our list later
            path = choose_path(engine, sa)
            if path is None:
                log.warning("IKE_SA %s[%d]: %s is gone and no other address can reach the "
                            "peer; waiting", sa.name, sa.ike_id, sa.local[0])
                continue
            start_update(engine, sa, (path[0], sa.local[1]), (path[1], sa.remote[1]), now)
        else:
            engine.send_request(sa, _INFO, address_list(engine, sa), None, now)


def _name(t: int) -> str:
    try:
        return NotifyType(t).name
    except ValueError:
        return f"notify {t}"
