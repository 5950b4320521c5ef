"""Health, OpenAPI document, metrics, the event stream, Wireshark key export."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from api import core_adapter, keyexport
from api.context import ApiContext, Call, json_response
from api.eventstream import TYPE_NAMES
from api.problems import ApiError

HEARTBEAT = 15.0  # seconds between SSE keep-alive comments


async def health(ctx: ApiContext, call: Call) -> web.Response:
    import ikev2

    return json_response({
        "status": "ok", "version": getattr(ikev2, "__version__", "0"),
        "ike-sas": len(ctx.snapshots.entries), "uptime": round(time.time() - ctx.started, 3),
    })


async def openapi(ctx: ApiContext, call: Call) -> web.Response:
    from api.openapi import document_json

    return json_response(None, raw=document_json())


async def metrics(ctx: ApiContext, call: Call) -> web.Response:
    states = ctx.snapshots.states()
    children = sum(len(e.info.children) for e in ctx.snapshots.entries.values())
    text = ctx.metrics.render(states, children, len(ctx.hub.subscribers))
    return web.Response(text=text, content_type="text/plain",
                        headers={"X-Prometheus-Format": "0.0.4"})


async def events(ctx: ApiContext, call: Call) -> web.StreamResponse:
    q = call.query
    types = frozenset(q["types"].split(",")) if "types" in q else frozenset(TYPE_NAMES)
    last_id = None
    header = call.request.headers.get("Last-Event-ID")
    if header is not None:
        if not header.strip().isdigit():
            raise ApiError(400, "invalid-request", "header.Last-Event-ID: not an event id",
                           field="header.Last-Event-ID")
        last_id = int(header)
    if len(ctx.hub.subscribers) >= ctx.config.max_streams:
        raise ApiError(429, "too-many-streams", f"{ctx.config.max_streams} event streams are "
                       "open (api.max_streams)", headers={"Retry-After": "5"})
    limit = q.get("limit")
    deadline = time.monotonic() + q["duration"] if "duration" in q else None
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    sub = ctx.hub.subscribe(types, last_id)
    try:
        await resp.prepare(call.request)
        await resp.write(b"retry: 1000\n: ikev2d events\n\n")
        sent = 0
        while limit is None or sent < limit:
            wait = HEARTBEAT
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            try:
                item = await asyncio.wait_for(sub.queue.get(), wait)
            except TimeoutError:
                await resp.write(b": keep-alive\n\n")
                continue
            if item is None:  # the server is stopping
                break
            await resp.write(item.sse())
            sent += 1
            if sub.overflowed and sub.queue.empty():
                await resp.write(b'event: overflow\ndata: {"type":"overflow"}\n\n')
                break
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client went away
    finally:
        ctx.hub.unsubscribe(sub)
    return resp


def _key_files(ctx: ApiContext) -> keyexport.KeyFiles:
    if not ctx.config.key_export:
        raise ApiError(403, "key-export-off", "key export is off; set api.key_export = true "
                       "(and api.key_export_dir) in the daemon's configuration")
    engine = ctx.daemon.engine
    specs, ike_keys, missing = [], [], 0
    for entry in ctx.snapshots.select():
        info = entry.info
        keys = core_adapter.ike_keys(engine, info.ike_id)
        if keys is not None:
            ike_keys.append(keys)
        elif info.established_at is not None:
            missing += 1
        for c in info.children:
            spec = core_adapter.child_spec(engine, info.ike_id, c.child_id)
            if spec is not None:
                specs.append(spec)
    return keyexport.build(specs, ike_keys, missing)


async def get_key_file(ctx: ApiContext, call: Call) -> web.Response:
    files = _key_files(ctx)
    text = files.esp if call.path["file"] == keyexport.ESP_FILE else files.ike
    return web.Response(text=text, content_type="text/plain")


async def export_keys(ctx: ApiContext, call: Call) -> web.Response:
    files = _key_files(ctx)
    body = call.body or {}
    directory = ctx.config.key_export_dir
    assert directory is not None  # the loader requires it with key_export
    written = []
    for field, default, text in (("esp_file", keyexport.ESP_FILE, files.esp),
                                 ("ike_file", keyexport.IKE_FILE, files.ike)):
        name = body.get(field, default)
        why = keyexport.check_file_name(name)
        if why:
            raise ApiError(400, "invalid-request", f"body.{field}: {why}", field=f"body.{field}")
        try:
            written.append(keyexport.write_file(directory, name, text))
        except (OSError, ValueError) as exc:
            raise ApiError(409, "cannot-write", f"body.{field}: cannot write {name!r} in "
                           f"{directory}: {exc}", field=f"body.{field}") from None
    return json_response({"files": written, "esp-sas": files.esp_sas, "ike-sas": files.ike_sas,
                          "skipped": list(files.skipped)})
