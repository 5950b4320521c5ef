"""CHILD_SA negotiation inside an exchange (RFC 7296 §1.3, §2.9, §2.17): proposals,
traffic-selector narrowing, transport mode, KEYMAT and the kernel install."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from ikev2.config.model import ChildConfig, Mode
from ikev2.core import config_payload, lifetimes
from ikev2.core.collect import collect
from ikev2.core.events import ChildSaDeleted, ChildSaEstablished, ChildSaFailed
from ikev2.core.negotiation import Selected, check_choice, select, suite_of, to_proposals
from ikev2.core.sa import ChildSa, ChildState, IkeSa
from ikev2.crypto.encr import get_encr
from ikev2.crypto.integ import get_integ
from ikev2.crypto.keys import derive_child_keys
from ikev2.crypto.proposals import default_proposals
from ikev2.errors import IkeError, InvalidSyntax, KernelError, NoProposalChosen
from ikev2.kernel.base import ChildSaSpec
from ikev2.protocol.enums import NotifyType, ProtocolId, TransformType
from ikev2.protocol.payloads import SA, Notify, Proposal, TSi, TSr
from ikev2.protocol.ts import TrafficSelector, is_subset, narrow

if TYPE_CHECKING:
    from ikev2.core.engine import Engine

log = logging.getLogger("ikev2.core")
_ESP = ProtocolId.ESP


@dataclass(slots=True)
class ChildRequest:
    """What we offered for a CHILD_SA we initiate, kept until the response."""

    config: ChildConfig
    spi_in: int
    proposals: tuple[Proposal, ...]
    tsi: tuple[TrafficSelector, ...]
    tsr: tuple[TrafficSelector, ...]
    transport: bool


def esp_proposals(cfg: ChildConfig) -> tuple:
    return cfg.esp_proposals or default_proposals(ProtocolId.ESP)


@lru_cache(maxsize=256)
def without_dh(specs: tuple) -> tuple:
    """The proposals for a CHILD_SA made in IKE_AUTH: no KE there, so no DH transforms
    (§1.2); duplicates that differed only in their group collapse."""
    out: list = []
    for spec in specs:
        stripped = tuple(t for t in spec if t[0] != TransformType.DH)
        if stripped not in out:
            out.append(stripped)
    return tuple(out)


def _strip_offered(proposals: tuple[Proposal, ...]) -> tuple[Proposal, ...]:
    return tuple(
        Proposal(p.num, p.protocol, p.spi,
                 tuple(t for t in p.transforms if t.type != TransformType.DH))
        for p in proposals
    )


def build_request(engine: Engine, sa: IkeSa, cfg: ChildConfig) -> list:
    """SA, TSi, TSr (+ USE_TRANSPORT_MODE) for a CHILD_SA we initiate (§1.3.1, §2.9)."""
    spi = engine.kernel.alloc_spi(sa.local[0], sa.remote[0], _ESP)
    proposals = to_proposals(without_dh(esp_proposals(cfg)), _ESP, spi.to_bytes(4, "big"))
    tsi = local_selectors(sa, cfg)
    tsr = tuple(t.resolve(sa.remote[0]) for t in cfg.remote_ts)
    transport = cfg.mode == Mode.TRANSPORT
    sa.child_request = ChildRequest(cfg, spi, proposals, tsi, tsr, transport)
    out: list = [Notify(ProtocolId.NONE, NotifyType.USE_TRANSPORT_MODE)] if transport else []
    out += [SA(proposals), TSi(tsi), TSr(tsr)]
    return out


def complete_request(
    engine: Engine, sa: IkeSa, payloads: list, now: float, *, emit: bool = True
) -> ChildSa | None:
    """The responder's answer to our CHILD_SA request: check, derive, install (§2.9, §2.17)."""
    req = sa.child_request
    if req is None:
        return None
    sa.child_request = None
    got = collect(payloads)
    sa_p, tsi, tsr = got.sa, got.tsi, got.tsr
    transport = got.has(NotifyType.USE_TRANSPORT_MODE)
    error = _name(got.error.type) if got.error is not None else None
    if sa_p is None or tsi is None or tsr is None:
        release(engine, sa, req.spi_in)
        reason = f"peer refused the CHILD_SA: {error}" if error else "no CHILD_SA in response"
        failed(engine, sa, req.config.name, reason, error)
        return None
    try:
        sel = check_choice(sa_p.proposals, req.proposals, _ESP)
        if len(sel.spi) != 4 or sel.spi == b"\0\0\0\0":
            raise InvalidSyntax("responder's ESP SPI is not 4 non-zero octets")
        if not (is_subset(tsi.selectors, req.tsi) and is_subset(tsr.selectors, req.tsr)):
            raise NoProposalChosen("responder widened the traffic selectors (7296-80)")
        if req.transport != transport:
            raise NoProposalChosen(
                "responder did not accept transport mode" if req.transport
                else "responder sent USE_TRANSPORT_MODE we did not ask for"
            )
    except IkeError as e:
        release(engine, sa, req.spi_in)
        failed(engine, sa, req.config.name, str(e), e.notify.name if e.notify else None)
        from ikev2.core import informational

        informational.delete_spis(engine, sa, [req.spi_in], now)
        return None
    return install(
        engine, sa, req.config, sel, req.spi_in, int.from_bytes(sel.spi, "big"),
        tsi.selectors, tsr.selectors, transport, now, emit=emit,
    )


def respond(engine: Engine, sa: IkeSa, payloads: list, now: float) -> tuple[list, object]:
    """Answer a CHILD_SA request (§1.3.1, §2.9). Returns (payloads, established ChildSa or
    None); a CHILD_SA failure is a notify in the response, never a failed IKE SA."""
    got = collect(payloads)
    sa_p, tsi, tsr = got.sa, got.tsi, got.tsr
    transport = got.has(NotifyType.USE_TRANSPORT_MODE)
    if sa_p is None:
        return [], None
    if tsi is None or tsr is None:
        raise InvalidSyntax("CHILD_SA request without TSi/TSr")
    conn = sa.conn
    assert conn is not None
    chosen = choose_config(sa, conn.children, tsi.selectors, tsr.selectors, transport)
    name = conn.children[0].name if conn.children else "?"
    if chosen is None:
        return _refuse(engine, sa, name, NotifyType.TS_UNACCEPTABLE,
                       "traffic selectors unacceptable: "
                       f"{_ts(tsi.selectors)} === {_ts(tsr.selectors)}")
    cfg, n_tsi, n_tsr = chosen
    try:
        sel = select(_strip_offered(sa_p.proposals), without_dh(esp_proposals(cfg)), _ESP)
    except NoProposalChosen as e:
        return _refuse(engine, sa, cfg.name, NotifyType.NO_PROPOSAL_CHOSEN, str(e))
    if len(sel.spi) != 4 or sel.spi == b"\0\0\0\0":
        raise InvalidSyntax("initiator's ESP SPI is not 4 non-zero octets")
    if cfg.mode == Mode.TRANSPORT and not transport:
        return _refuse(engine, sa, cfg.name, NotifyType.NO_PROPOSAL_CHOSEN,
                       "we require transport mode, the peer asked for tunnel mode")
    use_transport = transport and cfg.mode == Mode.TRANSPORT
    try:
        spi_in = engine.kernel.alloc_spi(sa.local[0], sa.remote[0], _ESP)
    except KernelError as e:
        return _refuse(engine, sa, cfg.name, NotifyType.NO_PROPOSAL_CHOSEN,
                       f"kernel refused an SPI: {e}")
    child = install(
        engine, sa, cfg, sel, spi_in, int.from_bytes(sel.spi, "big"), n_tsr, n_tsi,
        use_transport, now, emit=False,
    )
    if child is None:
        return [Notify(ProtocolId.NONE, NotifyType.NO_PROPOSAL_CHOSEN)], None
    out: list = (
        [Notify(ProtocolId.NONE, NotifyType.USE_TRANSPORT_MODE)] if use_transport else []
    )
    out += [SA((sel.proposal(_ESP, spi_in.to_bytes(4, "big")),)), TSi(n_tsi), TSr(n_tsr)]
    return out, child


def choose_config(
    sa: IkeSa, configs: tuple[ChildConfig, ...], tsi: tuple[TrafficSelector, ...],
    tsr: tuple[TrafficSelector, ...], transport: bool,
) -> tuple[ChildConfig, tuple[TrafficSelector, ...], tuple[TrafficSelector, ...]] | None:
    """The configured child for the peer's selectors (§2.9): one that takes them as they
    are beats one that must narrow them, and the asked-for mode breaks ties — so with the
    RFC 4877 layout the payload request (HoA === any) is not caught by the narrower BU/BA
    child. Returns (config, narrowed TSi, narrowed TSr) or None."""
    best = None
    best_rank = -1
    for cfg in configs:
        ours_remote = remote_selectors(sa, cfg, tsi)
        ours_local = local_selectors(sa, cfg)
        n_tsi = narrow(tsi, ours_remote)
        n_tsr = narrow(tsr, ours_local)
        if not (n_tsi and n_tsr):
            continue
        rank = (2 if (n_tsi == tsi and n_tsr == tsr) else 0) + (
            1 if (cfg.mode == Mode.TRANSPORT) == transport else 0)
        if rank > best_rank:
            best, best_rank = (cfg, n_tsi, n_tsr), rank
            if rank == 3:
                break
    return best


def remote_selectors(
    sa: IkeSa, cfg: ChildConfig, offered: tuple[TrafficSelector, ...]
) -> tuple[TrafficSelector, ...]:
    """Our policy for the peer's side. A 'dynamic' selector is the address we assigned it
    through the CP (§2.19), else the peer's address; behind a NAT that is its private
    address, which only its own single-host TSi tells us (§2.23.1)."""
    out: list[TrafficSelector] = []
    for t in cfg.remote_ts:
        if (t.dynamic or t.selector is None) and sa.remote_vips:
            out += [TrafficSelector.from_network(v) for v in sa.remote_vips]
        elif (t.dynamic or t.selector is None) and sa.nat_remote:
            out += [o for o in offered if o.start_addr == o.end_addr]
        else:
            out.append(t.resolve(sa.remote[0]))
    return tuple(out)


def local_selectors(sa: IkeSa, cfg: ChildConfig) -> tuple[TrafficSelector, ...]:
    """Our side's selectors; 'dynamic' is our outer address, or the virtual IP of the CP
    (requested, then assigned: RFC 7296 §2.19) when the connection has one."""
    outer = sa.local[0]
    if not sa.local_vips and (sa.conn is None or sa.conn.cp is None):
        return tuple(t.resolve(outer) for t in cfg.local_ts)
    out: list[TrafficSelector] = []
    for t in cfg.local_ts:
        if t.dynamic or t.selector is None:
            out += config_payload.local_selector(sa, outer)
        else:
            out.append(t.selector)
    return tuple(out)


def install(
    engine: Engine, sa: IkeSa, cfg: ChildConfig, sel: Selected, spi_in: int, spi_out: int,
    local_ts: tuple[TrafficSelector, ...], remote_ts: tuple[TrafficSelector, ...],
    transport: bool, now: float, *, emit: bool = True, initiator: bool | None = None,
    nonces: tuple[bytes, bytes] | None = None, shared: bytes | None = None,
    reqid: int | None = None, replaces: ChildSa | None = None,
) -> ChildSa | None:
    """KEYMAT (§2.17: initiator→responder keys first; `nonces` and `shared` of a
    CREATE_CHILD_SA exchange, whose `initiator` may be either side) and the kernel install.
    A rekeyed CHILD_SA keeps the `reqid` of the one it replaces; a rekey responder passes
    `replaces`, and the new outbound SA waits until that one is deleted (7296-64)."""
    encr_t = sel.get(TransformType.ENCR)
    integ_t = sel.get(TransformType.INTEG)
    esn_t = sel.get(TransformType.ESN)
    assert encr_t is not None
    encr = get_encr(encr_t[1], encr_t[2])
    integ = get_integ(integ_t[1]) if integ_t is not None else None
    # TSi/TSr are the initiator's/responder's; for the KEYMAT only the nonces matter
    ni, nr = nonces if nonces is not None else (sa.ni, sa.nr)
    keys = derive_child_keys(sa.prf, sa.sk_d, ni, nr, encr, integ, shared)
    if sa.initiator if initiator is None else initiator:
        e_out, a_out, e_in, a_in = keys.encr_i, keys.integ_i, keys.encr_r, keys.integ_r
    else:
        e_out, a_out, e_in, a_in = keys.encr_r, keys.integ_r, keys.encr_i, keys.integ_i
    local, remote = sa.local[0], sa.remote[0]
    if transport and not sa.encap:  # SAs bound to other addresses, e.g. a HoA (RFC 4877)
        local, remote = _bound(local_ts, local), _bound(remote_ts, remote)
    spec = ChildSaSpec(
        reqid=reqid if reqid is not None else _reqid(engine, sa, cfg),
        protocol=_ESP,
        mode="transport" if transport else "tunnel",
        local=local,
        remote=remote,
        spi_in=spi_in,
        spi_out=spi_out,
        encr_id=encr_t[1],
        encr_key_bits=encr_t[2],
        integ_id=integ_t[1] if integ_t is not None else 0,
        esn=esn_t is not None and esn_t[1] == 1,
        encr_key_in=e_in,
        encr_key_out=e_out,
        integ_key_in=a_in,
        integ_key_out=a_out,
        local_ts=local_ts,
        remote_ts=remote_ts,
        encap=(sa.local[1], sa.remote[1]) if sa.encap else None,
        replay_window=cfg.replay_window,
        install_policies=cfg.install_policies,
        soft_bytes=cfg.rekey_bytes,
        hard_bytes=cfg.life_bytes,
        soft_packets=cfg.rekey_packets,
        hard_packets=cfg.life_packets,
    )
    suite = suite_of(sel.transforms)
    try:
        engine.kernel.install_child(spec, outbound=replaces is None)
    except KernelError as e:
        release(engine, sa, spi_in)
        failed(engine, sa, cfg.name, f"kernel install failed: {e}", None)
        return None
    if local != sa.local[0]:
        # bound to another address (a HoA): the SPI was reserved at the IKE address, where
        # no SA of it will be (the xfrm backend's larval SA would linger until it expires)
        release(engine, sa, spi_in)
    child = ChildSa(engine.new_child_id(), cfg, spec, suite, now)
    child.transforms = sel.transforms
    if replaces is not None:
        child.outbound = False
        child.replaces = replaces
    lifetimes.child_installed(engine, child, now)
    sa.children[child.child_id] = child
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "CHILD_SA %s{%d} installed SPIs %08x_i %08x_o %s %s %s === %s%s", cfg.name,
            child.child_id, spi_in, spi_out, suite, spec.mode, _ts(local_ts), _ts(remote_ts),
            " (UDP-encapsulated)" if spec.encap else "",
        )
    if emit:
        engine.emit(ChildSaEstablished(sa.ike_id, child.info()))
    return child


def _reqid(engine: Engine, sa: IkeSa, cfg: ChildConfig) -> int:
    """A trapped child takes over its trap's reqid (and so its policies)."""
    if sa.conn is not None:
        trapped = engine.trap_reqids.get((sa.conn.name, cfg.name))
        if trapped is not None and not any(
            c.spec.reqid == trapped for s in engine.by_id.values() for c in s.children.values()
        ):
            return trapped
    return engine.new_reqid()


def _bound(selectors: tuple[TrafficSelector, ...], ike_addr: str) -> str:
    """The outer address of a transport-mode SA: the IKE address, unless every selector
    names one other host (a Home Address: BU/BA SAs of RFC 4877 §4.2 are HoA-bound)."""
    addrs = {(t.start_addr, t.end_addr) for t in selectors}
    if len(addrs) != 1:
        return ike_addr
    start, end = next(iter(addrs))
    if start != end:
        return ike_addr
    host = str(ipaddress.ip_address(start))
    return host if host != ike_addr else ike_addr


def remove(engine: Engine, sa: IkeSa, child: ChildSa, reason: str) -> None:
    if child.state == ChildState.DELETED:
        return
    child.state = ChildState.DELETED
    sa.children.pop(child.child_id, None)
    successor_sends(engine, sa, child)
    try:
        engine.kernel.remove_child(child.spec)
    except KernelError as e:
        log.warning("CHILD_SA %s{%d} kernel removal failed: %s", child.config.name,
                    child.child_id, e)
    engine.emit(ChildSaDeleted(sa.ike_id, child.child_id, child.config.name, reason))


def successor_sends(engine: Engine, sa: IkeSa, old: ChildSa) -> None:
    """`old` is going: the CHILD_SA that replaces it takes the outbound traffic first."""
    for c in sa.children.values():
        if c.replaces is old:
            activate_outbound(engine, sa, c)


def activate_outbound(engine: Engine, sa: IkeSa, child: ChildSa) -> None:
    """A rekey responder's new CHILD_SA starts sending (§2.8, 7296-64): the old SA is
    being deleted, so the initiator has the new one installed."""
    child.replaces = None
    if child.outbound or child.state == ChildState.DELETED:
        return
    try:
        engine.kernel.install_outbound(child.spec)
    except KernelError as e:
        log.warning("CHILD_SA %s{%d} outbound SA install failed: %s", child.config.name,
                    child.child_id, e)
        return
    child.outbound = True
    log.debug("CHILD_SA %s{%d} outbound SA %08x installed", child.config.name, child.child_id,
              child.spec.spi_out)


def remove_all(engine: Engine, sa: IkeSa, reason: str = "IKE SA deleted") -> None:
    for c in sa.children.values():
        c.replaces = None
    for c in list(sa.children.values()):
        remove(engine, sa, c, reason)


def abandon_request(engine: Engine, sa: IkeSa) -> None:
    req = sa.child_request
    sa.child_request = None
    if req is not None:
        release(engine, sa, req.spi_in)


def _refuse(engine: Engine, sa: IkeSa, name: str, notify: NotifyType, reason: str):
    failed(engine, sa, name, reason, notify.name)
    return [Notify(ProtocolId.NONE, notify)], None


def failed(engine: Engine, sa: IkeSa, name: str, reason: str, notify: str | None) -> None:
    log.debug("CHILD_SA %s of IKE_SA %s[%d] failed: %s", name, sa.name, sa.ike_id, reason)
    engine.emit(ChildSaFailed(sa.ike_id, name, reason, notify))


def release(engine: Engine, sa: IkeSa, spi: int) -> None:
    with contextlib.suppress(KernelError):
        engine.kernel.release_spi(sa.local[0], spi, _ESP)


def _ts(selectors: tuple[TrafficSelector, ...]) -> str:
    return ",".join(str(t) for t in selectors)


def _name(t: int) -> str:
    try:
        return NotifyType(t).name
    except ValueError:
        return f"notify {t}"
