"""`ikev2d demo`: two real daemons on loopback establish an IKE SA and a CHILD_SA (PSK),
then both SA tables are printed and checked against each other.

Daemon A (127.0.0.1, ID user@example.org) initiates to daemon B (127.0.0.2, ID
gw.example.org); the tunnel child joins 198.51.100.1/32 and 203.0.113.1/32. Both use the
in-memory kernel, so no root is needed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ikev2.core.events import IkeSaInfo
from ikev2.daemon.satable import format_sa_table
from ikev2.daemon.statefile import StateFileError, read_state

PSK = "ikev2d demo psk, not a secret"
ID_A, ID_B = "user@example.org", "gw.example.org"
TS_A, TS_B = "198.51.100.1/32", "203.0.113.1/32"
STOP_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class Side:
    label: str
    address: str
    peer: str
    local_id: str
    remote_id: str
    local_ts: str
    remote_ts: str
    initiate: bool


def render_config(side: Side, ike_port: int, natt_port: int, state_file: Path,
                  log_level: str) -> str:
    start = "initiate" if side.initiate else "none"
    return f"""\
# ikev2d demo: daemon {side.label} (written by `ikev2d demo`)
[daemon]
listen = ["{side.address}"]
ike_port = {ike_port}
natt_port = {natt_port}
kernel = "memory"
log_level = "{log_level}"
state_file = "{state_file}"

[connections.demo]
local_addrs = ["{side.address}"]
remote_addrs = ["{side.peer}"]
remote_port = {ike_port}
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
psk = "{PSK}"

[connections.demo.local]
id = "{side.local_id}"

[connections.demo.remote]
id = "{side.remote_id}"

[connections.demo.children.net]
local_ts = ["{side.local_ts}"]
remote_ts = ["{side.remote_ts}"]
mode = "tunnel"
esp_proposals = ["aes128gcm16"]
start_action = "{start}"
"""


class DemoFailure(Exception):
    pass


@dataclass(slots=True)
class Running:
    side: Side
    config: Path
    state: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "    (no log)"
        return "\n".join("    " + line for line in text) or "    (log is empty)"

    def read(self) -> list[IkeSaInfo] | None:
        try:
            return read_state(self.state)[1]
        except StateFileError:
            return None


def _launch(side: Side, workdir: Path, ike_port: int, natt_port: int,
            log_level: str) -> Running:
    config = workdir / f"{side.label.lower()}.toml"
    state = workdir / f"{side.label.lower()}.sas.json"
    log = workdir / f"{side.label.lower()}.log"
    config.write_text(render_config(side, ike_port, natt_port, state, log_level))
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ikev2.daemon.main", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Running(side, config, state, log, proc)


def _wait(deadline: float, what: str, ready: callable, daemons: list[Running]) -> None:  # type: ignore[valid-type]
    while True:
        for d in daemons:
            code = d.proc.poll()
            if code is not None:
                raise DemoFailure(f"daemon {d.side.label} exited with code {code} while {what}")
        if ready():
            return
        if time.monotonic() >= deadline:
            raise DemoFailure(f"timed out {what}")
        time.sleep(0.05)


def _established(sas: list[IkeSaInfo] | None) -> IkeSaInfo | None:
    for sa in sas or ():
        if sa.state == "ESTABLISHED" and sa.children:
            return sa
    return None


def check_agreement(a: IkeSaInfo, b: IkeSaInfo) -> list[str]:
    """Everything that must mirror between the two sides; returns the mismatches."""
    problems = []

    def same(what: str, x: object, y: object) -> None:
        if x != y:
            problems.append(f"{what}: A has {x!r}, B has {y!r}")

    same("IKE SPI_i", a.spi_i, b.spi_i)
    same("IKE SPI_r", a.spi_r, b.spi_r)
    same("A local = B remote endpoint", tuple(a.local), tuple(b.remote))
    same("A remote = B local endpoint", tuple(a.remote), tuple(b.local))
    same("A local ID = B remote ID", a.local_id, b.remote_id)
    same("A remote ID = B local ID", a.remote_id, b.local_id)
    same("IKE suite", a.suite, b.suite)
    if a.initiator == b.initiator:
        problems.append("both sides claim the same role")
    ca, cb = a.children[0], b.children[0]
    same("A outbound SPI = B inbound SPI", ca.spi_out, cb.spi_in)
    same("A inbound SPI = B outbound SPI", ca.spi_in, cb.spi_out)
    same("A local TS = B remote TS", tuple(ca.local_ts), tuple(cb.remote_ts))
    same("A remote TS = B local TS", tuple(ca.remote_ts), tuple(cb.local_ts))
    same("CHILD suite", ca.suite, cb.suite)
    same("CHILD mode", ca.mode, cb.mode)
    return problems


def _stop(daemons: list[Running]) -> list[str]:
    problems = []
    for d in daemons:
        if d.proc.poll() is None:
            d.proc.send_signal(signal.SIGTERM)
    for d in daemons:
        try:
            code = d.proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()
            problems.append(f"daemon {d.side.label} ignored SIGTERM for {STOP_WAIT:.0f} s; killed")
            continue
        if code != 0:
            problems.append(f"daemon {d.side.label} exited with code {code} on SIGTERM")
    return problems


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="ikev2d-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    a = Side("A", args.addr_a, args.addr_b, ID_A, ID_B, TS_A, TS_B, initiate=True)
    b = Side("B", args.addr_b, args.addr_a, ID_B, ID_A, TS_B, TS_A, initiate=False)
    print(f"ikev2d demo: configs, logs and state files in {workdir}")
    daemons: list[Running] = []
    ok = False
    try:
        deadline = time.monotonic() + args.timeout
        rb = _launch(b, workdir, args.ike_port, args.natt_port, args.log_level)
        daemons.append(rb)
        print(f"  started daemon B (responder) pid {rb.proc.pid} on "
              f"{b.address}[{args.ike_port}], ID {b.local_id}")
        _wait(deadline, "waiting for daemon B to start", lambda: rb.read() is not None, daemons)
        ra = _launch(a, workdir, args.ike_port, args.natt_port, args.log_level)
        daemons.append(ra)
        print(f"  started daemon A (initiator) pid {ra.proc.pid} on "
              f"{a.address}[{args.ike_port}], ID {a.local_id}")
        _wait(deadline, "waiting for the IKE SA and CHILD_SA on both sides",
              lambda: bool(_established(ra.read()) and _established(rb.read())), daemons)
        sa_a, sa_b = _established(ra.read()), _established(rb.read())
        assert sa_a is not None and sa_b is not None
        for d, sa in ((ra, sa_a), (rb, sa_b)):
            print(f"\n== daemon {d.side.label} ({d.side.address}, pid {d.proc.pid}) ==")
            print(format_sa_table([sa]))
        problems = check_agreement(sa_a, sa_b)
        if problems:
            raise DemoFailure("the two sides disagree:\n  " + "\n  ".join(problems))
        print("\nOK: both sides agree on IKE SPIs, endpoints, identities, suites, "
              "CHILD_SA SPIs (A out = B in, A in = B out) and traffic selectors.")
        ok = True
        if args.keep:
            print(f"\n--keep: daemons left running (A pid {ra.proc.pid}, B pid {rb.proc.pid}).")
            print(f"  ikev2ctl list-sas --state-file {ra.state}")
            print(f"  stop them with: kill {ra.proc.pid} {rb.proc.pid}")
            return 0
        problems = _stop(daemons)
        if problems:
            ok = False
            raise DemoFailure("; ".join(problems))
        print("both daemons stopped cleanly (SIGTERM, exit 0)")
        return 0
    except DemoFailure as exc:
        print(f"\nikev2d demo FAILED: {exc}", file=sys.stderr)
        for d in daemons:
            print(f"--- daemon {d.side.label} log ({d.log}), last lines:", file=sys.stderr)
            print(d.log_tail(), file=sys.stderr)
        return 1
    finally:
        if not (ok and args.keep):
            for d in daemons:
                if d.proc.poll() is None:
                    d.proc.kill()
                    d.proc.wait()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ikev2d demo",
        description="Run two ikev2d daemons on loopback (memory kernel, PSK), let A "
                    "initiate to B, print and compare both SA tables, stop both.",
    )
    p.add_argument("--ike-port", type=int, default=15000, help="IKE port of both (15000)")
    p.add_argument("--natt-port", type=int, default=15001, help="NAT-T port of both (15001)")
    p.add_argument("--addr-a", default="127.0.0.1", help="daemon A address (127.0.0.1)")
    p.add_argument("--addr-b", default="127.0.0.2", help="daemon B address (127.0.0.2)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for both sides to establish (10)")
    p.add_argument("--dir", help="directory for configs, logs, state files (default: a new "
                                 "temp dir, kept for inspection)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--keep", action="store_true", help="leave both daemons running")
    return p


def main(argv: Sequence[str]) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    for flag, port in (("--ike-port", args.ike_port), ("--natt-port", args.natt_port)):
        if not 1024 <= port <= 65535:
            print(f"ikev2d demo: {flag} {port}: use a port 1024-65535", file=sys.stderr)
            return 2
    if args.ike_port == args.natt_port:
        print("ikev2d demo: --ike-port and --natt-port must differ", file=sys.stderr)
        return 2
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run(args)
