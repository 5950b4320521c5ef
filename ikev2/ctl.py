"""`ikev2ctl`: inspect a running ikev2d.

    ikev2ctl list-sas --state-file FILE [--json]
    ikev2ctl proposals [--ike | --esp] [--json]

Exit codes: 0 ok, 1 failed (e.g. no state file), 2 usage.
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


def _list_sas(args: argparse.Namespace) -> int:
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Inspect a running ikev2d.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ls = sub.add_parser("list-sas", help="IKE and CHILD SAs from the daemon's state file")
    ls.add_argument("--state-file", required=True,
                    help="the daemon's daemon.state_file (JSON snapshot)")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=_list_sas)
    pr = sub.add_parser("proposals", help="algorithm keywords for ike_/esp_proposals")
    which = pr.add_mutually_exclusive_group()
    which.add_argument("--ike", action="store_true", help="only those usable for IKE")
    which.add_argument("--esp", action="store_true", help="only those usable for ESP")
    pr.add_argument("--json", action="store_true")
    pr.set_defaults(func=_proposals)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `ikev2ctl ... | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
