"""Trap policies: CHILD_SAs negotiated on demand (start_action = "trap", and dpd_action =
"hold" after a dead peer). The kernel holds policies without SAs; the first matching packet
makes it send an ACQUIRE, and the engine brings the IKE SA and that CHILD_SA up (RFC 4301
§5.2 "on demand" SA creation). The CHILD_SA keeps the trap's reqid, so it takes over the
policies; they stay installed when the CHILD_SA goes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ikev2.config.model import ChildConfig, ConnectionConfig, Mode, StartAction
from ikev2.core.sa import LIVE_IKE, IkeState
from ikev2.errors import KernelError
from ikev2.kernel.base import ChildSaSpec
from ikev2.protocol.enums import ProtocolId

if TYPE_CHECKING:
    from ikev2.core.engine import Engine

log = logging.getLogger("ikev2.core")
_ANY = ("%any", "0.0.0.0", "::")


def _spec(engine: Engine, conn: ConnectionConfig, cfg: ChildConfig, reqid: int) -> ChildSaSpec:
    remote = conn.remote_addrs[0]
    local = engine._local_address(conn, remote)
    return ChildSaSpec(
        reqid=reqid, protocol=ProtocolId.ESP,
        mode="transport" if cfg.mode == Mode.TRANSPORT else "tunnel",
        local=local, remote=remote, spi_in=0, spi_out=0, encr_id=0, encr_key_bits=None,
        integ_id=0, esn=False, encr_key_in=b"", encr_key_out=b"", integ_key_in=b"",
        integ_key_out=b"",
        local_ts=tuple(t.resolve(local) for t in cfg.local_ts),
        remote_ts=tuple(t.resolve(remote) for t in cfg.remote_ts),
        install_policies=cfg.install_policies,
    )


def install(engine: Engine, conn: ConnectionConfig, *, every_child: bool = False) -> int:
    """Trap the connection's start_action = "trap" children (all of them for `hold`).
    Returns how many were installed; a kernel refusal is logged and skipped."""
    if not conn.remote_addrs or conn.remote_addrs[0] in _ANY:
        if any(c.start_action == StartAction.TRAP for c in conn.children):
            log.warning("connection %s: trap needs a concrete remote address", conn.name)
        return 0
    done = 0
    for cfg in conn.children:
        if not every_child and cfg.start_action != StartAction.TRAP:
            continue
        key = (conn.name, cfg.name)
        if key in engine.trap_reqids:
            continue
        reqid = engine.new_reqid()
        spec = _spec(engine, conn, cfg, reqid)
        try:
            engine.kernel.install_trap(spec)
        except (KernelError, AttributeError) as e:
            log.warning("connection %s child %s: trap policies refused: %s", conn.name,
                        cfg.name, e)
            continue
        engine.trap_reqids[key] = reqid
        engine.traps[reqid] = spec
        done += 1
        log.info("connection %s child %s trapped (reqid %d): %s === %s", conn.name, cfg.name,
                 reqid, ",".join(map(str, spec.local_ts)), ",".join(map(str, spec.remote_ts)))
    return done


def remove(engine: Engine, name: str) -> None:
    for key in [k for k in engine.trap_reqids if k[0] == name]:
        reqid = engine.trap_reqids.pop(key)
        spec = engine.traps.pop(reqid)
        try:
            engine.kernel.remove_trap(spec)
        except KernelError as e:
            log.warning("connection %s: removing trap policies failed: %s", name, e)


def on_acquire(engine: Engine, reqid: int, now: float) -> bool:
    """Traffic hit a trap: bring up the IKE SA (with this child first) or, on a live IKE
    SA, a CHILD_SA for it. False if the reqid is no trap of ours."""
    spec = engine.traps.get(reqid)
    if spec is None:
        return False
    name, child_name = next(k for k, v in engine.trap_reqids.items() if v == reqid)
    conn = engine.connections.get(name)
    if conn is None:
        return False
    for sa in engine.by_id.values():
        if sa.conn is not conn and (sa.conn is None or sa.conn.name != name):
            continue
        if sa.state in LIVE_IKE:
            if any(c.config.name == child_name for c in sa.children.values()):
                return True  # already up (a late ACQUIRE)
            from ikev2.core import create_child

            create_child.start(engine, sa, conn.child(child_name), now)
            return True
        if sa.state in (IkeState.CREATED, IkeState.INIT_DONE):
            return True  # being set up
    log.info("connection %s child %s: traffic matched the trap, initiating", name, child_name)
    engine.initiate(name, now, child=child_name)
    return True
