"""Shared pieces of the daemon tests: free ports, config text, in-process and subprocess
daemons, polling with a safety timeout (never a timing assertion)."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import ikev2
from ikev2.config.loader import load_config_text
from ikev2.core.events import IkeSaInfo
from ikev2.daemon.main import make_engine, make_kernel
from ikev2.daemon.runner import Daemon
from ikev2.daemon.statefile import StateFileError, read_state

REPO = Path(ikev2.__file__).resolve().parent.parent
PSK = "ikev2d daemon test psk, not a secret"
ID_I, ID_R = "user@example.org", "gw.example.org"
TS_I, TS_R = "198.51.100.1/32", "203.0.113.1/32"
WAIT = 10.0  # safety limit for anything to happen; tests normally finish far sooner
PORT_RANGE = (15000, 17999)


def _bindable(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def free_ports(addresses: Iterable[str], count: int = 2) -> list[int]:
    """`count` consecutive UDP ports free on every address, from a random high base (other
    engineers and parallel runs use this range too)."""
    addrs = list(addresses)
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(PORT_RANGE[0], PORT_RANGE[1] - count)
        ports = list(range(base, base + count))
        if all(_bindable(a, p) for a in addrs for p in ports):
            return ports
    raise RuntimeError(f"no {count} free UDP ports on {addrs}")


@dataclass(frozen=True, slots=True)
class Side:
    """One daemon of a pair."""

    address: str
    ike_port: int
    natt_port: int
    local_id: str
    local_ts: str


def render(
    me: Side,
    peer: Side,
    *,
    initiate: bool,
    state_file: Path | None = None,
    mobike: bool = True,
    log_level: str = "info",
    conn_extra: str = "",
    child_extra: str = "",
) -> str:
    """A daemon config for `me` with one connection `pair` (child `net`) to `peer`;
    `conn_extra` / `child_extra` are TOML lines added to those sections."""
    state = f'state_file = "{state_file}"\n' if state_file else ""
    return f"""\
[daemon]
listen = ["{me.address}"]
ike_port = {me.ike_port}
natt_port = {me.natt_port}
kernel = "memory"
log_level = "{log_level}"
{state}
[connections.pair]
local_addrs = ["{me.address}"]
remote_addrs = ["{peer.address}"]
remote_port = {peer.ike_port}
mobike = {str(mobike).lower()}
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
psk = "{PSK}"
{conn_extra}
[connections.pair.local]
id = "{me.local_id}"

[connections.pair.remote]
id = "{peer.local_id}"

[connections.pair.children.net]
local_ts = ["{me.local_ts}"]
remote_ts = ["{peer.local_ts}"]
esp_proposals = ["aes128gcm16"]
start_action = "{"initiate" if initiate else "none"}"
{child_extra}"""


def v4_pair() -> tuple[Side, Side]:
    """Initiator on 127.0.0.1, responder on 127.0.0.2, the same free ports on both."""
    ike, natt = free_ports(("127.0.0.1", "127.0.0.2"))
    return (
        Side("127.0.0.1", ike, natt, ID_I, TS_I),
        Side("127.0.0.2", ike, natt, ID_R, TS_R),
    )


def v6_pair() -> tuple[Side, Side]:
    """Both on ::1 (the only IPv6 loopback address), on different ports."""
    a = free_ports(("::1",), 4)
    return Side("::1", a[0], a[1], ID_I, TS_I), Side("::1", a[2], a[3], ID_R, TS_R)


def established(sas: Iterable[IkeSaInfo] | None) -> IkeSaInfo | None:
    for sa in sas or ():
        if sa.state == "ESTABLISHED" and sa.children:
            return sa
    return None


# --- in-process ------------------------------------------------------------------------
def make_daemon(text: str, source: str = "<test>") -> Daemon:
    config = load_config_text(text, source)
    return Daemon(config, make_engine(config, make_kernel(config)))  # type: ignore[arg-type]


async def until(predicate: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Poll `predicate` on the running loop; fail (not a timing check) after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


# --- subprocesses ----------------------------------------------------------------------
def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), out.get("PYTHONPATH")) if p)
    out["PYTHONUNBUFFERED"] = "1"
    return out


def run_cli(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE args...` to completion (args[0] is the module)."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env(), capture_output=True, text=True,
        timeout=timeout, check=False,
    )


class DaemonProcess:
    """`python -m ikev2.daemon.main --config FILE`, log to a file, state file polled."""

    def __init__(self, workdir: Path, name: str, text: str | None = None,
                 *, config: Path | None = None, state: Path | None = None) -> None:
        self.name = name
        self.config = config or workdir / f"{name}.toml"
        self.state = state or workdir / f"{name}.json"
        self.log = workdir / f"{name}.log"
        if text is not None:
            self.config.write_text(text)
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ikev2.daemon.main", "--config", str(self.config)],
                cwd=REPO, env=env(), stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def sas(self) -> list[IkeSaInfo] | None:
        try:
            return read_state(self.state)[1]
        except StateFileError:
            return None

    def doc(self) -> dict[str, object]:
        return read_state(self.state)[0]

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[], object], what: str,
                 others: Iterable[DaemonProcess] = ()) -> None:
        deadline = time.monotonic() + WAIT
        while not predicate():
            for d in (self, *others):
                if d.proc.poll() is not None:
                    raise AssertionError(
                        f"{d.name} exited with {d.proc.returncode} while waiting for {what}:"
                        f"\n{d.text()}"
                    )
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}; log of {self.name}:\n"
                                     + self.text())
            time.sleep(0.02)

    def wait_running(self) -> None:
        """The state file exists once sockets are bound and signal handlers installed."""
        self.wait_for(lambda: self.sas() is not None, f"{self.name} to start")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} ignored {sig.name}:\n{self.text()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
