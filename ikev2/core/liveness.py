"""Dead peer detection (RFC 7296 §2.4): after `dpd_delay` without anything authenticated
from the peer (IKE messages or inbound ESP bytes), an empty INFORMATIONAL; if its
retransmissions go unanswered the engine deletes the IKE SA and applies `dpd_action`."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from ikev2.core.sa import LIVE_IKE, IkeSa
from ikev2.errors import KernelError
from ikev2.protocol.enums import ExchangeType

if TYPE_CHECKING:
    from ikev2.core.engine import Engine

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
