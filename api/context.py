"""What every handler gets: the daemon (commands), the SA table, the event hub, metrics,
and the parsed request (`Call`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from api.eventstream import ApiEvent, EventHub
from api.metrics import Metrics
from api.snapshots import SaSnapshots
from api.views import ToUnix
from ikev2.daemon.settings import ApiConfig


@dataclass(frozen=True, slots=True)
class ApiContext:
    daemon: Any  # ikev2.daemon.runner.Daemon
    config: ApiConfig
    snapshots: SaSnapshots
    hub: EventHub
    metrics: Metrics
    to_unix: ToUnix
    started: float  # UNIX time the API started
    # CHILD_SA id -> how often GET /child-sas/{id}/keys answered (api.keyexport)
    key_handouts: dict[int, int] = field(default_factory=dict)

    async def wait_for(
        self, start: Callable[[], Any], matches: Callable[[Any, ApiEvent], bool],
        timeout: float | None,
    ) -> tuple[Any, ApiEvent | None]:
        """Run the command `start()` and, when `timeout` is given, wait up to that long for
        the first event `matches(result, event)` accepts. Returns (result, event | None)."""
        if timeout is None:
            return start(), None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[ApiEvent] = loop.create_future()
        seen: list[ApiEvent] = []
        state: dict[str, Any] = {}

        def tap(item: ApiEvent) -> None:
            if "result" not in state:
                seen.append(item)  # events raised while the command itself ran
            elif not done.done() and matches(state["result"], item):
                done.set_result(item)

        self.hub.taps.append(tap)
        try:
            result = start()
            state["result"] = result
            for item in seen:
                if matches(result, item):
                    return result, item
            try:
                return result, await asyncio.wait_for(done, timeout)
            except TimeoutError:
                return result, None
        finally:
            self.hub.taps.remove(tap)


@dataclass(frozen=True, slots=True)
class Call:
    """A request after checking: typed path and query values, the decoded body."""

    request: web.Request
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any


def json_response(data: Any, status: int = 200, *, raw: str | None = None) -> web.Response:
    text = raw if raw is not None else json.dumps(data, separators=(",", ":"))
    return web.Response(status=status, text=text, content_type="application/json")
