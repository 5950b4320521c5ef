"""The agents' status files and event logs, and `ikev2ctl bindings`.

Status file: one JSON document, rewritten atomically (temp file + rename) after every
change, like ikev2d's state file. The home agent's holds its binding cache:

    {"version": 1, "role": "ha", "pid": 4242, "running": true, "written_at": 1715000000.5,
     "address": "2001:db8:1::1", "listen": ["::", 4191],
     "stats": {"received": 12, "answered": 12, "dropped": 0, "binding_errors": 0,
               "protected": 12},
     "esp": {"require": true, "received": 12, "sent": 12, "dropped": {"replay": 1},
             "sas": {"2001:db8:1::100": [{"child_sa": 5, "name": "mn1-bu",
                     "state": "INSTALLED", "spi_in": "c13dfc0c", "spi_out": "e6058a00",
                     "algorithms": "aes128gcm16", "seq_out": 12, "seq_in": 12,
                     "inherited": false}]}},
     "bindings": [{"hoa": "2001:db8:1::100", "identity": "mn1@example.org",
                   "last_seq": 7, "primary": "2001:db8:b::10",
                   "coas": [{"coa": "2001:db8:b::10", "bid": 0, "seq": 7, "k": true,
                             "lifetime": 600, "registered_at": ..., "expires_at": ...}]}],
     "recent": [{"time": ..., "hoa": ..., "source": ..., "seq": 7, "status": 0,
                 "status_name": "ACCEPTED", "reason": "registered", "k": true,
                 "moved": [1], "dropped": [], "esp": "e6058a00"}, ...]}

the mobile node's its Binding Update List entry (`"role": "mn"`, `hoa`, `ha`, `coa`,
`state`, `seq`, `k_agreed`, `last_ba` (with `esp`: it came protected), `ike_sa`, `esp`
(`protect`, `last_bu`, `received`, `sent`, `dropped`, `sas`), `recent`). ESP drops by
reason: truncated, unknown-spi, icv, replay, padding, policy, unprotected, inherited,
no-keys (mobility/errors.py). Times are UNIX times.

Event log (`events_file`, optional): one JSON object per line, `{"t": <CLOCK_MONOTONIC>,
"event": ..., ...}`; the clock is the same in every process of the host, so a bench can
compare the agents' moments with its own (bench/mip6_handover.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ikev2.daemon.statefile import write_text_atomic
from mobility.agent_config import DEFAULT_HA_STATUS, DEFAULT_MN_STATUS
from mobility.registry import BaStatus

VERSION = 1


def write_json_atomic(path: str | Path, doc: dict[str, Any]) -> None:
    """Write `doc` to `path` so readers see the old or the new file, never half of one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(p, json.dumps(doc, indent=1) + "\n")


def read_status(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("role") not in ("ha", "mn"):
        raise ValueError(f"{path}: not an ikev2-mip6 status file")
    return doc


class EventLog:
    """Append-only JSON lines with CLOCK_MONOTONIC times; a no-op without a path."""

    def __init__(self, path: str | None) -> None:
        self._f: TextIO | None = open(path, "a", buffering=1) if path else None  # noqa: SIM115

    def __call__(self, event: str, **fields: Any) -> float:
        t = time.monotonic()
        if self._f is not None:
            self._f.write(json.dumps({"t": t, "event": event, **fields}) + "\n")
        return t

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class Debounced:
    """Call `action` once, `delay` seconds after the first of any number of calls (the
    status file after dropped packets: not one write per packet)."""

    def __init__(self, action: Callable[[], None], delay: float = 1.0) -> None:
        self.action = action
        self.delay = delay
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.action()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def read_events(path: str | Path) -> list[dict[str, Any]]:
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    with contextlib.suppress(ValueError):
                        out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out


def status_name(status: int) -> str:
    try:
        return BaStatus(status).name
    except ValueError:
        return str(status)


# --- ikev2ctl bindings -----------------------------------------------------------------------
def _left(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "-"
    left = expires_at - now
    return f"{left:.0f}s" if left > 0 else "expired"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def format_status(doc: dict[str, Any], now: float | None = None) -> str:
    """The status document as text: the binding cache (HA) or the BUL entry (MN)."""
    now = time.time() if now is None else now
    lines: list[str] = []
    running = "" if doc.get("running", True) else "  (stopped)"
    if doc["role"] == "ha":
        lines.append(f"home agent {doc.get('address')} (pid {doc.get('pid')}), MH over UDP on "
                     f"[{doc['listen'][0]}]:{doc['listen'][1]}{running}")
        rows = [["HoA", "identity", "seq", "CoA", "BID", "K", "primary", "expires"]]
        for entry in doc.get("bindings", []):
            for b in entry["coas"]:
                rows.append([entry["hoa"], entry.get("identity") or "-",
                             str(b["seq"]), b["coa"], str(b["bid"] or "-"),
                             "K" if b["k"] else "-",
                             "*" if b["coa"] == entry.get("primary") else "",
                             _left(b.get("expires_at"), now)])
        lines.append(_table(rows) if len(rows) > 1 else "no bindings")
        stats = doc.get("stats") or {}
        if stats:
            lines.append(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items()))
        esp = doc.get("esp")
        if esp:
            lines.append(f"ESP {'required' if esp.get('require') else 'optional'}: "
                         f"{_esp_counts(esp)}")
    else:
        lines.append(f"mobile node {doc.get('hoa')} -> home agent {doc.get('ha')} "
                     f"(pid {doc.get('pid')}){running}")
        ba = doc.get("last_ba") or {}
        ike = doc.get("ike_sa") or {}
        rows = [
            ["state", str(doc.get("state"))],
            ["care-of address", str(doc.get("coa") or "-")],
            ["sequence", str(doc.get("seq"))],
            ["K agreed", "yes" if doc.get("k_agreed") else "no"],
            ["last BA", f"{status_name(ba['status'])} seq {ba['seq']} lifetime "
                        f"{ba['lifetime']}s{' K' if ba.get('k') else ''}" if ba else "-"],
            ["expires", _left(doc.get("expires_at"), now)],
            ["IKE SA", f"#{ike.get('uniqueid')} {ike.get('local-host')} <-> "
                       f"{ike.get('remote-host')}" if ike else "-"],
            ["ESP", _mn_esp(doc.get("esp"))],
        ]
        lines.append(_table(rows))
    recent = doc.get("recent") or []
    if recent:
        lines.append("recent:")
        for r in recent[-8:]:
            when = time.strftime("%H:%M:%S", time.localtime(r.get("time", now)))
            lines.append(f"  {when} {r.get('summary') or _summary(r)}")
    return "\n".join(lines)


def _esp_counts(esp: dict[str, Any]) -> str:
    dropped = esp.get("dropped") or {}
    return (f"{esp.get('received', 0)} received, {esp.get('sent', 0)} sent, dropped "
            + (", ".join(f"{k} {v}" for k, v in sorted(dropped.items())) or "none"))


def _mn_esp(esp: dict[str, Any] | None) -> str:
    if not esp:
        return "-"
    if not esp.get("protect"):
        return "off (protect = false)"
    sas = [f"SPI {x['spi_out']} seq {x['seq_out']}" for x in esp.get("sas") or ()
           if not x.get("inherited")]
    last = "last BU protected" if esp.get("last_bu") else "last BU unprotected"
    return f"{'; '.join(sas) or 'no BU/BA SA'}; {last}; {_esp_counts(esp)}"


def _summary(r: dict[str, Any]) -> str:
    esp = f" ESP {r['esp']}" if r.get("esp") else ""
    parts = [f"BU seq {r.get('seq')} {r.get('hoa')} from {r.get('source')}{esp}:",
             f"{r.get('status_name')}"]
    if r.get("reason"):
        parts.append(f"({r['reason']})")
    if r.get("moved"):
        parts.append(f"moved IKE SA {', '.join(f'#{i}' for i in r['moved'])}")
    return " ".join(parts)


def bindings_command(path: str | None, as_json: bool, out: TextIO | None = None) -> int:
    """`ikev2ctl bindings`: 0 printed, 1 no readable status file."""
    out = out or sys.stdout
    candidates = [path] if path else [DEFAULT_HA_STATUS, DEFAULT_MN_STATUS]
    for p in candidates:
        if p and os.path.exists(p):
            try:
                doc = read_status(p)
            except (OSError, ValueError) as exc:
                print(f"ikev2ctl: {exc}", file=sys.stderr)
                return 1
            if as_json:
                print(json.dumps(doc, indent=1), file=out)
            else:
                print(format_status(doc), file=out)
            return 0
    print(f"ikev2ctl: no mobility status file ({' or '.join(c for c in candidates if c)}); "
          "is ikev2-mip6 running with status_file set? (--status FILE)", file=sys.stderr)
    return 1
