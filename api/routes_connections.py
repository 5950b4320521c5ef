"""Connections: list, load/replace (the TOML schema as JSON, checked by the config loader),
unload, initiate."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from api.context import ApiContext, Call, json_response
from api.eventstream import ApiEvent
from api.problems import ApiError, not_found
from api.routes_sas import command_error, outcome
from ikev2.config.loader import load_connection_data
from ikev2.config.model import ConnectionConfig, StartAction, TsConfig
from ikev2.core.events import IkeSaEstablished, IkeSaFailed
from ikev2.errors import ConfigError, UnusableAddress


def _ts(ts: TsConfig) -> str:
    return "dynamic" if ts.dynamic or ts.selector is None else str(ts.selector)


def connection_view(conn: ConnectionConfig, ike_ids: list[int]) -> dict[str, Any]:
    from ikev2.crypto.proposals import suite_name

    return {
        "name": conn.name,
        "local-addrs": list(conn.local_addrs),
        "remote-addrs": list(conn.remote_addrs),
        "local-port": conn.local_port,
        "remote-port": conn.remote_port,
        "local-id": str(conn.local.id) if conn.local.id is not None else None,
        "remote-id": str(conn.remote.id) if conn.remote.id is not None else None,
        "ike-proposals": [suite_name(p) for p in conn.ike_proposals],
        "mobike": conn.mobike,
        "encap": conn.encap,
        "children": [
            {"name": c.name, "mode": c.mode.value, "local-ts": [_ts(t) for t in c.local_ts],
             "remote-ts": [_ts(t) for t in c.remote_ts],
             "esp-proposals": [suite_name(p) for p in c.esp_proposals],
             "start-action": c.start_action.value}
            for c in conn.children
        ],
        "ike-sas": ike_ids,
    }


def _sa_ids(ctx: ApiContext) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for entry in ctx.snapshots.select():
        out.setdefault(entry.info.name, []).append(entry.info.ike_id)
    return out


def _conn_or_404(ctx: ApiContext, name: str) -> ConnectionConfig:
    conn = ctx.daemon.connections.get(name)
    if conn is None:
        raise not_found(f"connection {name!r}", "path.name")
    return conn  # type: ignore[no-any-return]


async def list_connections(ctx: ApiContext, call: Call) -> web.Response:
    ids = _sa_ids(ctx)
    conns = ctx.daemon.connections
    return json_response([connection_view(conns[n], ids.get(n, [])) for n in sorted(conns)])


async def get_connection(ctx: ApiContext, call: Call) -> web.Response:
    conn = _conn_or_404(ctx, call.path["name"])
    return json_response(connection_view(conn, _sa_ids(ctx).get(conn.name, [])))


async def load_connection(ctx: ApiContext, call: Call) -> web.Response:
    name = call.path["name"]
    daemon = ctx.daemon
    try:
        conn = load_connection_data(name, call.body, daemon.config, "body",
                                    others=tuple(daemon.connections.values()))
    except ConfigError as exc:
        prefix = f"connections.{name}"
        key = exc.key[len(prefix):] if exc.key.startswith(prefix) else f".{exc.key}"
        field = "body" + key
        raise ApiError(422, "invalid-connection", f"{field}: {exc.reason}", field=field,
                       extra={"key": exc.key}) from None
    created = name not in daemon.connections
    daemon.load_connection(conn)
    body = connection_view(conn, _sa_ids(ctx).get(name, []))
    if created and any(c.start_action is StartAction.INITIATE for c in conn.children):
        body["initiated"] = daemon.initiate(name)  # as at daemon start (start_action)
    return json_response(body, 201 if created else 200)


async def unload_connection(ctx: ApiContext, call: Call) -> web.Response:
    name = call.path["name"]
    _conn_or_404(ctx, name)
    ctx.daemon.unload_connection(name)
    terminated: list[int] = []
    if call.query.get("terminate"):
        for ike_id in _sa_ids(ctx).get(name, []):
            try:
                ctx.daemon.terminate_sa(ike_id)
                terminated.append(ike_id)
            except (KeyError, ValueError):
                continue  # not live (half-open, already deleting)
            ctx.snapshots.mark(ike_id)
    return json_response({"name": name, "terminated": terminated})


def _initiate_from(call: Call) -> tuple[str | None, str]:
    """The `local` address (query or body, given once) and the field that named it."""
    query = call.query.get("local")
    body = (call.body or {}).get("local")
    if query is not None and body is not None and (
            ipaddress.ip_address(query) != ipaddress.ip_address(body)):
        raise ApiError(400, "invalid-request", f"query.local ({query}) and body.local "
                       f"({body}) differ; give the address once", field="query.local")
    return (query, "query.local") if query is not None else (body, "body.local")


async def initiate(ctx: ApiContext, call: Call) -> web.Response:
    name = call.path["name"]
    _conn_or_404(ctx, name)
    local, field = _initiate_from(call)
    wait = call.query.get("wait", True)
    timeout = float(call.query.get("timeout", 10.0)) if wait else None

    def matches(ike_id: int, item: ApiEvent) -> bool:
        ev = item.event
        return (isinstance(ev, IkeSaEstablished) and ev.ike.ike_id == ike_id) or (
            isinstance(ev, IkeSaFailed) and ev.ike_id == ike_id)

    try:
        ike_id, item = await ctx.wait_for(lambda: ctx.daemon.initiate_sa(name, local=local),
                                          matches, timeout)
    except UnusableAddress as exc:
        raise ApiError(422, "unusable-address", f"{field}: {exc}", field=field,
                       extra={"address": exc.address}) from None
    except (KeyError, ValueError) as exc:
        raise command_error(exc, f"connection {name!r}", "path.name") from None
    ctx.snapshots.mark(ike_id)
    if item is not None and isinstance(item.event, IkeSaFailed):
        ev = item.event
        raise ApiError(502, "ike-failed", f"IKE SA {name}[{ike_id}] failed: {ev.reason}",
                       extra={"uniqueid": ike_id, "notify": ev.notify})
    return outcome(ike_id, item, f"/ike-sas/{ike_id}")
