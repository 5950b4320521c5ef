"""CREATE_CHILD_SA for CHILD_SAs, both roles: a new CHILD_SA (RFC 7296 §1.3.1) with or
without PFS, a CHILD_SA rekey (§1.3.3, §2.8) and its collisions (§2.8.1, §2.25.1).
Requests with an IKE proposal are IKE SA rekeys and go to `ike_rekey`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ikev2.config.model import ChildConfig, Mode
from ikev2.core import child as childmod
from ikev2.core import ike_rekey, informational, lifetimes
from ikev2.core.collect import collect
from ikev2.core.events import ChildSaRekeyed
from ikev2.core.negotiation import check_choice, select, to_proposals
from ikev2.core.sa import ChildSa, ChildState, IkeSa, IkeState
from ikev2.crypto.dh import get_group
from ikev2.errors import IkeError, InvalidSyntax, KernelError, NoProposalChosen
from ikev2.protocol.enums import ExchangeType, NotifyType, ProtocolId, TransformType
from ikev2.protocol.header import Header
from ikev2.protocol.payloads import KE, SA, Nonce, Notify, Proposal, TSi, TSr
from ikev2.protocol.ts import TrafficSelector, is_subset

if TYPE_CHECKING:
    from ikev2.core.engine import Engine
    from ikev2.core.events import Endpoint

log = logging.getLogger("ikev2.core")
_CCS = ExchangeType.CREATE_CHILD_SA
_ESP = ProtocolId.ESP
_DH = TransformType.DH
MAX_KE_RETRIES = 2
MAX_TEMPORARY_FAILURES = 30  # several minutes of TEMPORARY_FAILURE: out of sync (§2.25)


@dataclass(slots=True)
class CreateRequest:
    """A CREATE_CHILD_SA request of ours for a CHILD_SA, kept until its response."""

    config: ChildConfig
    spi_in: int
    proposals: tuple[Proposal, ...]
    tsi: tuple[TrafficSelector, ...]
    tsr: tuple[TrafficSelector, ...]
    transport: bool
    ni: bytes
    group: int
    dh: Any
    old: ChildSa | None
    ke_retries: int = 0
    done: bool = field(default=False)


def pfs_group(specs: tuple) -> int:
    """The group to send a KE for: the first DH transform in our proposals (0: no PFS)."""
    for spec in specs:
        for t in spec:
            if t[0] == _DH and t[1]:
                return int(t[1])
    return 0


def _name(c: ChildSa) -> str:
    return f"{c.config.name}{{{c.child_id}}}"


# -- initiator ------------------------------------------------------------------------------
def start(
    engine: Engine, sa: IkeSa, cfg: ChildConfig, now: float, *, old: ChildSa | None = None,
    group: int = 0, ke_retries: int = 0,
) -> bool:
    """Send (or queue) a CREATE_CHILD_SA request: a new CHILD_SA, or a rekey of `old`."""
    if sa.state not in (IkeState.ESTABLISHED, IkeState.REKEYING):
        log.info("IKE_SA %s[%d] is %s: no CHILD_SA %s now", sa.name, sa.ike_id,
                 sa.state.value, cfg.name)
        return False
    if old is not None:
        if old.state != ChildState.INSTALLED:
            return False
        old.state = ChildState.REKEYING
    try:
        spi_in = engine.kernel.alloc_spi(sa.local[0], sa.remote[0], _ESP)
    except KernelError as e:
        if old is not None:
            old.state = ChildState.INSTALLED
        childmod.failed(engine, sa, cfg.name, f"kernel refused an SPI: {e}", None)
        return False
    specs = childmod.esp_proposals(cfg)
    group = group or pfs_group(specs)
    dh = get_group(group).generate(engine.random) if group else None
    ni = engine.random(engine.config.nonce_size)
    proposals = to_proposals(specs, _ESP, spi_in.to_bytes(4, "big"))
    if old is not None:  # same selectors and mode (7296-69)
        tsi, tsr = old.spec.local_ts, old.spec.remote_ts
        transport = old.spec.mode == "transport"
    else:
        tsi = childmod.local_selectors(sa, cfg)
        tsr = tuple(t.resolve(sa.remote[0]) for t in cfg.remote_ts)
        transport = cfg.mode == Mode.TRANSPORT
    req = CreateRequest(cfg, spi_in, proposals, tsi, tsr, transport, ni, group, dh, old,
                        ke_retries)
    payloads: list = []
    if old is not None:
        payloads.append(
            Notify(_ESP, NotifyType.REKEY_SA, old.spec.spi_in.to_bytes(4, "big"))
        )
    if transport:
        payloads.append(Notify(ProtocolId.NONE, NotifyType.USE_TRANSPORT_MODE))
    payloads += [SA(proposals), Nonce(ni)]
    if dh is not None:
        payloads.append(KE(group, dh.public))
    payloads += [TSi(tsi), TSr(tsr)]
    sa.create_reqs.append(req)
    engine.send_request(sa, _CCS, payloads, partial(_on_response, req), now)
    return True


def abandon_all(engine: Engine, sa: IkeSa) -> None:
    """The IKE SA is going: release the SPIs of requests that will get no answer."""
    for req in sa.create_reqs:
        if not req.done:
            req.done = True
            childmod.release(engine, sa, req.spi_in)
    sa.create_reqs.clear()


def _on_response(
    req: CreateRequest, engine: Engine, sa: IkeSa, header: Header, payloads: list,
    data: bytes, now: float,
) -> None:
    """The answer to our CREATE_CHILD_SA (§1.3.1, §1.3.3, §2.25)."""
    if req in sa.create_reqs:
        sa.create_reqs.remove(req)
    req.done = True
    old = req.old
    cfg = req.config
    got = collect(payloads)
    sa_p, nonce, ke, tsi, tsr = got.sa, got.nonce, got.ke, got.tsi, got.tsr
    transport = got.has(NotifyType.USE_TRANSPORT_MODE)
    error = got.error
    if error is not None or sa_p is None:
        childmod.release(engine, sa, req.spi_in)
        _refused(engine, sa, req, error, now)
        return
    try:
        if nonce is None or tsi is None or tsr is None:
            raise InvalidSyntax("CREATE_CHILD_SA response without Nonce, TSi or TSr")
        sel = check_choice(sa_p.proposals, req.proposals, _ESP)
        if len(sel.spi) != 4 or sel.spi == b"\0\0\0\0":
            raise InvalidSyntax("responder's ESP SPI is not 4 non-zero octets")
        shared = None
        chosen = sel.get(_DH)
        if chosen is not None and chosen[1]:
            if req.dh is None or chosen[1] != req.group or ke is None or ke.group != req.group:
                raise NoProposalChosen("responder's KE does not match the group we sent")
            shared = req.dh.shared_secret(ke.data)
        elif req.dh is not None:
            raise NoProposalChosen("responder chose no DH group, we asked for PFS")
        if not (is_subset(tsi.selectors, req.tsi) and is_subset(tsr.selectors, req.tsr)):
            raise NoProposalChosen("responder widened the traffic selectors (7296-80)")
        if req.transport != transport:
            raise NoProposalChosen("responder did not accept the mode we asked for")
    except IkeError as e:
        childmod.release(engine, sa, req.spi_in)
        childmod.failed(engine, sa, cfg.name, f"bad CREATE_CHILD_SA response: {e}",
                        e.notify.name if e.notify else None)
        if sa_p is not None and sa_p.proposals and len(sa_p.proposals[0].spi) == 4:
            # the responder installed its side: ask it to delete that (§1.4.1)
            informational.delete_spis(engine, sa, [req.spi_in], now)
        _unmark(engine, sa, old, now)
        return
    child = childmod.install(
        engine, sa, cfg, sel, req.spi_in, int.from_bytes(sel.spi, "big"), tsi.selectors,
        tsr.selectors, transport, now, emit=old is None, initiator=True,
        nonces=(req.ni, nonce.data), shared=shared,
        reqid=old.spec.reqid if old is not None else None,
    )
    if child is None:
        informational.delete_spis(engine, sa, [req.spi_in], now)
        _unmark(engine, sa, old, now)
        return
    sa.temp_failures = 0
    if old is not None:
        _rekeyed(engine, sa, old, child, req.ni, nonce.data, now)


def _refused(
    engine: Engine, sa: IkeSa, req: CreateRequest, error: Notify | None, now: float
) -> None:
    old, cfg = req.old, req.config
    kind = error.type if error is not None else None
    if kind == NotifyType.INVALID_KE_PAYLOAD and error is not None:
        group = int.from_bytes(error.data[:2], "big") if len(error.data) >= 2 else 0
        offered = {t[1] for spec in childmod.esp_proposals(cfg) for t in spec if t[0] == _DH}
        if group in offered and group != req.group and req.ke_retries < MAX_KE_RETRIES:
            log.info("CHILD_SA %s: peer wants DH group %d, retrying (7296-49)", cfg.name, group)
            if old is not None:
                old.state = ChildState.INSTALLED
            start(engine, sa, cfg, now, old=old, group=group, ke_retries=req.ke_retries + 1)
            return
    if kind == NotifyType.TEMPORARY_FAILURE:
        sa.temp_failures += 1
        if sa.temp_failures > MAX_TEMPORARY_FAILURES:
            informational.delete_ike_sa(engine, sa, now, "peer keeps answering TEMPORARY_FAILURE")
            return
        delay = lifetimes.retry_delay(engine)
        log.info("CHILD_SA %s: peer answered TEMPORARY_FAILURE, retrying in %.1f s",
                 cfg.name, delay)
        if old is not None:
            if old.collision is not None:  # the peer's rekey of it succeeded: that one stays
                _unmark(engine, sa, old, now)
                return
            if old.state == ChildState.REKEYING:
                old.state = ChildState.INSTALLED
                old.rekey_at = now + delay
        else:
            sa.due[f"create:{cfg.name}"] = now + delay
        return
    if kind == NotifyType.CHILD_SA_NOT_FOUND and old is not None:
        # §2.25: silently delete it and create a new CHILD_SA from scratch
        if old.state != ChildState.DELETED and old.collision is None:
            log.info("CHILD_SA %s: peer does not know it, recreating", _name(old))
            childmod.remove(engine, sa, old, "peer answered CHILD_SA_NOT_FOUND")
            start(engine, sa, cfg, now)
            return
        _unmark(engine, sa, old, now)
        return
    name = _notify_name(kind) if kind is not None else None
    reason = f"peer refused the CHILD_SA: {name}" if name else "no SA payload in the response"
    if old is not None:
        reason = f"rekey of {_name(old)} failed: " + reason
    childmod.failed(engine, sa, cfg.name, reason, name)
    _unmark(engine, sa, old, now)


def _unmark(engine: Engine, sa: IkeSa, old: ChildSa | None, now: float) -> None:
    """Our rekey of `old` failed: it stays, unless the peer's colliding rekey replaced it."""
    if old is None or old.state == ChildState.DELETED:
        return
    collision = old.collision
    old.collision = None
    if collision is not None and collision[0].state != ChildState.DELETED:
        old.state = ChildState.REKEYED
        _expect_delete(engine, sa, old, now)
        engine.emit(ChildSaRekeyed(sa.ike_id, old.child_id, collision[0].info()))
    elif old.state == ChildState.REKEYING:
        old.state = ChildState.INSTALLED


def lower(a: bytes, b: bytes) -> bool:
    """a < b compared as unsigned octets over the common length (7296-65, memcmp)."""
    n = min(len(a), len(b))
    return a[:n] < b[:n]


def lowest(a: bytes, b: bytes) -> bytes:
    return a if lower(a, b) else b


def _rekeyed(
    engine: Engine, sa: IkeSa, old: ChildSa, new: ChildSa, ni: bytes, nr: bytes, now: float
) -> None:
    """Our rekey of `old` succeeded. Without a collision we delete `old`; with one, the
    exchange holding the lowest of the four nonces made the redundant pair, which its
    initiator deletes (§2.8.1)."""
    collision = old.collision
    old.collision = None
    if collision is not None and collision[0].state != ChildState.DELETED:
        theirs, p_ni, p_nr = collision
        if lower(lowest(ni, nr), lowest(p_ni, p_nr)):
            log.info("CHILD_SA %s rekey collision lost: deleting our redundant %s",
                     _name(old), _name(new))
            engine.emit(ChildSaRekeyed(sa.ike_id, old.child_id, theirs.info()))
            informational.delete_child(engine, sa, new, now, "redundant (rekey collision)")
            if old.state != ChildState.DELETED:  # the winner deletes it
                old.state = ChildState.REKEYED
                _expect_delete(engine, sa, old, now)
            return
        # we won: the peer deletes its redundant pair; if it does not, we do after a grace
        log.info("CHILD_SA %s rekey collision won: the peer deletes %s", _name(old),
                 _name(theirs))
        theirs.replaces = None  # never sends: ours replaces `old`
        _expect_delete(engine, sa, theirs, now)
    if old.state == ChildState.DELETED:  # the peer deleted it meanwhile (§2.25.1)
        engine.emit(ChildSaRekeyed(sa.ike_id, old.child_id, new.info()))
        return
    engine.emit(ChildSaRekeyed(sa.ike_id, old.child_id, new.info()))
    informational.delete_child(engine, sa, old, now, f"rekeyed as {_name(new)}")


def _expect_delete(engine: Engine, sa: IkeSa, old: ChildSa, now: float) -> None:
    """A replaced CHILD_SA the peer should delete; if it does not, its hard lifetime or
    a late delete of ours removes it."""
    grace = now + lifetimes.REKEYED_GRACE
    if old.expire_at is None or old.expire_at > grace:
        old.expire_at = grace
    old.rekey_at = None


# -- responder ------------------------------------------------------------------------------
def handle_request(
    engine: Engine, sa: IkeSa, header: Header, payloads: list, local: Endpoint,
    remote: Endpoint, now: float,
) -> list:
    """Answer a CREATE_CHILD_SA request (§1.3); CHILD_SA failures are notifies in the
    response, never a failed IKE SA."""
    got = collect(payloads)
    sa_p, nonce, ke, tsi, tsr = got.sa, got.nonce, got.ke, got.tsi, got.tsr
    rekey = got.notify(NotifyType.REKEY_SA)
    transport = got.has(NotifyType.USE_TRANSPORT_MODE)
    if sa_p is None or nonce is None:
        raise InvalidSyntax("CREATE_CHILD_SA request without SA or Nonce payload")
    if sa_p.proposals and sa_p.proposals[0].protocol == ProtocolId.IKE:
        return ike_rekey.handle_request(engine, sa, sa_p, nonce, ke, now)
    if sa.state != IkeState.ESTABLISHED:  # rekeying or closing the IKE SA (§2.25.2)
        log.info("IKE_SA %s[%d] is %s: CREATE_CHILD_SA answered TEMPORARY_FAILURE",
                 sa.name, sa.ike_id, sa.state.value)
        return [Notify(ProtocolId.NONE, NotifyType.TEMPORARY_FAILURE)]
    if tsi is None or tsr is None:
        raise InvalidSyntax("CREATE_CHILD_SA request without TSi/TSr")
    conn = sa.conn
    assert conn is not None
    old: ChildSa | None = None
    if rekey is not None:
        old = _find_rekeyed(sa, rekey)
        if old is None:
            log.info("IKE_SA %s[%d]: peer rekeys unknown CHILD_SA SPI %s", sa.name, sa.ike_id,
                     rekey.spi.hex())
            return [Notify(rekey.protocol, NotifyType.CHILD_SA_NOT_FOUND, rekey.spi)]
        if old.state in (ChildState.DELETING, ChildState.REKEYED):
            log.info("CHILD_SA %s is %s: peer's rekey answered TEMPORARY_FAILURE",
                     _name(old), old.state.value)
            return [Notify(ProtocolId.NONE, NotifyType.TEMPORARY_FAILURE)]
        configs: tuple[ChildConfig, ...] = (old.config,)
    else:
        configs = conn.children
    chosen = _select_ts(sa, configs, tsi.selectors, tsr.selectors, old, transport)
    name = old.config.name if old is not None else (conn.children[0].name
                                                    if conn.children else "?")
    if chosen is None:
        return _refuse(engine, sa, name, NotifyType.TS_UNACCEPTABLE,
                       f"traffic selectors unacceptable: {childmod._ts(tsi.selectors)} === "
                       f"{childmod._ts(tsr.selectors)}")
    cfg, n_tsi, n_tsr = chosen
    try:
        sel = select(sa_p.proposals, childmod.esp_proposals(cfg), _ESP,
                     ke.group if ke is not None else 0)
    except NoProposalChosen as e:
        return _refuse(engine, sa, cfg.name, NotifyType.NO_PROPOSAL_CHOSEN, str(e))
    if len(sel.spi) != 4 or sel.spi == b"\0\0\0\0":
        raise InvalidSyntax("initiator's ESP SPI is not 4 non-zero octets")
    chosen_group = sel.get(_DH)
    group = int(chosen_group[1]) if chosen_group is not None else 0
    dh = shared = None
    if group:
        if ke is None or ke.group != group:
            log.info("CHILD_SA %s: peer's KE is for group %s, we want %d", cfg.name,
                     ke.group if ke is not None else "none", group)
            return [Notify(ProtocolId.NONE, NotifyType.INVALID_KE_PAYLOAD, b"",
                           group.to_bytes(2, "big"))]
        dh = get_group(group).generate(engine.random)
        try:
            shared = dh.shared_secret(ke.data)
        except IkeError as e:
            return _refuse(engine, sa, cfg.name, NotifyType.NO_PROPOSAL_CHOSEN,
                           f"peer's KE value rejected: {e}")
    want_transport = (old.spec.mode == "transport") if old is not None else (
        cfg.mode == Mode.TRANSPORT)
    if want_transport and not transport:
        return _refuse(engine, sa, cfg.name, NotifyType.NO_PROPOSAL_CHOSEN,
                       "we require transport mode, the peer asked for tunnel mode")
    use_transport = transport and want_transport
    try:
        spi_in = engine.kernel.alloc_spi(sa.local[0], sa.remote[0], _ESP)
    except KernelError as e:
        return _refuse(engine, sa, cfg.name, NotifyType.NO_PROPOSAL_CHOSEN,
                       f"kernel refused an SPI: {e}")
    nr = engine.random(engine.config.nonce_size)
    new = childmod.install(
        engine, sa, cfg, sel, spi_in, int.from_bytes(sel.spi, "big"), n_tsr, n_tsi,
        use_transport, now, emit=old is None, initiator=False, nonces=(nonce.data, nr),
        shared=shared, reqid=old.spec.reqid if old is not None else None, replaces=old,
    )
    if new is None:
        return [Notify(ProtocolId.NONE, NotifyType.NO_PROPOSAL_CHOSEN)]
    if old is not None:
        if old.state == ChildState.REKEYING:  # we are rekeying it too: decide later (§2.8.1)
            old.collision = (new, nonce.data, nr)
        else:
            old.state = ChildState.REKEYED
            _expect_delete(engine, sa, old, now)
            engine.emit(ChildSaRekeyed(sa.ike_id, old.child_id, new.info()))
    out: list = (
        [Notify(ProtocolId.NONE, NotifyType.USE_TRANSPORT_MODE)] if use_transport else []
    )
    out += [SA((sel.proposal(_ESP, spi_in.to_bytes(4, "big")),)), Nonce(nr)]
    if dh is not None:
        out.append(KE(group, dh.public))
    out += [TSi(n_tsi), TSr(n_tsr)]
    return out


def _find_rekeyed(sa: IkeSa, rekey: Notify) -> ChildSa | None:
    """REKEY_SA names the SA by the peer's inbound SPI, our outbound one (7296-31)."""
    if rekey.protocol not in (ProtocolId.ESP, ProtocolId.AH) or len(rekey.spi) != 4:
        return None
    spi = int.from_bytes(rekey.spi, "big")
    for c in sa.children.values():
        if c.spec.spi_out == spi and c.state != ChildState.DELETED:
            return c
    return None


def _select_ts(
    sa: IkeSa, configs: tuple[ChildConfig, ...], tsi: tuple[TrafficSelector, ...],
    tsr: tuple[TrafficSelector, ...], old: ChildSa | None, transport: bool,
) -> tuple[ChildConfig, tuple[TrafficSelector, ...], tuple[TrafficSelector, ...]] | None:
    """Narrow the peer's selectors to a configured child's (§2.9); a rekey may repeat
    the selectors of the SA it replaces."""
    if old is not None and tsi == old.spec.remote_ts and tsr == old.spec.local_ts:
        return old.config, tsi, tsr
    return childmod.choose_config(sa, configs, tsi, tsr, transport)


def _refuse(engine: Engine, sa: IkeSa, name: str, notify: NotifyType, reason: str) -> list:
    childmod.failed(engine, sa, name, reason, notify.name)
    return [Notify(ProtocolId.NONE, notify)]


def _notify_name(t: int) -> str:
    try:
        return NotifyType(t).name
    except ValueError:
        return f"notify {t}"
