"""JSON Schemas of the API: published in the OpenAPI document (components/schemas) and
used by api.validation to check requests, so the contract is the code."""

from __future__ import annotations

from typing import Any

from api.eventstream import TYPE_NAMES
from api.keyexport import FILE_NAME_RE

IKE_STATES = ["CREATED", "CONNECTING", "ESTABLISHED", "REKEYING", "REKEYED", "DELETING",
              "DELETED"]
CHILD_STATES = ["INSTALLED", "REKEYING", "REKEYED", "DELETING", "DELETED"]
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_ID = (1 << 63) - 1
MAX_WAIT = 120.0

def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_TIME = {"type": ["number", "null"], "description": "UNIX time"}
_ALG = {"type": ["string", "null"]}
_STRS = {"type": "array", "items": _STR}

CHILD_SA: dict[str, Any] = {
    "type": "object",
    "description": "A CHILD_SA (strongSwan VICI list-sas child-sas names).",
    "required": ["uniqueid", "name", "ike-sa", "reqid", "state", "mode", "protocol", "encap",
                 "local-host", "remote-host", "spi-in", "spi-out", "suite", "local-ts",
                 "remote-ts", "install-at"],
    "properties": {
        "uniqueid": _INT, "name": _STR, "ike-sa": _INT, "reqid": _INT,
        "state": {"type": "string", "enum": CHILD_STATES},
        "mode": {"type": "string", "enum": ["TUNNEL", "TRANSPORT"]},
        "protocol": {"type": "string", "enum": ["ESP", "AH"]},
        "encap": _BOOL,
        "local-host": {"type": "string", "description": "outer source address (tunnel "
                       "endpoint or transport SA address); follows MOBIKE/K-bit moves"},
        "remote-host": {"type": "string", "description": "outer destination address"},
        "spi-in": {"type": "string", "pattern": "^[0-9a-f]{8}$"},
        "spi-out": {"type": "string", "pattern": "^[0-9a-f]{8}$"},
        "suite": _STR, "encr-alg": _ALG, "encr-keysize": {"type": ["integer", "null"]},
        "integ-alg": _ALG, "dh-group": _ALG, "esn": _BOOL,
        "local-ts": _STRS, "remote-ts": _STRS,
        "install-at": _TIME, "rekey-at": _TIME, "expire-at": _TIME,
        "bytes-in": {"type": ["integer", "null"]}, "bytes-out": {"type": ["integer", "null"]},
        "packets-in": {"type": ["integer", "null"]},
        "packets-out": {"type": ["integer", "null"]},
    },
}

_HEX = {"type": "string", "pattern": "^([0-9a-f]{2})*$"}
_KEYS = {"type": "object", "required": ["spi", "encr-key", "integ-key"],
         "properties": {"spi": {"type": "string", "pattern": "^[0-9a-f]{8}$"},
                        "encr-key": _HEX, "integ-key": _HEX}}
CHILD_SA_KEYS: dict[str, Any] = {
    "type": "object",
    "description": "A CHILD_SA (as ChildSa, without counters) with its IKE SA's identities, "
                   "the transform IDs (IANA), ESN, the replay window, whether its outbound "
                   "SA is in use yet (a rekey responder's waits for the old SA's delete), "
                   "how often these keys were handed out before, and per direction the SPI "
                   "and the keys in hex (an AEAD key ends with its salt). Secrets.",
    "required": [*CHILD_SA["required"], "local-id", "remote-id", "encr-id", "integ-id",
                 "esn", "replay-window", "outbound", "handed-out", "in", "out"],
    "properties": {
        **{k: v for k, v in CHILD_SA["properties"].items() if not k.startswith(("bytes",
                                                                               "packets"))},
        "local-id": _STR, "remote-id": _STR, "encr-id": _INT, "integ-id": _INT,
        "replay-window": _INT, "outbound": _BOOL, "handed-out": _INT, "in": _KEYS,
        "out": _KEYS,
    },
}

IKE_SA: dict[str, Any] = {
    "type": "object",
    "description": "An IKE SA (strongSwan VICI list-sas names; times are UNIX times).",
    "required": ["uniqueid", "name", "version", "state", "initiator", "local-host",
                 "local-port", "local-id", "remote-host", "remote-port", "remote-id",
                 "initiator-spi", "responder-spi", "nat-local", "nat-remote", "nat-any",
                 "encap", "mobike", "suite", "established-at", "child-sas"],
    "properties": {
        "uniqueid": _INT, "name": _STR, "version": {"type": "integer", "enum": [2]},
        "state": {"type": "string", "enum": IKE_STATES}, "initiator": _BOOL,
        "local-host": _STR, "local-port": _INT, "local-id": _STR,
        "remote-host": _STR, "remote-port": _INT, "remote-id": _STR,
        "initiator-spi": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "responder-spi": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "nat-local": _BOOL, "nat-remote": _BOOL, "nat-any": _BOOL, "encap": _BOOL,
        "mobike": _BOOL, "suite": _STR, "local-vips": _STRS, "remote-vips": _STRS,
        "home-prefix": _STR, "encr-alg": _ALG,
        "encr-keysize": {"type": ["integer", "null"]}, "integ-alg": _ALG, "prf-alg": _ALG,
        "dh-group": _ALG, "established-at": _TIME, "rekey-at": _TIME, "expire-at": _TIME,
        "child-sas": {"type": "array", "items": ref("ChildSa")},
    },
}

PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details; `field` names the bad input.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": _STR, "title": _STR, "status": _INT, "detail": _STR, "field": _STR,
        "instance": _STR,
    },
}

_DURATION = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "maxLength": 32}]}
_ADDRS = {"anyOf": [{"type": "string", "maxLength": 64},
                    {"type": "array", "maxItems": 64, "items": {"type": "string",
                                                                "maxLength": 64}}]}
_TABLE = {"type": "object", "description": "as in docs/config.md"}

CONNECTION_BODY: dict[str, Any] = {
    "type": "object",
    "description": "A [connections.NAME] table of docs/config.md as JSON; checked by the "
                   "config loader (422 with the key path on error).",
    "required": ["remote_addrs"],
    "additionalProperties": False,
    "properties": {
        "local_addrs": _ADDRS, "remote_addrs": _ADDRS,
        "local_port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "remote_port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "ike_proposals": _ADDRS,
        "encap": _BOOL, "mobike": _BOOL, "fragmentation": _BOOL,
        "send_initial_contact": _BOOL,
        "psk": {"type": "string", "maxLength": 1024},
        "retransmit": _TABLE,
        "rekey_time": _DURATION, "reauth_time": _DURATION, "over_time": _DURATION,
        "rand_time": _DURATION, "dpd_delay": _DURATION,
        "dpd_action": {"type": "string", "enum": ["clear", "restart", "hold"]},
        "vips": _STRS, "request_home_prefix": _BOOL, "assign_address": _STR,
        "assign_home_prefix": _STR, "home_prefix_lifetime": _DURATION,
        "local": _TABLE, "remote": _TABLE,
        "children": {"type": "object", "additionalProperties": _TABLE},
    },
}

CONNECTION: dict[str, Any] = {
    "type": "object",
    "required": ["name", "local-addrs", "remote-addrs", "local-id", "remote-id", "children",
                 "ike-sas"],
    "properties": {
        "name": _STR, "local-addrs": _STRS, "remote-addrs": _STRS,
        "local-port": {"type": ["integer", "null"]}, "remote-port": {"type": ["integer", "null"]},
        "local-id": {"type": ["string", "null"]}, "remote-id": {"type": ["string", "null"]},
        "ike-proposals": _STRS, "mobike": _BOOL, "encap": _BOOL,
        "children": {"type": "array", "items": {
            "type": "object", "required": ["name", "mode", "local-ts", "remote-ts"],
            "properties": {"name": _STR, "mode": _STR, "local-ts": _STRS, "remote-ts": _STRS,
                           "esp-proposals": _STRS, "start-action": _STR}}},
        "ike-sas": {"type": "array", "items": _INT},
    },
}

OUTCOME: dict[str, Any] = {
    "type": "object",
    "description": "What a command led to: `pending` (not waited for, or not within the "
                   "timeout) or the type of the event that settled it, with that event.",
    "required": ["outcome"],
    "properties": {
        "outcome": {"type": "string", "enum": ["pending", *TYPE_NAMES]},
        "uniqueid": _INT, "href": _STR,
        "event": {"type": "object"},
        "ike-sa": ref("IkeSa"),
    },
}

_ADDRESS = {"anyOf": [{"type": "string", "format": "ipv4"},
                      {"type": "string", "format": "ipv6"}]}

INITIATE_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Optional. local: the address to initiate from (as ?local=; give it "
                   "once). It must be in the connection's local_addrs, of the remote "
                   "address's family, configured on this host and covered by daemon.listen "
                   "(else 422 naming what to change).",
    "properties": {"local": _ADDRESS},
}

LIVENESS: dict[str, Any] = {
    "type": "object",
    "description": "The peer answered an empty INFORMATIONAL (RFC 7296 §2.4). rtt-ms: from "
                   "the request to the answer, an exchange already in flight included.",
    "required": ["ike-sa", "alive", "rtt-ms"],
    "properties": {"ike-sa": _INT, "alive": {"type": "boolean", "enum": [True]},
                   "rtt-ms": {"type": "number", "minimum": 0}},
}

HANDOVER_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "Move the IKE SA and its CHILD_SAs to a new local and/or remote address. "
                   "mode: mobike (UPDATE_SA_ADDRESSES, RFC 4555 §3.5: we must be the IKE SA "
                   "initiator and MOBIKE negotiated; the SAs move when the peer answers), "
                   "kbit (move here at once, no exchange: RFC 4877 §4.4, both ends moved by "
                   "a K-bit Binding Update), auto (mobike when possible, else kbit).",
    "properties": {
        "local": _ADDRESS,
        "remote": _ADDRESS,
        "mode": {"type": "string", "enum": ["auto", "mobike", "kbit"], "default": "auto"},
    },
}

HANDOVER: dict[str, Any] = {
    "type": "object",
    "description": "moved: the SA is at the requested addresses now (200); false with 202: "
                   "the MOBIKE exchange is still running (or no answer within the timeout), "
                   "the ike-update event tells when it moved (ike-update-failed if the peer "
                   "refused). A refusal within the timeout is a 502 problem instead.",
    "required": ["uniqueid", "moved", "mode", "ike-sa"],
    "properties": {"uniqueid": _INT, "moved": _BOOL,
                   "mode": {"type": "string", "enum": ["mobike", "kbit", "none"]},
                   "ike-sa": ref("IkeSa")},
}

_FILE = {"type": "string", "pattern": r"^(?!.*\.\.)" + FILE_NAME_RE.pattern[1:],
         "maxLength": 128}
KEY_EXPORT_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "File names (no directory) inside api.key_export_dir.",
    "properties": {"esp_file": _FILE, "ike_file": _FILE},
}

KEY_EXPORT: dict[str, Any] = {
    "type": "object",
    "required": ["files", "esp-sas", "ike-sas", "skipped"],
    "properties": {"files": _STRS, "esp-sas": _INT, "ike-sas": _INT, "skipped": _STRS},
}

LOOKUP: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["direction", "spi", "child-sa"],
        "properties": {"direction": {"type": "string", "enum": ["in", "out"]},
                       "spi": {"type": "string", "pattern": "^[0-9a-f]{8}$"},
                       "child-sa": ref("ChildSa")},
    },
}

HEALTH: dict[str, Any] = {
    "type": "object",
    "required": ["status", "version", "ike-sas", "uptime"],
    "properties": {"status": {"type": "string", "enum": ["ok"]}, "version": _STR,
                   "ike-sas": _INT, "uptime": {"type": "number"}},
}

UNLOADED: dict[str, Any] = {
    "type": "object", "required": ["name", "terminated"],
    "properties": {"name": _STR, "terminated": {"type": "array", "items": _INT}},
}

COMPONENTS: dict[str, dict[str, Any]] = {
    "IkeSa": IKE_SA, "ChildSa": CHILD_SA, "ChildSaKeys": CHILD_SA_KEYS, "Problem": PROBLEM,
    "Connection": CONNECTION,
    "ConnectionBody": CONNECTION_BODY, "Outcome": OUTCOME, "InitiateBody": INITIATE_BODY,
    "Liveness": LIVENESS, "HandoverBody": HANDOVER_BODY,
    "Handover": HANDOVER, "KeyExportBody": KEY_EXPORT_BODY, "KeyExport": KEY_EXPORT,
    "Lookup": LOOKUP, "Health": HEALTH, "Unloaded": UNLOADED,
}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with a top-level $ref replaced by its component (for api.validation)."""
    if "$ref" in schema:
        return COMPONENTS[schema["$ref"].rsplit("/", 1)[1]]
    return schema
