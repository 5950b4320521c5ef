"""INFORMATIONAL (RFC 7296 §1.4): deletes of IKE and CHILD SAs, liveness, error reports."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ikev2.core import child
from ikev2.core.sa import ChildSa, ChildState, IkeSa, IkeState
from ikev2.protocol.enums import ExchangeType, NotifyType, ProtocolId
from ikev2.protocol.header import Header
from ikev2.protocol.payloads import Delete, Notify

if TYPE_CHECKING:
    from ikev2.core.engine import Engine
    from ikev2.core.events import Endpoint

log = logging.getLogger("ikev2.core")
_INFO = ExchangeType.INFORMATIONAL


def handle_request(
    engine: Engine, sa: IkeSa, header: Header, payloads: list, local: Endpoint,
    remote: Endpoint, now: float,
) -> list:
    """Answer every INFORMATIONAL request (7296-32); deletes per §1.4.1; MOBIKE per
    RFC 4555 §3.5/§3.6."""
    out: list = []
    notifies = [p for p in payloads if isinstance(p, Notify)]
    if notifies and sa.mobike:
        from ikev2.core import mobike

        out += mobike.handle_request(engine, sa, notifies, local, remote, now)
    for p in payloads:
        if isinstance(p, Delete):
            if p.protocol == ProtocolId.IKE:
                from ikev2.core import ike_rekey

                ike_rekey.on_old_deleted(engine, sa, now)
                sa.state = IkeState.DELETED  # the engine removes it after answering
                sa.pending = None
                return []
            if p.protocol in (ProtocolId.ESP, ProtocolId.AH):
                ours = _delete_children(engine, sa, p.spis)
                if ours:
                    out.append(Delete(p.protocol, tuple(ours)))
        elif isinstance(p, Notify) and p.type == NotifyType.SET_WINDOW_SIZE:
            if len(p.data) == 4:  # noted; we keep one request outstanding (§2.3)
                sa.peer_window = max(1, int.from_bytes(p.data, "big"))
        elif isinstance(p, Notify) and p.type < 16384:
            if p.type == NotifyType.AUTHENTICATION_FAILED and sa.state == IkeState.ESTABLISHED:
                log.info("IKE_SA %s[%d]: peer rejected our AUTH", sa.name, sa.ike_id)
                sa.state = IkeState.DELETED
                return []
            log.info("IKE_SA %s[%d]: peer reports %s", sa.name, sa.ike_id, _name(p.type))
    return out


def finish_delete(engine: Engine, sa: IkeSa) -> None:
    engine.remove(sa, "deleted by peer")


def _delete_children(engine: Engine, sa: IkeSa, spis: tuple[bytes, ...]) -> list[bytes]:
    """Delete the CHILD_SAs whose outbound SPI the peer names; return our inbound SPIs,
    except for SAs we are deleting ourselves (crossing deletes, 7296-33). Children that
    moved to a rekeyed IKE SA are still found through the old one (§2.25.2)."""
    ours: list[bytes] = []
    owners = [sa] if sa.rekeyed_to is None else [sa, sa.rekeyed_to]
    for raw in spis:
        if len(raw) != 4:
            continue
        spi = int.from_bytes(raw, "big")
        for owner in owners:
            found = next((c for c in owner.children.values() if c.spec.spi_out == spi), None)
            if found is not None:
                crossing = found.state == ChildState.DELETING
                child.remove(engine, owner, found, "deleted by peer")
                if not crossing:
                    ours.append(found.spec.spi_in.to_bytes(4, "big"))
                break
        else:
            log.info("IKE_SA %s[%d]: peer deletes unknown CHILD_SA SPI %08x", sa.name,
                     sa.ike_id, spi)
    return ours


def delete_ike_sa(engine: Engine, sa: IkeSa, now: float, reason: str) -> None:
    """Remove the kernel state now, tell the peer, forget the SA on the answer (§1.4.1)."""
    if sa.state in (IkeState.DELETED, IkeState.DELETING):
        return
    if sa.state not in (IkeState.ESTABLISHED, IkeState.REKEYING, IkeState.REKEYED):
        engine.remove(sa, reason)
        return
    child.remove_all(engine, sa, reason)
    sa.state = IkeState.DELETING
    sa.queue.clear()  # queued work is moot; an exchange in flight finishes first (window 1)
    engine.send_request(
        sa, _INFO, [Delete(ProtocolId.IKE)],
        lambda e, s, h, p, d, n: e.remove(s, reason), now,
    )


def delete_spis(engine: Engine, sa: IkeSa, spis_in: list[int], now: float) -> None:
    """Ask the peer to delete CHILD_SAs identified by our inbound SPIs (§1.4.1)."""
    engine.send_request(
        sa, _INFO, [Delete(ProtocolId.ESP, tuple(s.to_bytes(4, "big") for s in spis_in))],
        None, now,
    )


def delete_child(engine: Engine, sa: IkeSa, c: ChildSa, now: float, reason: str) -> None:
    """Delete one CHILD_SA: ask the peer, remove both directions on its answer, so the
    inbound SA keeps working until then (§1.4.1, 7296-64)."""
    if c.state in (ChildState.DELETING, ChildState.DELETED):
        return
    if sa.state not in (IkeState.ESTABLISHED, IkeState.REKEYING, IkeState.REKEYED):
        child.remove(engine, sa, c, reason)
        return
    c.state = ChildState.DELETING
    c.rekey_at = None
    child.successor_sends(engine, sa, c)

    def on_response(e: Engine, s: IkeSa, h: Header, p: list, d: bytes, n: float) -> None:
        owner = s.rekeyed_to if c.child_id not in s.children and s.rekeyed_to else s
        child.remove(e, owner, c, reason)

    engine.send_request(
        sa, _INFO, [Delete(c.spec.protocol, (c.spec.spi_in.to_bytes(4, "big"),))],
        on_response, now,
    )


def _name(t: int) -> str:
    try:
        return NotifyType(t).name
    except ValueError:
        return f"notify {t}"
