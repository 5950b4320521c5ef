"""Dead peer detection (RFC 7296 §2.4): after `dpd_delay` without anything authenticated
from the peer (IKE messages or inbound ESP bytes), an empty INFORMATIONAL; if its
retransmissions go unanswered the engine deletes the IKE SA and applies `dpd_action`.

A check asked for (`Engine.check_liveness`, the API's liveness endpoint) is the same empty
INFORMATIONAL, queued behind an exchange in flight (window size 1, §2.3); its answer is
reported as `IkeSaAlive`, its loss as the IKE SA's deletion (`IkeSaDeleted`)."""

from __future__ import annotations

import contextlib
import logging
from functools import partial
from typing import TYPE_CHECKING

from ikev2.core.events import IkeSaAlive
from ikev2.core.sa import LIVE_IKE, IkeSa
from ikev2.errors import KernelError
from ikev2.protocol.enums import ExchangeType

if TYPE_CHECKING:
    from ikev2.core.engine import Engine
    from ikev2.protocol.header import Header

log = logging.getLogger("ikev2.core")


def inbound_bytes(engine: Engine, sa: IkeSa) -> int:
    total = 0
    for c in sa.children.values():
        with contextlib.suppress(KernelError):
            total += engine.kernel.child_stats(c.spec).bytes_in
    return total


def check(engine: Engine, sa: IkeSa, now: float) -> None:
    """The `dpd` deadline passed: probe the peer unless it was heard from lately (7296-70)."""
    conn = sa.conn
    if conn is None or conn.dpd_delay <= 0 or sa.state not in LIVE_IKE:
        return
    delay = conn.dpd_delay
    if now - sa.last_in < delay:
        sa.due["dpd"] = sa.last_in + delay
        return
    seen = inbound_bytes(engine, sa)
    if seen != sa.stats_in:  # ESP from the peer proves liveness too
        sa.stats_in = seen
        sa.last_in = now
    elif sa.pending is None:
        log.debug("IKE_SA %s[%d] idle for %.0f s, checking liveness", sa.name, sa.ike_id,
                  now - sa.last_in)
        engine.send_request(sa, ExchangeType.INFORMATIONAL, [], None, now)
    sa.due["dpd"] = now + delay


def probe(engine: Engine, sa: IkeSa, now: float) -> None:
    """An empty INFORMATIONAL whose answer is reported (IkeSaAlive). One at a time: while
    a check is outstanding or queued, its answer serves this call too."""
    waiting = [sa.pending.on_response] if sa.pending is not None else []
    waiting += [cb for _, _, cb in sa.queue]
    if any(isinstance(cb, partial) and cb.func is _answered for cb in waiting):
        return
    engine.send_request(sa, ExchangeType.INFORMATIONAL, [], partial(_answered, now), now)


def _answered(
    asked: float, engine: Engine, sa: IkeSa, header: Header, payloads: list, data: bytes,
    now: float,
) -> None:
    """The answer to `probe`'s request: any authenticated response proves the peer alive."""
    log.debug("IKE_SA %s[%d] liveness check answered in %.1f ms", sa.name, sa.ike_id,
              (now - asked) * 1000)
    engine.emit(IkeSaAlive(sa.ike_id, sa.name, now - asked))
