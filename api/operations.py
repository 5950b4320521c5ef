"""The route table: every operation with its parameters, body and answers. The server
routes and checks requests from it; api.openapi publishes it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api import routes_connections as conns
from api import routes_misc as misc
from api import routes_sas as sas
from api.context import ApiContext, Call
from api.eventstream import TYPE_NAMES
from api.keyexport import ESP_FILE, IKE_FILE
from api.problems import CONTENT_TYPE
from api.schemas import CHILD_STATES, IKE_STATES, MAX_ID, MAX_WAIT, NAME_PATTERN

Handler = Callable[[ApiContext, Call], Awaitable[web.StreamResponse]]
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # "path" | "query"
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    description: str
    schema: dict[str, Any] | None = None  # None: no JSON body described
    media_type: str = JSON


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str  # OpenAPI template, e.g. /ike-sas/{ike_id}
    op_id: str
    tag: str
    summary: str
    handler: Handler
    answers: tuple[Answer, ...]
    params: tuple[Param, ...] = ()
    body: str | None = None  # component schema name
    body_required: bool = False
    auth: bool = True


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
IKE_ID = Param("ike_id", "path", _ID, "IKE SA unique id", True)
CHILD_ID = Param("child_id", "path", _ID, "CHILD_SA unique id", True)
CONN = Param("name", "path", {"type": "string", "pattern": NAME_PATTERN}, "connection name",
             True)
WAIT = Param("wait", "query", {"type": "boolean"},
             "wait for the event that settles the command (up to `timeout`)")
TIMEOUT = Param("timeout", "query", {"type": "number", "minimum": 0, "maximum": MAX_WAIT},
                "seconds to wait (default 10)")
_S64 = {"type": "string", "maxLength": 255}
_PORT = {"type": "integer", "minimum": 0, "maximum": 65535}
_TYPE = {"type": "integer", "minimum": 0, "maximum": 255}
_IP = {"type": "string", "format": "ip", "maxLength": 64}

LIVENESS_TIMEOUT = Param(
    "timeout", "query", {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_WAIT},
    "seconds to wait for the answer (default 10; the check goes on after that, and the IKE "
    "SA is deleted if the peer never answers)")
LOCAL = Param("local", "query", {"type": "string", "format": "ip", "maxLength": 64},
              "initiate from this address (or body.local): one of the connection's "
              "local_addrs, configured on this host and covered by daemon.listen")
OUTCOME = Answer(200, "settled: the event that settled it", _ref("Outcome"))
PENDING = Answer(202, "accepted, not settled (yet)", _ref("Outcome"))

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/health", "health", "daemon", "Liveness (no token needed)", misc.health,
              (Answer(200, "alive", _ref("Health")),), auth=False),
    Operation("GET", "/openapi.json", "openapi", "daemon", "This document", misc.openapi,
              (Answer(200, "the OpenAPI 3.1 document", {"type": "object"}),)),
    Operation("GET", "/metrics", "metrics", "daemon", "Prometheus metrics", misc.metrics,
              (Answer(200, "Prometheus text format 0.0.4", {"type": "string"}, "text/plain"),)),
    Operation(
        "GET", "/events", "events", "events",
        "Server-Sent Events: ike-up, ike-down, ike-failed, ike-rekey, ike-update, "
        "ike-update-failed, ike-alive, child-up, child-down, child-failed, child-rekey (JSON "
        "data; resume with Last-Event-ID)",
        misc.events,
        (Answer(200, "an event stream", {"type": "string"}, "text/event-stream"),),
        (Param("types", "query", {"type": "string", "pattern":
                                   rf"^({'|'.join(TYPE_NAMES)})(,({'|'.join(TYPE_NAMES)}))*$"},
               "comma-separated event types (default: all)"),
         Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000000},
               "end the stream after this many events"),
         Param("duration", "query", {"type": "number", "minimum": 0, "maximum": 86400},
               "end the stream after this many seconds")),
    ),
    # --- IKE SAs
    Operation(
        "GET", "/ike-sas", "listIkeSas", "ike-sas", "All IKE SAs (filters combine)",
        sas.list_ike_sas, (Answer(200, "IKE SAs by uniqueid", _array("IkeSa")),),
        (Param("connection", "query", _S64, "connection name"),
         Param("peer_id", "query", _S64, "the peer's identity (remote-id)"),
         Param("peer_addr", "query", _IP, "the peer's address (remote-host)"),
         Param("state", "query", {"type": "string", "enum": IKE_STATES}, "IKE SA state")),
    ),
    Operation("GET", "/ike-sas/{ike_id}", "getIkeSa", "ike-sas",
              "One IKE SA, read now, with CHILD_SA byte/packet counters", sas.get_ike_sa,
              (Answer(200, "the IKE SA", _ref("IkeSa")),), (IKE_ID,)),
    Operation("DELETE", "/ike-sas/{ike_id}", "terminateIkeSa", "ike-sas",
              "Delete the IKE SA and its CHILD_SAs (INFORMATIONAL delete)",
              sas.terminate_ike_sa, (OUTCOME, PENDING), (IKE_ID, WAIT, TIMEOUT)),
    Operation("POST", "/ike-sas/{ike_id}/rekey", "rekeyIkeSa", "ike-sas",
              "Rekey the IKE SA (or reauthenticate it: a new IKE SA from scratch)",
              sas.rekey_ike_sa, (OUTCOME, PENDING),
              (IKE_ID, Param("reauth", "query", {"type": "boolean"}, "reauthenticate"),
               WAIT, TIMEOUT)),
    Operation("POST", "/ike-sas/{ike_id}/handover", "handover", "ike-sas",
              "Move the IKE SA and its CHILD_SAs to new local and/or remote addresses "
              "(waits for a MOBIKE answer unless wait=false)",
              sas.handover, (Answer(200, "moved (or already there)", _ref("Handover")),
                             Answer(202, "MOBIKE update under way", _ref("Handover")),
                             Answer(502, "the peer refused the MOBIKE update (`notify`), or "
                                    "the IKE SA was deleted meanwhile; it keeps its "
                                    "addresses", _ref("Problem"), CONTENT_TYPE)),
              (IKE_ID, WAIT, TIMEOUT), body="HandoverBody", body_required=True),
    Operation("POST", "/ike-sas/{ike_id}/liveness", "checkLiveness", "ike-sas",
              "Check that the peer is alive: an empty INFORMATIONAL (RFC 7296 §2.4), "
              "waiting for its answer", sas.liveness,
              (Answer(200, "the peer answered", _ref("Liveness")),
               Answer(502, "the IKE SA was deleted while waiting (e.g. the peer stopped "
                      "answering)", _ref("Problem"), CONTENT_TYPE),
               Answer(504, "no answer within `timeout`", _ref("Problem"), CONTENT_TYPE)),
              (IKE_ID, LIVENESS_TIMEOUT)),
    # --- CHILD SAs
    Operation(
        "GET", "/child-sas", "listChildSas", "child-sas", "All CHILD_SAs", sas.list_child_sas,
        (Answer(200, "CHILD_SAs", _array("ChildSa")),),
        (Param("ike_sa", "query", _ID, "only those of this IKE SA"),
         Param("name", "query", _S64, "child name"),
         Param("state", "query", {"type": "string", "enum": CHILD_STATES}, "CHILD_SA state")),
    ),
    Operation(
        "GET", "/child-sas/lookup", "lookupChildSa", "child-sas",
        "Which CHILD_SA and SPI protect a packet (SPD to SPI; MH/ICMP type in the source "
        "side's port selector)", sas.lookup,
        (Answer(200, "matches, one per CHILD_SA and direction", _ref("Lookup")),),
        (Param("src", "query", _IP, "the packet's source address"),
         Param("dst", "query", _IP, "the packet's destination address"),
         Param("protocol", "query", {"type": "string", "maxLength": 16},
               "IP protocol: a number 0-255 or tcp, udp, icmp, icmpv6, mh, sctp, gre, any"),
         Param("mh_type", "query", _TYPE, "Mobility Header type (protocol mh)"),
         Param("icmp_type", "query", _TYPE, "ICMP type (protocol icmp or icmpv6)"),
         Param("src_port", "query", _PORT, "source port"),
         Param("dst_port", "query", _PORT, "destination port")),
    ),
    Operation("GET", "/child-sas/{child_id}", "getChildSa", "child-sas",
              "One CHILD_SA, read now, with byte/packet counters", sas.get_child_sa,
              (Answer(200, "the CHILD_SA", _ref("ChildSa")),), (CHILD_ID,)),
    Operation("GET", "/child-sas/{child_id}/keys", "getChildSaKeys", "child-sas",
              "The SPIs, algorithms and keys of one CHILD_SA, for a local agent applying "
              "it itself (UNIX socket only; needs api.child_sa_keys or api.key_export)",
              sas.child_keys, (Answer(200, "the CHILD_SA with its keys", _ref("ChildSaKeys")),
                               Answer(403, "off (api.child_sa_keys), or asked over TCP",
                                      _ref("Problem"), CONTENT_TYPE)),
              (CHILD_ID,)),
    Operation("DELETE", "/child-sas/{child_id}", "terminateChildSa", "child-sas",
              "Delete the CHILD_SA", sas.terminate_child_sa, (OUTCOME, PENDING),
              (CHILD_ID, WAIT, TIMEOUT)),
    Operation("POST", "/child-sas/{child_id}/rekey", "rekeyChildSa", "child-sas",
              "Rekey the CHILD_SA", sas.rekey_child_sa, (OUTCOME, PENDING),
              (CHILD_ID, WAIT, TIMEOUT)),
    # --- connections
    Operation("GET", "/connections", "listConnections", "connections", "Loaded connections",
              conns.list_connections, (Answer(200, "connections", _array("Connection")),)),
    Operation("GET", "/connections/{name}", "getConnection", "connections", "One connection",
              conns.get_connection, (Answer(200, "the connection", _ref("Connection")),),
              (CONN,)),
    Operation("PUT", "/connections/{name}", "loadConnection", "connections",
              "Load or replace a connection (a [connections.NAME] table as JSON); SAs "
              "already up keep the old settings",
              conns.load_connection,
              (Answer(200, "replaced", _ref("Connection")),
               Answer(201, "loaded", _ref("Connection"))),
              (CONN,), body="ConnectionBody", body_required=True),
    Operation("DELETE", "/connections/{name}", "unloadConnection", "connections",
              "Unload a connection (its SAs stay unless terminate=true)",
              conns.unload_connection, (Answer(200, "unloaded", _ref("Unloaded")),),
              (CONN, Param("terminate", "query", {"type": "boolean"},
                           "also delete its IKE SAs"))),
    Operation("POST", "/connections/{name}/initiate", "initiate", "connections",
              "Initiate an IKE SA (with its CHILD_SAs), from `local` if given; waits for "
              "the outcome unless wait=false; 502 if it failed, 422 if `local` cannot be "
              "used", conns.initiate,
              (OUTCOME, PENDING), (CONN, LOCAL, WAIT, TIMEOUT), body="InitiateBody"),
    # --- keys
    Operation("GET", "/keys/{file}", "getKeyFile", "keys",
              "A Wireshark key file (needs api.key_export)", misc.get_key_file,
              (Answer(200, "the file's text", {"type": "string"}, "text/plain"),),
              (Param("file", "path", {"type": "string", "enum": [ESP_FILE, IKE_FILE]},
                     "which file", True),)),
    Operation("POST", "/keys/export", "exportKeys", "keys",
              "Write the Wireshark key files into api.key_export_dir", misc.export_keys,
              (Answer(200, "written", _ref("KeyExport")),), body="KeyExportBody"),
)
