"""IKE SA rekeying in CREATE_CHILD_SA, both roles (RFC 7296 §1.3.2, §2.8, §2.18): new SPIs
and keys from the old SK_d, CHILD_SAs move to the new IKE SA, the rekey initiator deletes
the old one; simultaneous rekeys resolved by the nonces (§2.8.2, §2.25.2)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ikev2.core import ike_init, informational, lifetimes
from ikev2.core.collect import collect
from ikev2.core.events import IkeSaRekeyed
from ikev2.core.negotiation import Selected, check_choice, select, to_proposals
from ikev2.core.sa import ChildState, IkeSa, IkeState
from ikev2.crypto.dh import get_group
from ikev2.crypto.encr import get_encr
from ikev2.crypto.integ import get_integ
from ikev2.crypto.keys import derive_rekeyed_ike_keys
from ikev2.crypto.prf import get_prf
from ikev2.errors import IkeError, InvalidKePayload, InvalidSyntax, NoProposalChosen
from ikev2.protocol.enums import ExchangeType, NotifyType, ProtocolId, TransformType
from ikev2.protocol.header import Header
from ikev2.protocol.payloads import KE, SA, Nonce, Notify

if TYPE_CHECKING:
    from ikev2.core.engine import Engine

log = logging.getLogger("ikev2.core")
_IKE = ProtocolId.IKE
_DH = TransformType.DH
_PRF = TransformType.PRF
_ZERO_SPI = b"\0" * 8
MAX_KE_RETRIES = 2


@dataclass(slots=True)
class RekeyRequest:
    spi: bytes
    proposals: tuple
    ni: bytes
    group: int
    dh: Any
    ke_retries: int


def _proposals(sa: IkeSa) -> tuple:
    """Our IKE proposals, limited to the current PRF where possible: RFC 7296 §2.18 and
    strongSwan differ on which PRF runs prf+ when it changes (REQUIREMENTS 7296-57)."""
    assert sa.conn is not None
    specs = ike_init.ike_proposals(sa.conn)
    prf = next((t for t in sa.transforms if t[0] == _PRF), None)
    same = tuple(s for s in specs if prf is None or any(t[0] == _PRF and t[1] == prf[1]
                                                         for t in s))
    return same or specs


# -- initiator ------------------------------------------------------------------------------
def start(engine: Engine, sa: IkeSa, now: float, *, group: int = 0, ke_retries: int = 0) -> bool:
    """Send (or queue) our IKE SA rekey request: SA(new SPIi), Ni, KEi (7296-30)."""
    if sa.state != IkeState.ESTABLISHED:
        return False
    specs = _proposals(sa)
    offered = [t[1] for spec in specs for t in spec if t[0] == _DH]
    if not group:
        group = sa.dh_group if sa.dh_group in offered else offered[0]
    dh = get_group(group).generate(engine.random)
    spi = engine.new_ike_spi()
    proposals = to_proposals(specs, _IKE, spi)
    req = RekeyRequest(spi, proposals, engine.random(engine.config.nonce_size), group, dh,
                       ke_retries)
    sa.state = IkeState.REKEYING
    log.info("IKE_SA %s[%d] rekeying", sa.name, sa.ike_id)
    engine.send_request(
        sa, ExchangeType.CREATE_CHILD_SA, [SA(proposals), Nonce(req.ni), KE(group, dh.public)],
        partial(_on_response, req), now,
    )
    return True


def _on_response(
    req: RekeyRequest, engine: Engine, sa: IkeSa, header: Header, payloads: list, data: bytes,
    now: float,
) -> None:
    if sa.state != IkeState.REKEYING:
        return
    got = collect(payloads)
    sa_p, nonce, ke, error = got.sa, got.nonce, got.ke, got.error
    if error is not None or sa_p is None:
        _refused(engine, sa, req, error, now)
        return
    try:
        if nonce is None or ke is None:
            raise InvalidSyntax("IKE rekey response without Nonce or KE")
        sel = check_choice(sa_p.proposals, req.proposals, _IKE)
        chosen = sel.get(_DH)
        if chosen is None or chosen[1] != req.group or ke.group != req.group:
            raise NoProposalChosen("responder's KE is not for the group we sent")
        if len(sel.spi) != 8 or sel.spi == _ZERO_SPI:
            raise InvalidSyntax("responder's new IKE SPI is not 8 non-zero octets")
        shared = req.dh.shared_secret(ke.data)
    except IkeError as e:
        log.info("IKE_SA %s[%d] rekey failed: %s", sa.name, sa.ike_id, e)
        _back_to_established(engine, sa, now)
        return
    new = _new_sa(engine, sa, sel, shared, initiator=True, spi_i=req.spi, spi_r=sel.spi,
                  ni=req.ni, nr=nonce.data, now=now)
    collision = sa.rekey_collision
    sa.rekey_collision = None
    if collision is not None and collision[0].state == IkeState.ESTABLISHED:
        theirs, p_ni, p_nr = collision
        from ikev2.core.create_child import lower, lowest

        if lower(lowest(req.ni, nonce.data), lowest(p_ni, p_nr)):
            log.info("IKE_SA %s[%d] rekey collision lost: deleting our redundant [%d]",
                     sa.name, sa.ike_id, new.ike_id)
            _switch(engine, sa, theirs, now, delete_old=False)
            new.rekeyed_to = theirs  # never announced: no IkeSaDeleted for it either
            informational.delete_ike_sa(engine, new, now, "redundant (IKE rekey collision)")
            return
        log.info("IKE_SA %s[%d] rekey collision won: the peer deletes its [%d]", sa.name,
                 sa.ike_id, theirs.ike_id)
        _redundant(engine, theirs, new, now)
    _switch(engine, sa, new, now, delete_old=True)


def _refused(
    engine: Engine, sa: IkeSa, req: RekeyRequest, error: Notify | None, now: float
) -> None:
    kind = error.type if error is not None else None
    if kind == NotifyType.INVALID_KE_PAYLOAD and error is not None:
        group = int.from_bytes(error.data[:2], "big") if len(error.data) >= 2 else 0
        offered = {t[1] for p in req.proposals for t in
                   ((x.type, x.id) for x in p.transforms) if t[0] == _DH}
        if group in offered and group != req.group and req.ke_retries < MAX_KE_RETRIES:
            sa.state = IkeState.ESTABLISHED
            if sa.rekey_collision is None:
                start(engine, sa, now, group=group, ke_retries=req.ke_retries + 1)
                return
    name = _notify_name(kind) if kind is not None else "no SA payload"
    log.info("IKE_SA %s[%d] rekey refused by the peer: %s", sa.name, sa.ike_id, name)
    _back_to_established(engine, sa, now)
    if sa.state == IkeState.ESTABLISHED:
        sa.due["rekey"] = now + lifetimes.retry_delay(engine) * (
            1 if kind == NotifyType.TEMPORARY_FAILURE else 10
        )


def _redundant(engine: Engine, theirs: IkeSa, winner: IkeSa, now: float) -> None:
    """The peer's IKE SA from a collision it lost: it should delete it, but may not have
    noticed the collision (§2.8.2, last paragraph): no timers, we delete it after a grace."""
    theirs.state = IkeState.REKEYED
    theirs.rekeyed_to = winner
    theirs.due.clear()
    theirs.due["rekeyed"] = now + lifetimes.REKEYED_GRACE
    engine.schedule(theirs)


def _back_to_established(engine: Engine, sa: IkeSa, now: float) -> None:
    """Our rekey failed. If we answered the peer's meanwhile, that one replaces us."""
    collision = sa.rekey_collision
    sa.rekey_collision = None
    if collision is not None and collision[0].state == IkeState.ESTABLISHED:
        _switch(engine, sa, collision[0], now, delete_old=False)
    else:
        sa.state = IkeState.ESTABLISHED


# -- responder ------------------------------------------------------------------------------
def handle_request(
    engine: Engine, sa: IkeSa, sa_p: SA, nonce: Nonce, ke: KE | None, now: float
) -> list:
    """Answer the peer's IKE SA rekey (§1.3.2, §2.25.2)."""
    if sa.state in (IkeState.REKEYED, IkeState.DELETING) or _child_work(sa):
        log.info("IKE_SA %s[%d]: peer's IKE rekey answered TEMPORARY_FAILURE (%s)", sa.name,
                 sa.ike_id, sa.state.value if sa.state != IkeState.ESTABLISHED
                 else "CHILD_SA exchange in progress")
        return [Notify(ProtocolId.NONE, NotifyType.TEMPORARY_FAILURE)]
    if ke is None:
        raise InvalidSyntax("IKE rekey request without KE payload (7296-30)")
    assert sa.conn is not None
    sel = select(sa_p.proposals, ike_init.ike_proposals(sa.conn), _IKE, ke.group)
    chosen = sel.get(_DH)
    assert chosen is not None
    if ke.group != chosen[1]:
        raise InvalidKePayload(f"peer's KE is for group {ke.group}", int(chosen[1]))
    if len(sel.spi) != 8 or sel.spi == _ZERO_SPI:
        raise InvalidSyntax("initiator's new IKE SPI is not 8 non-zero octets")
    dh = get_group(int(chosen[1])).generate(engine.random)
    shared = dh.shared_secret(ke.data)
    nr = engine.random(engine.config.nonce_size)
    spi_r = engine.new_ike_spi()
    new = _new_sa(engine, sa, sel, shared, initiator=False, spi_i=sel.spi, spi_r=spi_r,
                  ni=nonce.data, nr=nr, now=now)
    if sa.state == IkeState.REKEYING:  # both rekey: decided when our response comes (§2.8.2)
        sa.rekey_collision = (new, nonce.data, nr)
    else:
        _switch(engine, sa, new, now, delete_old=False)
    return [SA((sel.proposal(_IKE, spi_r),)), Nonce(nr), KE(int(chosen[1]), dh.public)]


def _child_work(sa: IkeSa) -> bool:
    """A CHILD_SA of ours is being created, rekeyed or deleted (§2.25.1, last rule)."""
    if sa.create_reqs:
        return True
    return any(c.state in (ChildState.REKEYING, ChildState.DELETING)
               for c in sa.children.values())


def on_old_deleted(engine: Engine, sa: IkeSa, now: float) -> None:
    """The peer deletes this IKE SA while our rekey is outstanding: if we answered its
    rekey, it won and deletes the old SA — the children go to its new SA (§2.8.2)."""
    collision = sa.rekey_collision
    sa.rekey_collision = None
    if collision is not None and collision[0].state == IkeState.ESTABLISHED:
        _switch(engine, sa, collision[0], now, delete_old=False)


# -- shared ---------------------------------------------------------------------------------
def _new_sa(
    engine: Engine, old: IkeSa, sel: Selected, shared: bytes, *, initiator: bool,
    spi_i: bytes, spi_r: bytes, ni: bytes, nr: bytes, now: float,
) -> IkeSa:
    """The new IKE SA: keys from the old SK_d (§2.18), the old SA's peer and identities;
    the rekey's initiator is the new SA's original initiator (§2.18, I flag)."""
    encr_t, prf_t, integ_t = sel.get(1), sel.get(2), sel.get(3)
    assert encr_t is not None and prf_t is not None
    prf = get_prf(prf_t[1])
    encr = get_encr(encr_t[1], encr_t[2])
    integ = get_integ(integ_t[1]) if integ_t is not None else None
    keys = derive_rekeyed_ike_keys(old.prf, old.sk_d, prf, encr, integ, shared, ni, nr,
                                   spi_i, spi_r)
    new = IkeSa(engine.new_ike_id(), initiator, old.local, old.remote, old.conn)
    new.spi_i, new.spi_r, new.ni, new.nr = spi_i, spi_r, ni, nr
    chosen = sel.get(_DH)
    new.dh_group = int(chosen[1]) if chosen is not None else old.dh_group
    ike_init.use_keys(new, sel, prf, encr, integ, keys)
    new.candidates = old.candidates
    new.local_id, new.remote_id = old.local_id, old.remote_id
    new.nat_local, new.nat_remote = old.nat_local, old.nat_remote
    new.encap, new.mobike = old.encap, old.mobike
    new.local_vips, new.remote_vips = old.local_vips, old.remote_vips
    new.home_prefix = old.home_prefix
    new.fragmentation, new.peer_hashes = old.fragmentation, old.peer_hashes
    new.peer_addrs = old.peer_addrs
    new.state = IkeState.ESTABLISHED
    new.established_at = now
    engine.by_spi[new.local_spi] = new
    engine.by_id[new.ike_id] = new
    lifetimes.ike_established(engine, new, now)
    return new


def _switch(engine: Engine, old: IkeSa, new: IkeSa, now: float, *, delete_old: bool) -> None:
    """Move the CHILD_SAs and queued requests to `new` (7296-67); the old SA only waits
    for its delete — ours if `delete_old`, else the peer's (we delete it after a grace)."""
    for c in old.children.values():
        new.children[c.child_id] = c
    old.children.clear()
    new.queue.extend(old.queue)
    old.queue.clear()
    new.create_reqs.extend(r for r in old.create_reqs if not r.done)
    old.create_reqs.clear()
    old.state = IkeState.REKEYED
    old.rekeyed_to = new
    old.due.clear()
    engine.emit(IkeSaRekeyed(old.ike_id, new.info()))
    log.info("IKE_SA %s[%d] rekeyed as [%d] SPIs %s_i %s_r", old.name, old.ike_id, new.ike_id,
             new.spi_i.hex(), new.spi_r.hex())
    if delete_old:
        informational.delete_ike_sa(engine, old, now, f"rekeyed as [{new.ike_id}]")
    else:
        old.due["rekeyed"] = now + lifetimes.REKEYED_GRACE
        engine.schedule(old)
    engine.send_next(new, now)


def _notify_name(t: int) -> str:
    try:
        return NotifyType(t).name
    except ValueError:
        return f"notify {t}"
