"""SA lifetimes and the timers behind them (RFC 7296 §2.8 rekey timing, §2.4 liveness):
jittered soft lifetimes trigger a rekey (or reauthentication), hard lifetimes delete."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ikev2.config.model import ChildConfig, StartAction
from ikev2.core.sa import ChildSa, ChildState, IkeSa, IkeState
from ikev2.errors import UnusableAddress
from ikev2.protocol.enums import ExchangeType, ProtocolId
from ikev2.protocol.payloads import Delete

if TYPE_CHECKING:
    from ikev2.core.engine import Engine

log = logging.getLogger("ikev2.core")

RETRY_MIN, RETRY_SPREAD = 2.0, 8.0  # after TEMPORARY_FAILURE: "MUST NOT immediately retry"
REKEYED_GRACE = 30.0  # a replaced IKE SA the peer should delete; after this we do


def jitter(engine: Engine, spread: float) -> float:
    """A random delay in [0, spread) from the engine's injected RNG (7296-63)."""
    if spread <= 0:
        return 0.0
    return spread * int.from_bytes(engine.random(2), "big") / 65536.0


def retry_delay(engine: Engine) -> float:
    return RETRY_MIN + jitter(engine, RETRY_SPREAD)


# -- IKE SA ---------------------------------------------------------------------------------
def ike_established(engine: Engine, sa: IkeSa, now: float) -> None:
    """Arm the IKE SA's rekey/reauth, hard expiry and liveness timers."""
    conn = sa.conn
    assert conn is not None
    sa.last_in = now
    renew = conn.renew_time
    if renew > 0:
        spread = min(conn.jitter, renew)
        sa.due["rekey"] = now + renew - jitter(engine, spread)
        sa.due["expire"] = now + renew + conn.margin
    if conn.dpd_delay > 0:
        sa.due["dpd"] = now + conn.dpd_delay
    engine.schedule(sa)


def after_established(engine: Engine, sa: IkeSa, now: float) -> None:
    """Initiator, once IKE_AUTH is done: the connection's further start_action=initiate
    children (CREATE_CHILD_SA), and the end of a reauthentication (make-before-break)."""
    from ikev2.core import create_child, informational

    conn = sa.conn
    assert conn is not None
    have = {c.config.name for c in sa.children.values()}
    wanted: list[ChildConfig] = [
        c for c in conn.children[1:] if c.start_action == StartAction.INITIATE
    ]
    old = engine.by_id.get(sa.reauth_of) if sa.reauth_of is not None else None
    if old is not None:
        wanted += [c.config for c in old.children.values() if c.config not in wanted]
    for cfg in wanted:
        if cfg.name not in have:
            create_child.start(engine, sa, cfg, now)
            have.add(cfg.name)
    if old is not None:
        log.info("IKE_SA %s[%d] reauthenticated as [%d]", old.name, old.ike_id, sa.ike_id)
        informational.delete_ike_sa(engine, old, now, f"reauthenticated as [{sa.ike_id}]")


def reauthenticate(engine: Engine, sa: IkeSa, now: float) -> int:
    """Start a new IKE SA for the same connection; the old one goes when it is up."""
    conn = sa.conn
    assert conn is not None
    if conn.name not in engine.connections:
        raise ValueError(f"connection {conn.name!r} is no longer loaded")
    local = sa.local[0]  # where the SA is now (it may have moved, RFC 4555 / 4877)
    if engine.local_addresses and local not in engine.local_addresses:
        local = None
    try:
        new_id = engine.initiate(conn.name, now, local=local)
    except UnusableAddress:  # outside local_addrs (a move the config does not list)
        new_id = engine.initiate(conn.name, now)
    engine.by_id[new_id].reauth_of = sa.ike_id
    log.info("IKE_SA %s[%d] reauthenticating as [%d]", sa.name, sa.ike_id, new_id)
    return new_id


def fire(engine: Engine, sa: IkeSa, name: str, now: float) -> None:
    """One of the SA's named deadlines has passed."""
    from ikev2.core import create_child, liveness

    if name == "half_open":
        if sa.state not in (IkeState.ESTABLISHED, IkeState.REKEYING):
            engine.remove(sa, "half-open IKE SA timed out")
    elif name == "expire":
        engine.remove(sa, "IKE SA hard lifetime expired")
    elif name == "rekey":
        _renew_ike(engine, sa, now)
    elif name == "dpd":
        liveness.check(engine, sa, now)
    elif name == "rekeyed" and sa.state == IkeState.REKEYED:
        # the peer should have deleted this replaced (or redundant) IKE SA and may well
        # have forgotten it (§2.8.2, last paragraph): tell it once, do not wait for it
        engine.send_oneshot(sa, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE)])
        engine.remove(sa, "replaced by a rekeyed IKE SA; the peer did not delete it")
    elif name.startswith("create:"):
        assert sa.conn is not None
        cfg = next((c for c in sa.conn.children if c.name == name[7:]), None)
        if cfg is not None and sa.state == IkeState.ESTABLISHED:
            create_child.start(engine, sa, cfg, now)


def _renew_ike(engine: Engine, sa: IkeSa, now: float) -> None:
    from ikev2.core import ike_rekey

    conn = sa.conn
    assert conn is not None
    if sa.state != IkeState.ESTABLISHED:
        if sa.state == IkeState.REKEYING:
            return
        sa.due["rekey"] = now + retry_delay(engine)
        return
    reauth = conn.reauth_time > 0 and (conn.rekey_time <= 0 or conn.reauth_time <= conn.rekey_time)
    peer = conn.remote_addrs[0] if conn.remote_addrs else "%any"
    if reauth and peer not in ("%any", "0.0.0.0", "::") and conn.name in engine.connections:
        reauthenticate(engine, sa, now)
        return
    ike_rekey.start(engine, sa, now)


# -- CHILD_SA -------------------------------------------------------------------------------
def child_installed(engine: Engine, child: ChildSa, now: float) -> None:
    """Soft (rekey) and hard lifetimes of a new CHILD_SA."""
    cfg = child.config
    if cfg.rekey_time > 0:
        spread = min(cfg.jitter, cfg.rekey_time)
        child.rekey_at = now + cfg.rekey_time - jitter(engine, spread)
    hard = cfg.hard_time if cfg.rekey_time > 0 or cfg.life_time is not None else 0.0
    if hard > 0:
        child.expire_at = now + hard


def child_expired(
    engine: Engine, sa: IkeSa, child: ChildSa, now: float, *, hard: bool, why: str
) -> None:
    """Soft: rekey (§2.8); hard: delete (§1.4.1). `why` is "time" or "kernel"."""
    from ikev2.core import create_child, informational

    name = f"{child.config.name}{{{child.child_id}}}"
    if hard:
        if child.state != ChildState.DELETED:
            log.info("CHILD_SA %s hard lifetime (%s) expired, deleting", name, why)
            informational.delete_child(engine, sa, child, now, f"hard lifetime ({why}) expired")
        return
    if child.state != ChildState.INSTALLED:
        return
    if sa.state != IkeState.ESTABLISHED:
        child.rekey_at = now + retry_delay(engine)
        return
    log.info("CHILD_SA %s soft lifetime (%s) reached, rekeying", name, why)
    create_child.start(engine, sa, child.config, now, old=child)
