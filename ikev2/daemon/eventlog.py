"""One readable log line per core event (strongSwan-like: `name[ike_id]`, `name{child_id}`)."""

from __future__ import annotations

import logging

from ikev2.core.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    ChildSaInfo,
    ChildSaRekeyed,
    Endpoint,
    IkeSaAlive,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaInfo,
    IkeSaRekeyed,
    IkeSaUpdated,
    IkeSaUpdateFailed,
)


def endpoint(ep: Endpoint | tuple[str, int] | list[object]) -> str:
    return f"{ep[0]}[{ep[1]}]"


def ike_line(ike: IkeSaInfo) -> str:
    return (
        f"{endpoint(ike.local)}-{endpoint(ike.remote)} {ike.local_id}-{ike.remote_id} "
        f"SPIs {ike.spi_i:016x}_i {ike.spi_r:016x}_r {ike.suite}"
    )


def child_line(child: ChildSaInfo) -> str:
    return (
        f"SPIs {child.spi_in:08x}_i {child.spi_out:08x}_o {child.suite} "
        f"TS {' '.join(child.local_ts)} === {' '.join(child.remote_ts)}"
        + (" transport" if child.mode == "transport" else "")
        + (" (UDP-encap)" if child.encap else "")
    )


def format_event(event: object) -> tuple[int, str]:
    """(logging level, message) for a core event."""
    if isinstance(event, IkeSaEstablished):
        ike = event.ike
        return logging.INFO, f"IKE_SA {ike.name}[{ike.ike_id}] established {ike_line(ike)}"
    if isinstance(event, ChildSaEstablished):
        c = event.child
        return logging.INFO, f"CHILD_SA {c.name}{{{c.child_id}}} installed {child_line(c)}"
    if isinstance(event, IkeSaFailed):
        notify = f" (notify {event.notify})" if event.notify else ""
        return (
            logging.WARNING,
            f"IKE_SA {event.name}[{event.ike_id}] failed: {event.reason}{notify}",
        )
    if isinstance(event, ChildSaFailed):
        notify = f" (notify {event.notify})" if event.notify else ""
        return (
            logging.WARNING,
            f"CHILD_SA {event.name} in IKE_SA [{event.ike_id}] failed: {event.reason}{notify}",
        )
    if isinstance(event, IkeSaDeleted):
        return logging.INFO, f"IKE_SA {event.name}[{event.ike_id}] deleted: {event.reason}"
    if isinstance(event, ChildSaDeleted):
        return logging.INFO, f"CHILD_SA {event.name}{{{event.child_id}}} deleted: {event.reason}"
    if isinstance(event, IkeSaRekeyed):
        ike = event.ike
        return logging.INFO, (
            f"IKE_SA {ike.name}[{event.old_ike_id}] rekeyed to {ike.name}[{ike.ike_id}] "
            f"{ike_line(ike)}"
        )
    if isinstance(event, ChildSaRekeyed):
        c = event.child
        return logging.INFO, (
            f"CHILD_SA {c.name}{{{event.old_child_id}}} rekeyed to {c.name}{{{c.child_id}}} "
            f"{child_line(c)}"
        )
    if isinstance(event, IkeSaUpdated):
        ike = event.ike  # the core already logs the move at info level
        return logging.DEBUG, (
            f"IKE_SA {ike.name}[{ike.ike_id}] moved from {endpoint(event.old_local)}-"
            f"{endpoint(event.old_remote)} to {endpoint(ike.local)}-{endpoint(ike.remote)}"
        )
    if isinstance(event, IkeSaUpdateFailed):
        return logging.INFO, (
            f"IKE_SA {event.name}[{event.ike_id}] not moved to {endpoint(event.local)}-"
            f"{endpoint(event.remote)}: {event.reason}"
        )
    if isinstance(event, IkeSaAlive):
        return logging.INFO, (
            f"IKE_SA {event.name}[{event.ike_id}] alive: the peer answered the liveness "
            f"check in {event.rtt * 1000:.1f} ms"
        )
    return logging.INFO, f"event {event!r}"
