"""The `ikev2ctl` commands that talk to the API (ikev2/ctl.py parses the command line)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from typing import Any

from api.client import ApiClient, ApiClientError
from ikev2.core.events import ChildSaInfo, IkeSaInfo

PROG = "ikev2ctl"
DEFAULT_CONFIG = "/etc/ikev2d/ikev2d.toml"
EXIT_OK, EXIT_FAILURE = 0, 1


class UsageError(Exception):
    """Bad command line found after parsing (exit code 2)."""


def client_for(args: argparse.Namespace) -> ApiClient:
    """--socket, --api (+ token), --config, the environment, or the default config."""
    timeout = max(30.0, args.timeout + 5)
    if args.socket:
        return ApiClient(unix_socket=args.socket, timeout=timeout)
    url = args.api or os.environ.get("IKEV2D_API")
    if url:
        token = args.token or os.environ.get("IKEV2D_TOKEN")
        if args.token_file:
            from api.auth import TokenError, read_token

            try:
                token = read_token(args.token_file)
            except TokenError as exc:
                raise UsageError(str(exc)) from None
        try:
            return ApiClient(url, token=token, timeout=timeout)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    config = args.config or (DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None)
    if config is None:
        raise UsageError("where is the daemon? give --state-file FILE (list-sas), --socket "
                         "PATH, --api URL [--token T], or --config FILE")
    from api.auth import TokenError
    from ikev2.errors import ConfigError

    try:
        return ApiClient.from_config(config, timeout=timeout)
    except (ConfigError, TokenError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _run(args: argparse.Namespace, fn: Any) -> int:
    client = client_for(args)
    try:
        return int(fn(client))
    except ApiClientError as exc:
        field = exc.problem.get("field")
        print(f"{PROG}: {exc}" + (f" [{field}]" if field and field not in str(exc) else ""),
              file=sys.stderr)
        return EXIT_FAILURE


def _settled(result: dict[str, Any], what: str, wait: bool) -> int:
    """Print a command's outcome; 1 when waited for but not settled."""
    outcome = result.get("outcome")
    if outcome == "pending":
        if wait:
            print(f"{PROG}: {what}: no outcome yet (still pending; poll {result.get('href')})",
                  file=sys.stderr)
            return EXIT_FAILURE
        print(f"{what}: accepted, uniqueid {result.get('uniqueid')}")
        return EXIT_OK
    event = result.get("event", {})
    reason = event.get("reason")
    print(f"{what}: {outcome}" + (f" ({reason})" if reason else "")
          + (f", uniqueid {result['uniqueid']}" if "uniqueid" in result else ""))
    return EXIT_OK


# --- list-sas ----------------------------------------------------------------------------
def _child_info(c: dict[str, Any]) -> ChildSaInfo:
    return ChildSaInfo(
        child_id=c["uniqueid"], name=c["name"], reqid=c["reqid"], protocol=c["protocol"].lower(),
        mode=c["mode"].lower(), spi_in=int(c["spi-in"], 16), spi_out=int(c["spi-out"], 16),
        suite=c["suite"], local_ts=tuple(c["local-ts"]), remote_ts=tuple(c["remote-ts"]),
        encap=c["encap"], state=c["state"], installed_at=c["install-at"] or 0.0,
        local=c.get("local-host", ""), remote=c.get("remote-host", ""),
    )


def ike_info(d: dict[str, Any]) -> IkeSaInfo:
    """An API IKE SA object as the core's snapshot type (for the shared table printer)."""
    return IkeSaInfo(
        ike_id=d["uniqueid"], name=d["name"], state=d["state"], initiator=d["initiator"],
        local=(d["local-host"], d["local-port"]), remote=(d["remote-host"], d["remote-port"]),
        local_id=d["local-id"], remote_id=d["remote-id"], spi_i=int(d["initiator-spi"], 16),
        spi_r=int(d["responder-spi"], 16), suite=d["suite"], nat_local=d["nat-local"],
        nat_remote=d["nat-remote"], encap=d["encap"], mobike=d["mobike"],
        established_at=d["established-at"],
        children=tuple(_child_info(c) for c in d["child-sas"]),
    )


def list_sas(args: argparse.Namespace) -> int:
    from ikev2.daemon.satable import format_sa_table

    def run(client: ApiClient) -> int:
        sas = client.list_ike_sas(connection=args.connection, state=args.state)
        if args.json:
            print(json.dumps(sas, indent=1))
        else:
            print(format_sa_table([ike_info(d) for d in sas]))
        return EXIT_OK

    return _run(args, run)


# --- connections -------------------------------------------------------------------------
def list_conns(args: argparse.Namespace) -> int:
    def run(client: ApiClient) -> int:
        conns = client.list_connections()
        if args.json:
            print(json.dumps(conns, indent=1))
            return EXIT_OK
        if not conns:
            print("no connections")
            return EXIT_OK
        rows = [["NAME", "LOCAL", "REMOTE", "LOCAL ID", "REMOTE ID", "CHILDREN", "IKE_SAS"]]
        for c in conns:
            rows.append([c["name"], ",".join(c["local-addrs"]), ",".join(c["remote-addrs"]),
                         c["local-id"] or "-", c["remote-id"] or "%any",
                         ",".join(ch["name"] for ch in c["children"]) or "-",
                         ",".join(str(i) for i in c["ike-sas"]) or "-"])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
        return EXIT_OK

    return _run(args, run)


def load_conn(args: argparse.Namespace) -> int:
    try:
        with open(args.file, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        print(f"{PROG}: {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{args.file}: not valid TOML: {exc}") from None
    conns = data.get("connections")
    if not isinstance(conns, dict) or not conns:
        raise UsageError(f"{args.file}: no [connections.NAME] tables")
    names = args.name or list(conns)
    missing = [n for n in names if n not in conns]
    if missing:
        raise UsageError(f"{args.file}: no connection {missing[0]!r}")

    def run(client: ApiClient) -> int:
        for name in names:
            try:
                client.load_connection(name, conns[name])
            except ApiClientError as exc:
                print(f"{PROG}: {args.file}: {name}: {exc}", file=sys.stderr)
                return EXIT_FAILURE
            print(f"loaded connection {name}")
        return EXIT_OK

    return _run(args, run)


def unload_conn(args: argparse.Namespace) -> int:
    def run(client: ApiClient) -> int:
        r = client.unload_connection(args.name, terminate=args.terminate)
        gone = ", ".join(str(i) for i in r["terminated"])
        print(f"unloaded connection {args.name}" + (f"; terminating {gone}" if gone else ""))
        return EXIT_OK

    return _run(args, run)


# --- commands ----------------------------------------------------------------------------
def initiate(args: argparse.Namespace) -> int:
    wait = not args.no_wait

    def run(client: ApiClient) -> int:
        try:
            r = client.initiate(args.name, local=args.local, wait=wait, timeout=args.timeout)
        except ApiClientError as exc:
            if exc.status == 502:
                print(f"{PROG}: {exc}", file=sys.stderr)
                return EXIT_FAILURE
            raise
        if r["outcome"] == "ike-up":
            sa = r["event"]["ike-sa"]
            print(f"IKE_SA {sa['name']}[{sa['uniqueid']}] established "
                  f"{sa['local-host']}-{sa['remote-host']}, "
                  f"{len(sa['child-sas'])} CHILD_SA(s)")
            return EXIT_OK
        return _settled(r, f"initiate {args.name}", wait)

    return _run(args, run)


def _target(args: argparse.Namespace) -> tuple[str, int]:
    if (args.ike_id is None) == (args.child is None):
        raise UsageError(f"{args.command}: give an IKE SA id or --child CHILD_ID (one of them)")
    return ("child", args.child) if args.child is not None else ("ike", args.ike_id)


def terminate(args: argparse.Namespace) -> int:
    kind, ident = _target(args)
    wait = not args.no_wait

    def run(client: ApiClient) -> int:
        if kind == "child":
            r = client.terminate_child(ident, wait=wait, timeout=args.timeout)
            return _settled(r, f"terminate CHILD_SA {ident}", wait)
        r = client.terminate_ike(ident, wait=wait, timeout=args.timeout)
        return _settled(r, f"terminate IKE_SA {ident}", wait)

    return _run(args, run)


def rekey(args: argparse.Namespace) -> int:
    kind, ident = _target(args)
    wait = not args.no_wait
    if kind == "child" and args.reauth:
        raise UsageError("rekey: --reauth applies to IKE SAs only")

    def run(client: ApiClient) -> int:
        if kind == "child":
            r = client.rekey_child(ident, wait=wait, timeout=args.timeout)
            return _settled(r, f"rekey CHILD_SA {ident}", wait)
        r = client.rekey_ike(ident, reauth=args.reauth, wait=wait, timeout=args.timeout)
        return _settled(r, f"{'reauth' if args.reauth else 'rekey'} IKE_SA {ident}", wait)

    return _run(args, run)


def handover(args: argparse.Namespace) -> int:
    if not args.local and not args.remote:
        raise UsageError("handover: give --local and/or --remote")

    def run(client: ApiClient) -> int:
        r = client.handover(args.ike_id, local=args.local, remote=args.remote, mode=args.mode,
                            wait=not args.no_wait, timeout=args.timeout)
        sa = r["ike-sa"]
        where = (f"{sa['local-host']}[{sa['local-port']}]-{sa['remote-host']}"
                 f"[{sa['remote-port']}]")
        name = f"IKE_SA {sa['name']}[{sa['uniqueid']}]"
        if r["mode"] == "none":
            print(f"{name} already at {where}")
        elif r["moved"]:
            print(f"{name} moved to {where} ({r['mode']})")
        else:
            print(f"{name}: {r['mode']} update under way, still at {where}")
            return EXIT_OK if args.no_wait else EXIT_FAILURE
        return EXIT_OK

    return _run(args, run)


def liveness(args: argparse.Namespace) -> int:
    """0 when the peer answered, 1 when it did not (in --timeout) or the SA is gone."""
    def run(client: ApiClient) -> int:
        r = client.liveness(args.ike_id, timeout=args.timeout)
        print(f"IKE_SA [{r['ike-sa']}]: the peer is alive (answered in {r['rtt-ms']:.1f} ms)")
        return EXIT_OK

    return _run(args, run)


def lookup(args: argparse.Namespace) -> int:
    def run(client: ApiClient) -> int:
        found = client.lookup(src=args.src, dst=args.dst, protocol=args.protocol,
                              mh_type=args.mh_type, icmp_type=args.icmp_type,
                              src_port=args.src_port, dst_port=args.dst_port)
        if args.json:
            print(json.dumps(found, indent=1))
        elif not found:
            print("no CHILD_SA carries that traffic")
        for m in found if not args.json else ():
            c = m["child-sa"]
            print(f"{m['direction']:3} SPI {m['spi']}  {c['name']}{{{c['uniqueid']}}} of "
                  f"IKE_SA {c['ike-sa']}  {' '.join(c['local-ts'])} === "
                  f"{' '.join(c['remote-ts'])}")
        return EXIT_OK if found else EXIT_FAILURE

    return _run(args, run)


def _event_line(e: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(e.get("time", time.time())))
    t = e["type"]
    sa = e.get("ike-sa")
    if isinstance(sa, dict):
        what = (f"{sa['name']}[{sa['uniqueid']}] {sa['local-host']}-{sa['remote-host']} "
                f"{sa['state']}")
        if "old-uniqueid" in e:
            what += f" (was [{e['old-uniqueid']}])"
        if "old-local-host" in e:
            what += f" (was {e['old-local-host']}-{e['old-remote-host']})"
    elif "child-sa" in e:
        c = e["child-sa"]
        what = (f"{c['name']}{{{c['uniqueid']}}} of IKE_SA {sa} SPIs {c['spi-in']}_i "
                f"{c['spi-out']}_o")
        if "old-uniqueid" in e:
            what += f" (was {{{e['old-uniqueid']}}})"
    elif t == "ike-alive":
        what = f"{e['name']}[{e['uniqueid']}] answered in {e['rtt-ms']:.1f} ms"
    else:
        ident = f"[{e['uniqueid']}]" if t.startswith("ike") else f"{{{e.get('uniqueid', '?')}}}"
        what = f"{e.get('name')}{ident}: {e.get('reason')}"
        if e.get("notify"):
            what += f" ({e['notify']})"
    return f"{stamp} {t:12} {what}"


def watch(args: argparse.Namespace) -> int:
    def run(client: ApiClient) -> int:
        for event in client.events(args.types, limit=args.count, duration=args.duration):
            print(json.dumps(event) if args.json else _event_line(event), flush=True)
        return EXIT_OK

    return _run(args, run)
