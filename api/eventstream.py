"""Core events as API events: a type name, a JSON body, a sequence number; fanned out to
Server-Sent-Events subscribers through bounded queues, the last ones kept for replay
(`Last-Event-ID`). Rendering is lazy: an event nobody reads is never turned into JSON.

    ike-up      IkeSaEstablished   {"ike-sa": {...}}
    ike-down    IkeSaDeleted       {"uniqueid", "name", "reason"}
    ike-failed  IkeSaFailed        {"uniqueid", "name", "reason", "notify"}
    ike-rekey   IkeSaRekeyed       {"old-uniqueid", "ike-sa": {...}}
    ike-update  IkeSaUpdated       {"old-local-host", "old-local-port", "old-remote-host",
                                    "old-remote-port", "ike-sa": {...}}
    ike-update-failed IkeSaUpdateFailed {"uniqueid", "name", "local-host", "local-port",
                                    "remote-host", "remote-port" (asked for), "reason",
                                    "notify"}
    ike-alive   IkeSaAlive         {"uniqueid", "name", "rtt-ms"}
    child-up    ChildSaEstablished {"ike-sa", "child-sa": {...}}
    child-down  ChildSaDeleted     {"ike-sa", "uniqueid", "name", "reason"}
    child-failed ChildSaFailed     {"ike-sa", "name", "reason", "notify"}
    child-rekey ChildSaRekeyed     {"ike-sa", "old-uniqueid", "child-sa": {...}}

Every body also has "type", "id" (the sequence number) and "time" (UNIX time).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from api.snapshots import dumps
from api.views import ToUnix, child_view, ike_view
from ikev2.core.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    ChildSaRekeyed,
    IkeSaAlive,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaRekeyed,
    IkeSaUpdated,
    IkeSaUpdateFailed,
)

EVENT_TYPES: dict[type, str] = {
    IkeSaEstablished: "ike-up",
    IkeSaDeleted: "ike-down",
    IkeSaFailed: "ike-failed",
    IkeSaRekeyed: "ike-rekey",
    IkeSaUpdated: "ike-update",
    IkeSaUpdateFailed: "ike-update-failed",
    IkeSaAlive: "ike-alive",
    ChildSaEstablished: "child-up",
    ChildSaDeleted: "child-down",
    ChildSaFailed: "child-failed",
    ChildSaRekeyed: "child-rekey",
}
TYPE_NAMES = tuple(EVENT_TYPES.values())
REPLAY = 1024  # events kept for Last-Event-ID
QUEUE = 4096  # events a slow subscriber may fall behind before it is cut off


def event_body(event: object, to_unix: ToUnix) -> dict[str, Any]:
    if isinstance(event, IkeSaEstablished):
        return {"ike-sa": ike_view(event.ike, to_unix)}
    if isinstance(event, IkeSaDeleted):
        return {"uniqueid": event.ike_id, "name": event.name, "reason": event.reason}
    if isinstance(event, IkeSaFailed):
        return {"uniqueid": event.ike_id, "name": event.name, "reason": event.reason,
                "notify": event.notify}
    if isinstance(event, IkeSaRekeyed):
        return {"old-uniqueid": event.old_ike_id, "ike-sa": ike_view(event.ike, to_unix)}
    if isinstance(event, IkeSaUpdated):
        return {"old-local-host": event.old_local[0], "old-local-port": event.old_local[1],
                "old-remote-host": event.old_remote[0], "old-remote-port": event.old_remote[1],
                "ike-sa": ike_view(event.ike, to_unix)}
    if isinstance(event, IkeSaUpdateFailed):
        return {"uniqueid": event.ike_id, "name": event.name, "local-host": event.local[0],
                "local-port": event.local[1], "remote-host": event.remote[0],
                "remote-port": event.remote[1], "reason": event.reason, "notify": event.notify}
    if isinstance(event, IkeSaAlive):
        return {"uniqueid": event.ike_id, "name": event.name, "rtt-ms": rtt_ms(event)}
    if isinstance(event, ChildSaEstablished):
        return {"ike-sa": event.ike_id, "child-sa": child_view(event.child, event.ike_id,
                                                              to_unix)}
    if isinstance(event, ChildSaDeleted):
        return {"ike-sa": event.ike_id, "uniqueid": event.child_id, "name": event.name,
                "reason": event.reason}
    if isinstance(event, ChildSaFailed):
        return {"ike-sa": event.ike_id, "name": event.name, "reason": event.reason,
                "notify": event.notify}
    if isinstance(event, ChildSaRekeyed):
        return {"ike-sa": event.ike_id, "old-uniqueid": event.old_child_id,
                "child-sa": child_view(event.child, event.ike_id, to_unix)}
    raise TypeError(f"not a core event: {event!r}")


def rtt_ms(event: IkeSaAlive) -> float:
    return round(event.rtt * 1000, 3)


class ApiEvent:
    """One published event; `data` is its JSON, made on first use."""

    __slots__ = ("_data", "event", "seq", "time", "to_unix", "type")

    def __init__(self, seq: int, type_: str, event: object, to_unix: ToUnix) -> None:
        self.seq = seq
        self.type = type_
        self.event = event
        self.time = time.time()
        self.to_unix = to_unix
        self._data: str | None = None

    @property
    def data(self) -> str:
        if self._data is None:
            body = {"type": self.type, "id": self.seq, "time": round(self.time, 3)}
            body.update(event_body(self.event, self.to_unix))
            self._data = dumps(body)
        return self._data

    def sse(self) -> bytes:
        return f"id: {self.seq}\nevent: {self.type}\ndata: {self.data}\n\n".encode()


class Subscription:
    __slots__ = ("overflowed", "queue", "types")

    def __init__(self, types: frozenset[str]) -> None:
        self.types = types
        self.queue: asyncio.Queue[ApiEvent | None] = asyncio.Queue(QUEUE)
        self.overflowed = False


class EventHub:
    """Receives every core event (Daemon.listeners) and fans it out."""

    def __init__(self, to_unix: ToUnix) -> None:
        self.to_unix = to_unix
        self.seq = 0
        self.recent: deque[ApiEvent] = deque(maxlen=REPLAY)
        self.subscribers: set[Subscription] = set()
        self.taps: list[Callable[[ApiEvent], None]] = []  # in-process waiters (initiate)

    def publish(self, event: object) -> None:
        type_ = EVENT_TYPES.get(type(event))
        if type_ is None:
            return
        self.seq += 1
        item = ApiEvent(self.seq, type_, event, self.to_unix)
        self.recent.append(item)
        for tap in list(self.taps):
            tap(item)
        for sub in self.subscribers:
            if type_ not in sub.types or sub.overflowed:
                continue
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                sub.overflowed = True  # the stream says so and ends; the client resumes

    def subscribe(self, types: frozenset[str], last_id: int | None) -> Subscription:
        sub = Subscription(types)
        if last_id is not None:
            for item in self.recent:
                if item.seq > last_id and item.type in types:
                    sub.queue.put_nowait(item)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subscribers.discard(sub)

    def close(self) -> None:
        """Wake every stream so it ends (server shutdown)."""
        for sub in self.subscribers:
            try:
                sub.queue.put_nowait(None)
            except asyncio.QueueFull:
                sub.overflowed = True
