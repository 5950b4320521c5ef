"""The API server: aiohttp in the daemon's event loop, on TCP (127.0.0.1 by default) and/or
a UNIX socket. Handlers never block: commands are synchronous engine calls, reads come
from the SA table (api.snapshots). Every error is an RFC 9457 problem."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api.auth import authorize, load_or_create_token
from api.context import ApiContext, Call
from api.eventstream import EVENT_TYPES, EventHub
from api.metrics import Metrics
from api.operations import OPERATIONS, Operation
from api.problems import ApiError, problem_response
from api.schemas import COMPONENTS
from api.snapshots import SaSnapshots
from api.validation import check, coerce
from api.views import unix_converter
from ikev2.core.events import ChildSaDeleted
from ikev2.daemon.settings import ApiConfig

log = logging.getLogger("ikev2d.api")
_BODY_TYPES = ("application/json", "application/octet-stream",
               "application/x-www-form-urlencoded", "text/plain")
_KINDS = {404: "not-found", 405: "method-not-allowed", 413: "too-large",
          415: "unsupported-media-type"}


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class ApiServer:
    def __init__(self, daemon: Any, config: ApiConfig) -> None:
        self.daemon = daemon
        self.config = config
        self.token = ""
        self.ctx: ApiContext | None = None
        self.runner: web.AppRunner | None = None
        self.addresses: list[tuple[str, int]] = []  # TCP (host, port) actually bound

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Raises api.auth.TokenError or OSError (e.g. the port is in use)."""
        cfg = self.config
        if cfg.listen:
            self.token = load_or_create_token(cfg.token_file)
        to_unix = unix_converter(self.daemon.clock(), time.time())
        hub = EventHub(to_unix)
        self.ctx = ApiContext(self.daemon, cfg, SaSnapshots(self.daemon.engine, to_unix), hub,
                              Metrics(self.daemon), to_unix, time.time())
        app = web.Application(client_max_size=cfg.max_body, middlewares=[self._errors])
        for op in sorted(OPERATIONS, key=lambda o: "{" in o.path):  # fixed paths first
            app.router.add_route(op.method, op.path, self._handler(op))
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0,
                                    handle_signals=False)
        await self.runner.setup()
        self.daemon.listeners.append(self._on_event)
        try:
            for host in cfg.listen:
                await web.TCPSite(self.runner, host, cfg.port, reuse_address=True).start()
            # the bound (host, port) pairs: what port 0 became
            self.addresses = [a[:2] for a in self.runner.addresses if isinstance(a, tuple)]
            if cfg.unix_socket:
                old = os.umask(0o777 & ~cfg.unix_socket_mode)  # no window with a wider mode
                try:
                    await web.UnixSite(self.runner, cfg.unix_socket).start()
                finally:
                    os.umask(old)
                os.chmod(cfg.unix_socket, cfg.unix_socket_mode)
        except BaseException:
            await self.stop()
            raise
        where = [f"http://{h if ':' not in h else f'[{h}]'}:{p}" for h, p in self.addresses]
        if cfg.unix_socket:
            where.append(f"unix:{cfg.unix_socket}")
        log.info("API listening on %s", ", ".join(where))

    async def stop(self) -> None:
        if self._on_event in self.daemon.listeners:
            self.daemon.listeners.remove(self._on_event)
        if self.ctx is not None:
            self.ctx.hub.close()
            await asyncio.sleep(0)  # let event streams see the end
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.config.unix_socket:
            try:
                os.unlink(self.config.unix_socket)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot remove %s: %s", self.config.unix_socket, exc)

    def _on_event(self, event: object) -> None:
        ctx = self.ctx
        assert ctx is not None
        ctx.snapshots.on_event(event)
        if isinstance(event, ChildSaDeleted):
            ctx.key_handouts.pop(event.child_id, None)
        type_ = EVENT_TYPES.get(type(event))
        if type_ is not None:
            ctx.metrics.on_event(type_, event)
        ctx.hub.publish(event)

    # --- requests ----------------------------------------------------------------------
    @web.middleware
    async def _errors(
        self, request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except ApiError as exc:
            resp = problem_response(exc, request.path)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            kind = _KINDS.get(exc.status, "http-error")
            detail = exc.reason
            if exc.status == 413:
                detail = f"the body is larger than {self.config.max_body} octets (api.max_body)"
            elif exc.status == 404:
                detail = f"no resource at {request.path[:200]!r}"
            resp = problem_response(ApiError(exc.status, kind, detail,
                                             headers=_allow(exc)), request.path)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("API %s %s failed", request.method, request.path)
            resp = problem_response(ApiError(500, "internal-error", "the daemon failed to "
                                             "answer; see its log"), request.path)
        if self.ctx is not None:
            self.ctx.metrics.requests[(request.method, resp.status)] += 1
        return resp

    def _handler(self, op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        path_params = [p for p in op.params if p.where == "path"]
        query_params = [p for p in op.params if p.where == "query"]
        known = {p.name for p in query_params}
        body_schema = COMPONENTS[op.body] if op.body else None

        async def handle(request: web.Request) -> web.StreamResponse:
            ctx = self.ctx
            assert ctx is not None
            if op.auth:
                authorize(request, self.token)
            path = {p.name: coerce(request.match_info[p.name], p.schema, f"path.{p.name}")
                    for p in path_params}
            query: dict[str, Any] = {}
            for name in request.query:
                if name not in known:
                    listed = ", ".join(sorted(known)) or "none"
                    raise ApiError(400, "invalid-request", f"query.{name[:40]}: unknown "
                                   f"parameter (known: {listed})", field=f"query.{name[:40]}")
            for p in query_params:
                values = request.query.getall(p.name, [])
                if len(values) > 1:
                    raise ApiError(400, "invalid-request", f"query.{p.name}: given "
                                   f"{len(values)} times", field=f"query.{p.name}")
                if values:
                    query[p.name] = coerce(values[0], p.schema, f"query.{p.name}")
            body = await self._body(request, op, body_schema) if body_schema else None
            return await op.handler(ctx, Call(request, path, query, body))

        return handle

    async def _body(self, request: web.Request, op: Operation, schema: dict[str, Any]) -> Any:
        length = request.content_length
        if length is not None and length > self.config.max_body:
            raise ApiError(413, "too-large", f"the body ({length} octets) is larger than "
                           f"{self.config.max_body} octets (api.max_body)")
        try:
            raw = await asyncio.wait_for(request.read(), self.config.client_timeout)
        except TimeoutError:
            raise ApiError(408, "timeout", f"the body did not arrive within "
                           f"{self.config.client_timeout:g} s (api.client_timeout)") from None
        if not raw.strip():
            if op.body_required:
                raise ApiError(400, "invalid-request", "body: required (a JSON object)",
                               field="body")
            return None
        ctype = request.content_type  # curl -d sends form-urlencoded: tolerated
        if ctype not in _BODY_TYPES and not ctype.endswith("+json"):
            raise ApiError(415, "unsupported-media-type", f"header.Content-Type: {ctype!r}; "
                           "send application/json", field="header.Content-Type")
        try:
            value = json.loads(raw.decode("utf-8"), parse_constant=_json_constant)
        except UnicodeDecodeError:
            raise ApiError(400, "invalid-json", "body: not UTF-8", field="body") from None
        except ValueError as exc:
            raise ApiError(400, "invalid-json", f"body: not valid JSON ({exc})",
                           field="body") from None
        except RecursionError:
            raise ApiError(400, "invalid-json", "body: nested too deeply",
                           field="body") from None
        check(value, schema, "body")
        return value


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow") if exc.headers else None
    return {"Allow": allow} if allow else {}
