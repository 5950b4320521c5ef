"""`ikev2ctl`: inspect and drive a running ikev2d, over its REST API (docs/api.md) or, for
list-sas, from its state file.

    ikev2ctl list-sas [--state-file FILE] [--json] [--connection N] [--state S]
    ikev2ctl list-conns [--json]
    ikev2ctl initiate NAME [--local ADDR] [--no-wait] [--timeout S]
    ikev2ctl liveness IKE_ID [--timeout S]
    ikev2ctl terminate IKE_ID | --child CHILD_ID [--no-wait] [--timeout S]
    ikev2ctl rekey IKE_ID [--reauth] | --child CHILD_ID [--no-wait] [--timeout S]
    ikev2ctl load-conn FILE.toml [--name NAME]
    ikev2ctl unload-conn NAME [--terminate]
    ikev2ctl handover IKE_ID [--local ADDR] [--remote ADDR] [--mode auto]
    ikev2ctl lookup [--src A] [--dst A] [--protocol P] [--mh-type N] [--json]
    ikev2ctl watch [--type T]... [--count N] [--json]
    ikev2ctl proposals [--ike | --esp] [--json]
    ikev2ctl bindings [--status FILE] [--json]      # MIPv6 binding cache (ikev2-mip6)

Where the API is: --socket PATH, or --api URL with --token / --token-file (or the
IKEV2D_API and IKEV2D_TOKEN environment variables), or --config FILE (its [api] section
and token file; /etc/ikev2d/ikev2d.toml when it exists).

Exit codes: 0 ok, 1 failed (the daemon said no, did not answer, or no state file; for
liveness: the peer did not answer within --timeout, or the IKE SA is gone), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ikev2.protocol.enums import TransformType

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PROG = "ikev2ctl"
DEFAULT_CONFIG = "/etc/ikev2d/ikev2d.toml"


def _list_sas(args: argparse.Namespace) -> int:
    if args.state_file is None:
        from api.commands import list_sas

        return list_sas(args)
    from ikev2.daemon.satable import format_sa_table
    from ikev2.daemon.statefile import StateFileError, read_state

    try:
        doc, sas = read_state(args.state_file)
    except StateFileError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    note = _liveness_note(doc)
    if note:
        print(f"{PROG}: {args.state_file}: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(doc["ike_sas"], indent=1))
    else:
        print(format_sa_table(sas))
    return EXIT_OK


def _liveness_note(doc: dict[str, Any]) -> str | None:
    """Why the state file may not describe a running daemon, or None."""
    pid = doc.get("pid")
    if doc.get("running") is False:
        return f"ikev2d (pid {pid}) has stopped; it holds no SAs"
    if isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"stale: ikev2d pid {pid} is not running (killed?); these SAs are gone"
        except PermissionError:  # alive, another user's
            pass
    return None


_TYPE_LABEL = {
    TransformType.ENCR: "encryption",
    TransformType.PRF: "prf",
    TransformType.INTEG: "integrity",
    TransformType.DH: "dh group",
    TransformType.ESN: "esn",
}


def _proposals(args: argparse.Namespace) -> int:
    from ikev2.crypto.proposals import DEFAULT_ESP, DEFAULT_IKE, supported_transforms

    rows = [
        t for t in supported_transforms()
        if (t.ike or not args.ike) and (t.esp or not args.esp)
    ]
    if args.json:
        print(json.dumps({
            "transforms": [asdict(t) | {"type": _TYPE_LABEL[TransformType(t.type)]}
                           for t in rows],
            "default_ike": list(DEFAULT_IKE),
            "default_esp": list(DEFAULT_ESP),
        }, indent=1))
        return EXIT_OK
    width = max(len(t.name) for t in rows)
    for kind, label in _TYPE_LABEL.items():
        group = [t for t in rows if t.type == kind]
        if not group:
            continue
        print(f"{label}:")
        for t in group:
            where = "/".join(w for w, ok in (("ike", t.ike), ("esp", t.esp)) if ok)
            alias = f"  (also {', '.join(t.aliases)})" if t.aliases else ""
            print(f"  {t.name.ljust(width)}  id {t.id:<5} {where}{alias}")
    print(f"default ike_proposals: {', '.join(DEFAULT_IKE)}")
    print(f"default esp_proposals: {', '.join(DEFAULT_ESP)}")
    return EXIT_OK


def _api_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("where the API is")
    g.add_argument("--api", metavar="URL", help="API URL, e.g. http://127.0.0.1:7296 "
                   "(env IKEV2D_API)")
    g.add_argument("--token", help="bearer token (env IKEV2D_TOKEN)")
    g.add_argument("--token-file", help="file holding the token (api.token_file)")
    g.add_argument("--socket", metavar="PATH", help="the API's UNIX socket (no token needed)")
    g.add_argument("--config", metavar="FILE",
                   help=f"daemon config: use its [api] section (default {DEFAULT_CONFIG} "
                        "when it exists)")
    g.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for an outcome (default 10)")
    return common


def _parser() -> argparse.ArgumentParser:
    from api import commands as api

    p = argparse.ArgumentParser(prog=PROG, description="Inspect and drive a running ikev2d.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _api_options()

    def cmd(name: str, help_: str, func: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, parents=[common])
        sp.set_defaults(func=func)
        return sp

    ls = cmd("list-sas", "IKE and CHILD SAs (from the API, or --state-file)", _list_sas)
    ls.add_argument("--state-file",
                    help="read the daemon's daemon.state_file (JSON snapshot) instead of the API")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.add_argument("--connection", help="only this connection's SAs (API)")
    ls.add_argument("--state", help="only SAs in this state, e.g. ESTABLISHED (API)")
    lc = cmd("list-conns", "loaded connections", api.list_conns)
    lc.add_argument("--json", action="store_true")
    ini = cmd("initiate", "start an IKE SA of a connection and wait for it", api.initiate)
    ini.add_argument("name")
    ini.add_argument("--local", metavar="ADDR", help="initiate from this local address "
                     "(one of the connection's local_addrs, configured on this host)")
    ini.add_argument("--no-wait", action="store_true", help="return at once with its id")
    li = cmd("liveness", "check that an IKE SA's peer answers (an empty INFORMATIONAL); "
             "exit 1 if not within --timeout", api.liveness)
    li.add_argument("ike_id", type=int, help="IKE SA uniqueid")
    for name, help_, func in (("terminate", "delete an IKE SA or CHILD_SA", api.terminate),
                              ("rekey", "rekey an IKE SA or CHILD_SA", api.rekey)):
        sp = cmd(name, help_, func)
        sp.add_argument("ike_id", nargs="?", type=int, help="IKE SA uniqueid")
        sp.add_argument("--child", type=int, metavar="CHILD_ID", help="a CHILD_SA instead")
        sp.add_argument("--no-wait", action="store_true")
        if name == "rekey":
            sp.add_argument("--reauth", action="store_true",
                            help="reauthenticate (a new IKE SA from scratch)")
    lo = cmd("load-conn", "load (or replace) the connections of a TOML file", api.load_conn)
    lo.add_argument("file", help="TOML with [connections.NAME] tables (e.g. a daemon config)")
    lo.add_argument("--name", action="append", help="only this connection (repeatable)")
    un = cmd("unload-conn", "unload a connection", api.unload_conn)
    un.add_argument("name")
    un.add_argument("--terminate", action="store_true", help="also delete its IKE SAs")
    ho = cmd("handover", "move an IKE SA to new local and/or remote addresses", api.handover)
    ho.add_argument("ike_id", type=int)
    ho.add_argument("--local", help="new local address")
    ho.add_argument("--remote", help="new remote address")
    ho.add_argument("--mode", default="auto", choices=("auto", "mobike", "kbit"),
                    help="mobike: UPDATE_SA_ADDRESSES; kbit: move here only (RFC 4877 K "
                         "bit); auto (default): mobike when negotiated, else kbit")
    ho.add_argument("--no-wait", action="store_true", help="do not wait for the MOBIKE answer")
    lk = cmd("lookup", "which CHILD_SA and SPI protect a packet", api.lookup)
    lk.add_argument("--src")
    lk.add_argument("--dst")
    lk.add_argument("--protocol")
    lk.add_argument("--mh-type", type=int)
    lk.add_argument("--icmp-type", type=int)
    lk.add_argument("--src-port", type=int)
    lk.add_argument("--dst-port", type=int)
    lk.add_argument("--json", action="store_true")
    wa = cmd("watch", "print events as they happen", api.watch)
    wa.add_argument("--type", action="append", dest="types", metavar="TYPE",
                    help="only events of this type (repeatable): ike-up, ike-down, "
                         "ike-failed, ike-rekey, ike-update, ike-update-failed, ike-alive, "
                         "child-up, child-down, child-failed, child-rekey")
    wa.add_argument("--count", type=int, help="stop after this many events")
    wa.add_argument("--duration", type=float, help="stop after this many seconds")
    wa.add_argument("--json", action="store_true", help="one JSON object per line")
    pr = sub.add_parser("proposals", help="algorithm keywords for ike_/esp_proposals")
    which = pr.add_mutually_exclusive_group()
    which.add_argument("--ike", action="store_true", help="only those usable for IKE")
    which.add_argument("--esp", action="store_true", help="only those usable for ESP")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=_proposals)
    bi = sub.add_parser("bindings", help="the Mobile IPv6 binding cache (home agent) or "
                        "binding update list (mobile node) of ikev2-mip6, from its status file")
    bi.add_argument("--status", metavar="FILE", help="the agent's status_file (default "
                    "/run/ikev2d/bindings.json, else /run/ikev2d/mip6-mn.json)")
    bi.add_argument("--json", action="store_true", help="print the status document")
    bi.set_defaults(func=_bindings)
    return p


def _bindings(args: argparse.Namespace) -> int:
    from mobility.status import bindings_command

    return bindings_command(args.status, args.json)


def main(argv: Sequence[str] | None = None) -> int:
    from api.commands import UsageError

    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `ikev2ctl ... | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
