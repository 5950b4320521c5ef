"""IKE SA and CHILD_SA resources: list, detail, terminate, rekey, handover, lookup."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from api import core_adapter, keyexport
from api.auth import over_unix_socket
from api.context import ApiContext, Call, json_response
from api.eventstream import ApiEvent, rtt_ms
from api.problems import ApiError, not_found
from api.selectors import Packet, match, protocol_number
from api.views import child_view, ike_view
from ikev2.core.events import (
    ChildSaDeleted,
    ChildSaInfo,
    ChildSaRekeyed,
    IkeSaAlive,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaInfo,
    IkeSaRekeyed,
    IkeSaUpdated,
    IkeSaUpdateFailed,
)
from ikev2.errors import KernelError


def _timeout(call: Call) -> float | None:
    return float(call.query.get("timeout", 10.0)) if call.query.get("wait") else None


def outcome(result_id: int | None, item: ApiEvent | None, href: str | None) -> web.Response:
    if item is None:
        body: dict[str, Any] = {"outcome": "pending"}
        if result_id is not None:
            body["uniqueid"] = result_id
        if href:
            body["href"] = href
        return json_response(body, 202)
    raw = (f'{{"outcome":"{item.type}"' + (f',"uniqueid":{result_id}' if result_id else "")
           + f',"event":{item.data}}}')
    return json_response(None, 200, raw=raw)


def command_error(exc: Exception, what: str, field: str) -> ApiError:
    """The engine's KeyError / ValueError / KernelError as a problem."""
    if isinstance(exc, KeyError):
        return not_found(what, field)
    if isinstance(exc, KernelError):
        return ApiError(409, "kernel-refused", f"the kernel refused: {exc}")
    return ApiError(409, "wrong-state", str(exc))


def _ike_or_404(ctx: ApiContext, ike_id: int) -> IkeSaInfo:
    info = ctx.snapshots.ike(ike_id)
    if info is None:
        raise not_found(f"IKE SA {ike_id}", "path.ike_id")
    return info


def _child_with_stats(ctx: ApiContext, ike_id: int, c: ChildSaInfo) -> dict[str, Any]:
    view = child_view(c, ike_id, ctx.to_unix)
    stats = core_adapter.child_stats(ctx.daemon.engine, ike_id, c.child_id)
    for key, attr in (("bytes-in", "bytes_in"), ("bytes-out", "bytes_out"),
                      ("packets-in", "packets_in"), ("packets-out", "packets_out")):
        view[key] = getattr(stats, attr) if stats is not None else None
    return view


# --- IKE SAs ---------------------------------------------------------------------------
async def list_ike_sas(ctx: ApiContext, call: Call) -> web.Response:
    q = call.query
    peer_addr = q.get("peer_addr")
    if peer_addr is not None:
        peer_addr = str(ipaddress.ip_address(peer_addr))
    raw = ctx.snapshots.list_json(connection=q.get("connection"), peer_id=q.get("peer_id"),
                                  peer_addr=peer_addr, state=q.get("state"))
    return json_response(None, raw=raw)


async def get_ike_sa(ctx: ApiContext, call: Call) -> web.Response:
    ike_id = call.path["ike_id"]
    info = _ike_or_404(ctx, ike_id)
    view = ike_view(info, ctx.to_unix, children=False)
    view["child-sas"] = [_child_with_stats(ctx, ike_id, c) for c in info.children]
    return json_response(view)


async def terminate_ike_sa(ctx: ApiContext, call: Call) -> web.Response:
    ike_id = call.path["ike_id"]
    _ike_or_404(ctx, ike_id)

    def matches(_: Any, item: ApiEvent) -> bool:
        ev = item.event
        return isinstance(ev, IkeSaDeleted | IkeSaFailed) and ev.ike_id == ike_id

    try:
        _, item = await ctx.wait_for(lambda: ctx.daemon.terminate_sa(ike_id), matches,
                                     _timeout(call))
    except (KeyError, ValueError) as exc:
        raise command_error(exc, f"IKE SA {ike_id}", "path.ike_id") from None
    ctx.snapshots.mark(ike_id)
    return outcome(ike_id, item, f"/ike-sas/{ike_id}")


async def rekey_ike_sa(ctx: ApiContext, call: Call) -> web.Response:
    ike_id = call.path["ike_id"]
    _ike_or_404(ctx, ike_id)
    reauth = bool(call.query.get("reauth"))

    def matches(new_id: int | None, item: ApiEvent) -> bool:
        ev = item.event
        if reauth:
            return (isinstance(ev, IkeSaEstablished) and ev.ike.ike_id == new_id) or (
                isinstance(ev, IkeSaFailed) and ev.ike_id == new_id)
        return (isinstance(ev, IkeSaRekeyed) and ev.old_ike_id == ike_id) or (
            isinstance(ev, IkeSaDeleted) and ev.ike_id == ike_id)

    def start() -> int | None:
        if reauth:
            return ctx.daemon.reauthenticate(ike_id)  # type: ignore[no-any-return]
        ctx.daemon.rekey_ike(ike_id)
        return None

    try:
        new_id, item = await ctx.wait_for(start, matches, _timeout(call))
    except (KeyError, ValueError) as exc:
        raise command_error(exc, f"IKE SA {ike_id}", "path.ike_id") from None
    ctx.snapshots.mark(ike_id)
    result = new_id if new_id is not None else ike_id
    if item is not None and isinstance(item.event, IkeSaRekeyed):
        result = item.event.ike.ike_id
    return outcome(result, item, f"/ike-sas/{result}")


async def handover(ctx: ApiContext, call: Call) -> web.Response:
    ike_id = call.path["ike_id"]
    body = call.body or {}
    local, remote = body.get("local"), body.get("remote")
    mode = body.get("mode", "auto")
    if local is None and remote is None:
        raise ApiError(400, "invalid-request", "body: give local and/or remote, the new "
                       "address(es) of the IKE SA", field="body.local")
    info = _ike_or_404(ctx, ike_id)
    want_local = str(ipaddress.ip_address(local)) if local else info.local[0]
    want_remote = str(ipaddress.ip_address(remote)) if remote else info.remote[0]
    if ipaddress.ip_address(want_local).version != ipaddress.ip_address(want_remote).version:
        field = "body.local" if local is not None else "body.remote"
        raise ApiError(400, "invalid-request", f"{field}: {want_local} and {want_remote} are "
                       "of different address families", field=field)
    if (want_local, want_remote) == (info.local[0], info.remote[0]):
        return json_response({"uniqueid": ike_id, "moved": False, "mode": "none",
                              "ike-sa": ike_view(info, ctx.to_unix)})

    def matches(_: Any, item: ApiEvent) -> bool:
        ev = item.event
        if isinstance(ev, IkeSaUpdated):
            return ev.ike.ike_id == ike_id
        return isinstance(ev, IkeSaUpdateFailed | IkeSaDeleted) and ev.ike_id == ike_id

    def start() -> IkeSaInfo:
        return ctx.daemon.update_addresses(  # type: ignore[no-any-return]
            ike_id, local=local, remote=remote, mode=mode)

    wait = call.query.get("wait", True)
    timeout = float(call.query.get("timeout", 10.0)) if wait else 0.0
    try:
        new, item = await ctx.wait_for(start, matches, timeout)
    except (KeyError, ValueError, KernelError) as exc:
        raise command_error(exc, f"IKE SA {ike_id}", "path.ike_id") from None
    ctx.snapshots.mark(ike_id)
    # the engine's rule for auto (Engine.update_addresses): MOBIKE when negotiated and we
    # are the original initiator, else a K-bit move
    used = mode if mode != "auto" else ("mobike" if info.mobike and info.initiator else "kbit")
    if item is not None:
        ev = item.event
        if isinstance(ev, IkeSaUpdateFailed):  # the peer refused: the SA stayed where it was
            raise ApiError(502, "handover-refused", f"IKE SA {ike_id} not moved: {ev.reason}",
                           extra={"uniqueid": ike_id, "mode": used, "notify": ev.notify})
        if isinstance(ev, IkeSaDeleted):
            raise _deleted_meanwhile(ev, "during the handover")
        new = ev.ike  # ike-update: the SA and its CHILD_SAs are at the new addresses
    return json_response({"uniqueid": ike_id, "moved": item is not None, "mode": used,
                          "ike-sa": ike_view(new, ctx.to_unix)}, 200 if item else 202)


def _deleted_meanwhile(ev: IkeSaDeleted, when: str) -> ApiError:
    return ApiError(502, "ike-sa-deleted", f"IKE SA {ev.name}[{ev.ike_id}] was deleted "
                    f"{when}: {ev.reason}", extra={"uniqueid": ev.ike_id})


LIVENESS_WAIT = 10.0  # seconds, when no ?timeout= (the first retransmission is at 4 s)


async def liveness(ctx: ApiContext, call: Call) -> web.Response:
    """An empty INFORMATIONAL (Engine.check_liveness) and its answer: 200 alive, 504 none
    within the timeout, 502 if the IKE SA went meanwhile."""
    ike_id = call.path["ike_id"]
    _ike_or_404(ctx, ike_id)
    timeout = float(call.query.get("timeout", LIVENESS_WAIT))

    def matches(_: Any, item: ApiEvent) -> bool:
        ev = item.event
        return isinstance(ev, IkeSaAlive | IkeSaDeleted) and ev.ike_id == ike_id

    try:
        _, item = await ctx.wait_for(lambda: ctx.daemon.check_liveness(ike_id), matches,
                                     timeout)
    except (KeyError, ValueError) as exc:
        raise command_error(exc, f"IKE SA {ike_id}", "path.ike_id") from None
    if item is None:
        raise ApiError(504, "no-answer", f"IKE SA {ike_id}: the peer did not answer the "
                       f"liveness check within {timeout:g} s; ikev2d keeps retransmitting "
                       "and deletes the IKE SA if it never answers (ike-down event)",
                       extra={"ike-sa": ike_id, "alive": False})
    ev = item.event
    if isinstance(ev, IkeSaDeleted):
        raise _deleted_meanwhile(ev, "before the peer answered the liveness check")
    return json_response({"ike-sa": ike_id, "alive": True, "rtt-ms": rtt_ms(ev)})


# --- CHILD SAs -------------------------------------------------------------------------
async def list_child_sas(ctx: ApiContext, call: Call) -> web.Response:
    q = call.query
    parts: list[str] = []
    for entry in ctx.snapshots.select():
        info = entry.info
        if "ike_sa" in q and info.ike_id != q["ike_sa"]:
            continue
        for c, text in zip(info.children, entry.children_json(ctx.to_unix), strict=True):
            if "name" in q and c.name != q["name"]:
                continue
            if "state" in q and c.state != q["state"]:
                continue
            parts.append(text)
    return json_response(None, raw="[" + ",".join(parts) + "]")


def _child_or_404(ctx: ApiContext, child_id: int) -> tuple[IkeSaInfo, ChildSaInfo]:
    found = ctx.snapshots.child(child_id)
    if found is None:
        raise not_found(f"CHILD_SA {child_id}", "path.child_id")
    return found


async def get_child_sa(ctx: ApiContext, call: Call) -> web.Response:
    ike, child = _child_or_404(ctx, call.path["child_id"])
    return json_response(_child_with_stats(ctx, ike.ike_id, child))


async def child_keys(ctx: ApiContext, call: Call) -> web.Response:
    """The keys of one CHILD_SA, for a local agent that applies it itself (docs/api.md
    "CHILD_SA keys"): on the UNIX socket only, with api.child_sa_keys (or key_export)."""
    if not (ctx.config.child_sa_keys or ctx.config.key_export):
        raise ApiError(403, "child-sa-keys-off", "handing out CHILD_SA keys is off; set "
                       "api.child_sa_keys = true (with api.unix_socket) in the daemon's "
                       "configuration")
    if not over_unix_socket(call.request):
        raise ApiError(403, "unix-socket-only", "CHILD_SA keys are served on the API's UNIX "
                       "socket only (api.unix_socket), never over TCP")
    child_id = call.path["child_id"]
    ike, child = _child_or_404(ctx, child_id)
    engine = ctx.daemon.engine
    spec = core_adapter.child_spec(engine, ike.ike_id, child_id)
    if spec is None:
        raise ApiError(409, "wrong-state", f"CHILD_SA {child_id} has no keys (state "
                       f"{child.state})")
    handed_out = ctx.key_handouts.get(child_id, 0)
    ctx.key_handouts[child_id] = handed_out + 1
    body = keyexport.child_keys_body(
        spec, child_view(child, ike.ike_id, ctx.to_unix), local_id=ike.local_id,
        remote_id=ike.remote_id, outbound=core_adapter.child_outbound(engine, ike.ike_id,
                                                                      child_id),
        handed_out=handed_out)
    resp = json_response(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def terminate_child_sa(ctx: ApiContext, call: Call) -> web.Response:
    child_id = call.path["child_id"]
    ike, _ = _child_or_404(ctx, child_id)

    def matches(_: Any, item: ApiEvent) -> bool:
        ev = item.event
        return isinstance(ev, ChildSaDeleted) and ev.child_id == child_id

    try:
        _, item = await ctx.wait_for(
            lambda: ctx.daemon.terminate_child(ike.ike_id, child_id), matches, _timeout(call))
    except (KeyError, ValueError) as exc:
        raise command_error(exc, f"CHILD_SA {child_id}", "path.child_id") from None
    ctx.snapshots.mark(ike.ike_id)
    return outcome(child_id, item, f"/child-sas/{child_id}")


async def rekey_child_sa(ctx: ApiContext, call: Call) -> web.Response:
    child_id = call.path["child_id"]
    ike, _ = _child_or_404(ctx, child_id)

    def matches(_: Any, item: ApiEvent) -> bool:
        ev = item.event
        return (isinstance(ev, ChildSaRekeyed) and ev.old_child_id == child_id) or (
            isinstance(ev, ChildSaDeleted) and ev.child_id == child_id)

    try:
        _, item = await ctx.wait_for(
            lambda: ctx.daemon.rekey_child(ike.ike_id, child_id), matches, _timeout(call))
    except (KeyError, ValueError) as exc:
        raise command_error(exc, f"CHILD_SA {child_id}", "path.child_id") from None
    ctx.snapshots.mark(ike.ike_id)
    result = child_id
    if item is not None and isinstance(item.event, ChildSaRekeyed):
        result = item.event.child.child_id
    return outcome(result, item, f"/child-sas/{result}")


async def lookup(ctx: ApiContext, call: Call) -> web.Response:
    q = call.query
    if "src" not in q and "dst" not in q:
        raise ApiError(400, "invalid-request", "query: give src and/or dst (the packet's "
                       "addresses)", field="query.src")
    proto = None
    if "protocol" in q:
        try:
            proto = protocol_number(q["protocol"])
        except ValueError as exc:
            raise ApiError(400, "invalid-request", f"query.protocol: {exc}",
                           field="query.protocol") from None
    src_port, dst_port = q.get("src_port"), q.get("dst_port")
    for key, p in (("mh_type", 135), ("icmp_type", None)):
        if key in q:
            want = p if p is not None else (proto if proto in (1, 58) else None)
            if want is None or (proto is not None and proto != want):
                raise ApiError(400, "invalid-request", f"query.{key}: needs protocol="
                               + ("mh" if key == "mh_type" else "icmp or icmpv6"),
                               field=f"query.{key}")
            proto = want
            src_port = q[key] << 8
    pkt = Packet(
        ipaddress.ip_address(q["src"]) if "src" in q else None,
        ipaddress.ip_address(q["dst"]) if "dst" in q else None,
        proto, src_port, dst_port,
    )
    out: list[str] = []
    for entry in ctx.snapshots.select():
        info = entry.info
        for c, text in zip(info.children, entry.children_json(ctx.to_unix), strict=True):
            for direction in match(c, pkt):
                spi = c.spi_out if direction == "out" else c.spi_in
                out.append(f'{{"direction":"{direction}","spi":"{spi:08x}","child-sa":{text}}}')
    return json_response(None, raw="[" + ",".join(out) + "]")
