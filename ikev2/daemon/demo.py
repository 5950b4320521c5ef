"""`ikev2d demo`: two real daemons on loopback establish an IKE SA and a CHILD_SA (PSK),
then both SA tables are printed and checked against each other; then the tunnel is moved
with MOBIKE (RFC 4555) to another address of A and back, through A's REST API.

Daemon A (127.0.0.1, ID user@example.org) initiates to daemon B (127.0.0.2, ID
gw.example.org); the tunnel child joins 198.51.100.1/32 and 203.0.113.1/32. Both use the
in-memory kernel, so no root is needed. A also listens on 127.0.0.3 (a specific listen
address is one the daemon can send from) and B accepts A at either address
(`remote_addrs`, checked when B gets UPDATE_SA_ADDRESSES). Both serve the API on a UNIX
socket in the demo directory (no token needed there). The handover is
`POST /ike-sas/{id}/handover {"local": "127.0.0.3", "mode": "mobike"}` on A; the demo then
waits until both APIs report the new endpoint with the same IKE and CHILD_SA SPIs.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.client import ApiClient, ApiClientError
from ikev2.core.events import IkeSaInfo
from ikev2.daemon.eventlog import endpoint
from ikev2.daemon.satable import format_sa_table
from ikev2.daemon.statefile import StateFileError, read_state

PSK = "ikev2d demo psk, not a secret"
ID_A, ID_B = "user@example.org", "gw.example.org"
TS_A, TS_B = "198.51.100.1/32", "203.0.113.1/32"
STOP_WAIT = 5.0
API_TIMEOUT = 5.0  # one API request (the handover waits at most this long for the answer)
SUN_PATH_MAX = 107  # sockaddr_un.sun_path, less the terminating NUL


@dataclass(frozen=True, slots=True)
class Side:
    label: str
    addresses: tuple[str, ...]  # listen and local_addrs; the first is where it starts
    peers: tuple[str, ...]  # remote_addrs: the first is where A initiates to
    local_id: str
    remote_id: str
    local_ts: str
    remote_ts: str
    initiate: bool

    @property
    def address(self) -> str:
        return self.addresses[0]


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def render_config(side: Side, ike_port: int, natt_port: int, state_file: Path,
                  api_socket: Path, log_level: str) -> str:
    start = "initiate" if side.initiate else "none"
    return f"""\
# ikev2d demo: daemon {side.label} (written by `ikev2d demo`)
[daemon]
listen = {_toml_list(side.addresses)}
ike_port = {ike_port}
natt_port = {natt_port}
kernel = "memory"
log_level = "{log_level}"
state_file = "{state_file}"

[api]
listen = []                 # no TCP: only the UNIX socket, which needs no token
unix_socket = "{api_socket}"

[connections.demo]
local_addrs = {_toml_list(side.addresses)}
remote_addrs = {_toml_list(side.peers)}
remote_port = {ike_port}
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
psk = "{PSK}"
mobike = true               # the default; the handover below uses it

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
    api_socket: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return "    (no log)"
        return "\n".join("    " + line for line in text) or "    (log is empty)"

    def read(self) -> list[IkeSaInfo] | None:
        """The SAs in this daemon's state file; None until this very process wrote it (a
        file left by an earlier run in the same --dir does not count)."""
        try:
            doc, sas = read_state(self.state)
        except StateFileError:
            return None
        return sas if doc.get("pid") == self.proc.pid else None

    @property
    def api(self) -> ApiClient:
        return ApiClient(unix_socket=str(self.api_socket), timeout=API_TIMEOUT)


def _api_socket_dir(workdir: Path) -> Path:
    """The demo dir, unless a socket path there would be too long for sockaddr_un."""
    if len(os.fsencode(workdir / "a.api.sock")) <= SUN_PATH_MAX:
        return workdir
    return Path(tempfile.mkdtemp(prefix="ikev2d-demo-api-"))


def _launch(side: Side, workdir: Path, sockdir: Path, ike_port: int, natt_port: int,
            log_level: str) -> Running:
    name = side.label.lower()
    config = workdir / f"{name}.toml"
    state = workdir / f"{name}.sas.json"
    log = workdir / f"{name}.log"
    api_socket = sockdir / f"{name}.api.sock"
    config.write_text(render_config(side, ike_port, natt_port, state, api_socket, log_level))
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ikev2.daemon.main", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Running(side, config, state, log, api_socket, proc)


def _wait(deadline: float, what: str, ready: Callable[[], object],
          daemons: list[Running], interval: float = 0.05) -> None:
    while True:
        for d in daemons:
            code = d.proc.poll()
            if code is not None:
                raise DemoFailure(f"daemon {d.side.label} exited with code {code} while {what}")
        if ready():
            return
        if time.monotonic() >= deadline:
            raise DemoFailure(f"timed out {what}")
        time.sleep(interval)


def _api_up(d: Running) -> bool:
    try:
        d.api.health()
    except ApiClientError:
        return False
    return True


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


def check_moved_not_recreated(label: str, before: IkeSaInfo, after: IkeSaInfo) -> list[str]:
    """A move keeps the IKE SA and its CHILD_SAs: same ids, SPIs and traffic selectors."""
    problems = []

    def same(what: str, x: object, y: object) -> None:
        if x != y:
            problems.append(f"{label} {what}: {x!r} before the move, {y!r} after")

    same("IKE SA id", before.ike_id, after.ike_id)
    same("IKE SPI_i", before.spi_i, after.spi_i)
    same("IKE SPI_r", before.spi_r, after.spi_r)
    same("CHILD_SAs", [(c.child_id, c.spi_in, c.spi_out) for c in before.children],
         [(c.child_id, c.spi_in, c.spi_out) for c in after.children])
    return problems


def _api_view_matches(view: dict[str, Any], sa: IkeSaInfo, local: tuple[str, int],
                      remote: tuple[str, int]) -> bool:
    """An API IKE SA (docs/api.md names) at these endpoints with `sa`'s SPIs."""
    children = [(c["uniqueid"], c["spi-in"], c["spi-out"]) for c in view.get("child-sas", ())]
    return (view.get("state") == "ESTABLISHED"
            and (view["local-host"], view["local-port"]) == local
            and (view["remote-host"], view["remote-port"]) == remote
            and (view["initiator-spi"], view["responder-spi"])
            == (f"{sa.spi_i:016x}", f"{sa.spi_r:016x}")
            and children == [(c.child_id, f"{c.spi_in:08x}", f"{c.spi_out:08x}")
                             for c in sa.children])


def _print_tables(pairs: Sequence[tuple[Running, IkeSaInfo]]) -> None:
    for d, sa in pairs:
        where = sa.local[0]
        print(f"\n== daemon {d.side.label} ({where}, pid {d.proc.pid}) ==")
        print(format_sa_table([sa]))


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def handover(ra: Running, rb: Running, sa_a: IkeSaInfo, sa_b: IkeSaInfo, to: str,
             timeout: float, daemons: list[Running]) -> tuple[IkeSaInfo, IkeSaInfo, str]:
    """Move A's end of the IKE SA to `to` with MOBIKE through A's API; wait until both APIs
    (then both state files) show the new endpoint with the same SPIs. Returns the new
    state-file views and the "handover: ..." lines."""
    old_a = tuple(sa_a.local)
    new_a = (to, sa_a.local[1])  # MOBIKE keeps the (NAT-T) port
    b_end = tuple(sa_b.local)
    api_a, api_b = ra.api, rb.api
    deadline = time.monotonic() + timeout
    t0 = time.perf_counter()
    try:
        answer = api_a.handover(sa_a.ike_id, local=to, mode="mobike", wait=True,
                                timeout=min(timeout, API_TIMEOUT))
    except ApiClientError as exc:
        raise DemoFailure(f"POST /ike-sas/{sa_a.ike_id}/handover on A's API: {exc}") from None
    t_answer = time.perf_counter() - t0
    if answer.get("mode") != "mobike":
        raise DemoFailure(f"A's API answered mode {answer.get('mode')!r}, not 'mobike'")
    if not answer.get("moved"):
        try:
            now = api_a.ike_sa(sa_a.ike_id)
            at = f"; A's IKE SA is at {now['local-host']}[{now['local-port']}] now"
        except (ApiClientError, KeyError):
            at = ""
        raise DemoFailure(
            f"A's API did not report the move done within {min(timeout, API_TIMEOUT):g} s"
            f"{at} (was UPDATE_SA_ADDRESSES refused or not answered? see the logs)")

    # A's side: the answer carries A's IKE SA as the ike-update event left it
    views: dict[str, dict[str, Any]] = {"A": answer.get("ike-sa") or {}}

    def read(label: str, api: ApiClient, sa: IkeSaInfo) -> dict[str, Any]:
        try:
            views[label] = api.ike_sa(sa.ike_id)
        except ApiClientError as exc:
            raise DemoFailure(f"GET /ike-sas/{sa.ike_id} on {label}'s API: {exc}") from None
        return views[label]

    def waiting(what: str, ready: Callable[[], bool]) -> None:
        try:
            _wait(deadline, what, ready, daemons, interval=0.001)
        except DemoFailure as exc:
            seen = "; ".join(
                f"{k} {v.get('local-host')}[{v.get('local-port')}]-"
                f"{v.get('remote-host')}[{v.get('remote-port')}] SPIs "
                f"{v.get('initiator-spi')}/{v.get('responder-spi')}" for k, v in views.items())
            raise DemoFailure(f"{exc}; last seen: {seen}") from None

    if not _api_view_matches(views["A"], sa_a, new_a, b_end):
        waiting(f"waiting for A's API to show A at {endpoint(new_a)} with the same SPIs",
                lambda: _api_view_matches(read("A", api_a, sa_a), sa_a, new_a, b_end))
    waiting(f"waiting for B's API to show A at {endpoint(new_a)} with the same SPIs",
            lambda: _api_view_matches(read("B", api_b, sa_b), sa_b, b_end, new_a))
    t_both = time.perf_counter() - t0
    # and A read back (not only its answer): still there, same SPIs
    waiting(f"waiting for A's API to show A at {endpoint(new_a)} with the same SPIs",
            lambda: _api_view_matches(read("A", api_a, sa_a), sa_a, new_a, b_end))

    def state_files_moved() -> bool:
        a, b = _established(ra.read()), _established(rb.read())
        return bool(a and b and tuple(a.local) == new_a and tuple(b.remote) == new_a)

    _wait(deadline, f"waiting for both state files to show A at {endpoint(new_a)}",
          state_files_moved, daemons)
    new_sa_a, new_sa_b = _established(ra.read()), _established(rb.read())
    assert new_sa_a is not None and new_sa_b is not None
    problems = (check_agreement(new_sa_a, new_sa_b)
                + check_moved_not_recreated("A", sa_a, new_sa_a)
                + check_moved_not_recreated("B", sa_b, new_sa_b))
    if problems:
        raise DemoFailure("after the handover:\n  " + "\n  ".join(problems))
    child = sa_a.children[0]
    line = (f"handover: A {endpoint(old_a)} -> {endpoint(new_a)} by MOBIKE in {_ms(t_both)} "
            "(from the API call until both sides report the new endpoint)\n"
            f"  A's API answered \"moved\" after {_ms(t_answer)} (UPDATE_SA_ADDRESSES sent "
            f"and answered), B's API showed A at {endpoint(new_a)} "
            f"{_ms(t_both - t_answer)} later\n"
            f"  same IKE SPIs {sa_a.spi_i:016x}/{sa_a.spi_r:016x}, same CHILD_SA SPIs "
            f"{child.spi_in:08x}/{child.spi_out:08x}: moved, not re-created")
    return new_sa_a, new_sa_b, line


def run(args: argparse.Namespace) -> int:
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="ikev2d-demo-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sockdir = _api_socket_dir(workdir)
    a_addrs = (args.addr_a, args.move_to) if args.handover else (args.addr_a,)
    a = Side("A", a_addrs, (args.addr_b,), ID_A, ID_B, TS_A, TS_B, initiate=True)
    b = Side("B", (args.addr_b,), a_addrs, ID_B, ID_A, TS_B, TS_A, initiate=False)
    if sockdir == workdir:
        print(f"ikev2d demo: configs, logs, state files and API sockets in {workdir}")
    else:
        print(f"ikev2d demo: configs, logs and state files in {workdir}; API sockets in "
              f"{sockdir} (a UNIX socket path in the first is too long)")
    daemons: list[Running] = []
    ok = False
    try:
        deadline = time.monotonic() + args.timeout
        rb = _launch(b, workdir, sockdir, args.ike_port, args.natt_port, args.log_level)
        daemons.append(rb)
        print(f"  started daemon B (responder) pid {rb.proc.pid} on "
              f"{b.address}[{args.ike_port}], ID {b.local_id}, API {rb.api_socket}")
        _wait(deadline, "waiting for daemon B to start", lambda: rb.read() is not None, daemons)
        ra = _launch(a, workdir, sockdir, args.ike_port, args.natt_port, args.log_level)
        daemons.append(ra)
        on = " and ".join(f"{x}[{args.ike_port}]" for x in a.addresses)
        print(f"  started daemon A (initiator) pid {ra.proc.pid} on {on}, ID {a.local_id}, "
              f"API {ra.api_socket}")
        _wait(deadline, "waiting for the IKE SA and CHILD_SA on both sides",
              lambda: bool(_established(ra.read()) and _established(rb.read())), daemons)
        sa_a, sa_b = _established(ra.read()), _established(rb.read())
        assert sa_a is not None and sa_b is not None
        _print_tables(((ra, sa_a), (rb, sa_b)))
        problems = check_agreement(sa_a, sa_b)
        if problems:
            raise DemoFailure("the two sides disagree:\n  " + "\n  ".join(problems))
        print("\nOK: both sides agree on IKE SPIs, endpoints, identities, suites, "
              "CHILD_SA SPIs (A out = B in, A in = B out) and traffic selectors.")

        if args.handover:
            _wait(deadline, "waiting for both APIs", lambda: _api_up(ra) and _api_up(rb),
                  daemons)
            print(f"\nNow the tunnel moves: A's address changes from {args.addr_a} to "
                  f"{args.move_to}, by MOBIKE (RFC 4555).\n  A's API: POST "
                  f"/ike-sas/{sa_a.ike_id}/handover "
                  f'{{"local": "{args.move_to}", "mode": "mobike"}}'
                  f"  (= ikev2ctl handover {sa_a.ike_id} --local {args.move_to} "
                  f"--mode mobike --socket {ra.api_socket})")
            moved_a, moved_b, line = handover(ra, rb, sa_a, sa_b, args.move_to,
                                              args.timeout, daemons)
            print(line)
            _print_tables(((ra, moved_a), (rb, moved_b)))
            print("\nOK: the same IKE SA and CHILD_SA (same SPIs, same ids) now run between "
                  f"{args.move_to} and {args.addr_b}; nothing was renegotiated.")
            print(f"\nAnd back to {args.addr_a}:")
            sa_a, sa_b, line = handover(ra, rb, moved_a, moved_b, args.addr_a,
                                        args.timeout, daemons)
            print(line)
            print(f"OK: A is at {endpoint(sa_a.local)} again, B sees it there, same SPIs.")
        ok = True
        if args.keep:
            print(f"\n--keep: daemons left running (A pid {ra.proc.pid}, B pid {rb.proc.pid}).")
            print(f"  ikev2ctl list-sas --socket {ra.api_socket}")
            print(f"  ikev2ctl list-sas --state-file {ra.state}")
            print(f"  stop them with: kill {ra.proc.pid} {rb.proc.pid}")
            return 0
        problems = _stop(daemons)
        if problems:
            ok = False
            raise DemoFailure("; ".join(problems))
        print("\nboth daemons stopped cleanly (SIGTERM, exit 0)")
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ikev2d demo",
        description="Run two ikev2d daemons on loopback (memory kernel, PSK), let A "
                    "initiate to B, print and compare both SA tables, move A to another "
                    "address with MOBIKE through its REST API and back, stop both.",
    )
    p.add_argument("--ike-port", type=int, default=15000, help="IKE port of both (15000)")
    p.add_argument("--natt-port", type=int, default=15001, help="NAT-T port of both (15001)")
    p.add_argument("--addr-a", default="127.0.0.1", help="daemon A address (127.0.0.1)")
    p.add_argument("--addr-b", default="127.0.0.2", help="daemon B address (127.0.0.2)")
    p.add_argument("--move-to", default="127.0.0.3",
                   help="A's second address, where the handover moves it (127.0.0.3)")
    p.add_argument("--no-handover", dest="handover", action="store_false",
                   help="only bring the tunnel up; do not move it")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for both sides to establish, and for each "
                        "handover (10)")
    p.add_argument("--dir", help="directory for configs, logs, state files, API sockets "
                                 "(default: a new temp dir, kept for inspection)")
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
    addrs = {}
    for flag, text in (("--addr-a", args.addr_a), ("--addr-b", args.addr_b),
                       ("--move-to", args.move_to)):
        try:
            addrs[flag] = ipaddress.ip_address(text)
        except ValueError:
            print(f"ikev2d demo: {flag} {text}: not an IP address", file=sys.stderr)
            return 2
    if len({a.version for a in addrs.values()}) > 1:
        print("ikev2d demo: --addr-a, --addr-b and --move-to must be of one address family",
              file=sys.stderr)
        return 2
    if len(set(addrs.values())) < (3 if args.handover else 2):
        print("ikev2d demo: --addr-a, --addr-b" + (" and --move-to" if args.handover else "")
              + " must differ", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print("ikev2d demo: --timeout must be more than 0", file=sys.stderr)
        return 2
    args.addr_a, args.addr_b, args.move_to = (str(addrs[f]) for f in
                                               ("--addr-a", "--addr-b", "--move-to"))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return run(args)
