"""A Mobile IPv6 handover testbed in two network namespaces: ikev2d (memory kernel unless
asked for "xfrm", API on a UNIX socket) and an `ikev2-mip6` agent on each side. Used by
tests/mobility/test_e2e_netns.py, bench/mip6_handover.py and, with kernel = "xfrm" and a
correspondent node, the qemu guest check mip6_kbit_handover_xfrm_ping
(tests/kernel/guest_checks.py); docs/mobility.md "Handover testbed walkthrough" builds the
same by hand.

    mip-mn                                            mip-ha
    mnA  CoA1 2001:db8:a::10/64 (fe80::a) ── haA 2001:db8:a::1/64 fe80::1
    mnB  CoA2 2001:db8:b::10/64 (fe80::b) ── haB 2001:db8:b::1/64 fe80::1
    lo   2001:db8:c::66/128 (a spare       lo   HA 2001:db8:1::1/128 (home prefix
         source for crafted BUs)                2001:db8:1::/64; HoA 2001:db8:1::100 of
                                                user@example.org, 2001:db8:1::200 of
                                                bob@example.org)
    routes: 2001:db8:1::/64 via fe80::1 dev mnA (metric 100) and dev mnB (metric 200);
            on the HA 2001:db8:c::/64 via fe80::a dev haA

Both ikev2d hand out CHILD_SA keys on their API socket (`api.child_sa_keys`), so the
agents protect BU/BA with ESP (RFC 5555 §4.1, mobility/protection.py); `CraftedBus` makes
protected BUs of its own with the MN's BU/BA SA while the MN agent is stopped.

Every namespace lives in a private mount namespace (tests/interop/harness.Sandbox), so
parallel runs do not see each other; every process is started here and stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.client import ApiClient
from mobility.esp import EspReceiver, EspSender
from mobility.layout import MobilityConfig, Role, connection_toml, home_agent_toml
from mobility.mh import BindingAck, BindingUpdate, build_mh, parse_mh
from mobility.protection import BuSa
from mobility.status import read_events, read_status
from mobility.transport import decapsulate, encapsulate, inner_header, inner_packet, v6
from tests.daemon.helpers import REPO, env
from tests.interop.harness import NetnsBed, stop_pid, track
from tests.kernel.netns import entered

NS_MN, NS_HA = "mip-mn", "mip-ha"
HA, HOA, HOA_B = "2001:db8:1::1", "2001:db8:1::100", "2001:db8:1::200"
HA_A, HA_B = "2001:db8:a::1", "2001:db8:b::1"
COA1, COA2, SPARE = "2001:db8:a::10", "2001:db8:b::10", "2001:db8:c::66"
LINK = {COA1: "mnA", COA2: "mnB"}
ID_MN, ID_B, ID_HA = "user@example.org", "bob@example.org", "ha.example.org"
PSK = "mip6 testbed psk, not a secret"
PORT = 4191
CHILDREN = 4  # mn1-bu, mn1-mpd, mn1-hoti, mn1-payload
WAIT = 15.0


class MipNet(NetnsBed):
    """The two namespaces above, in a sandbox."""

    def commands(self) -> list[str]:
        """The shell commands that build them, in order (subclasses add theirs)."""
        out = []
        for ns in (NS_MN, NS_HA):
            out += [f"ip netns add {ns}",
                    f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.accept_dad=0 "
                    "net.ipv6.conf.default.accept_dad=0",
                    f"ip -n {ns} link set lo up"]
        out += [f"ip link add {m} netns {NS_MN} type veth peer name {h} netns {NS_HA}"
                for m, h in (("mnA", "haA"), ("mnB", "haB"))]
        out += [f"ip -n {NS_HA} addr add {HA}/128 dev lo",
                f"ip -n {NS_HA} addr add {HA_A}/64 dev haA nodad",
                f"ip -n {NS_HA} addr add {HA_B}/64 dev haB nodad",
                f"ip -n {NS_HA} addr add fe80::1/64 dev haA nodad",
                f"ip -n {NS_HA} addr add fe80::1/64 dev haB nodad",
                f"ip -n {NS_MN} addr add fe80::a/64 dev mnA nodad",
                f"ip -n {NS_MN} addr add fe80::b/64 dev mnB nodad",
                f"ip -n {NS_MN} addr add {SPARE}/128 dev lo",
                f"ip -n {NS_MN} addr add {COA1}/64 dev mnA nodad"]
        out += [f"ip -n {ns} link set {link} up"
                for ns, links in ((NS_MN, ("mnA", "mnB")), (NS_HA, ("haA", "haB")))
                for link in links]
        out += [f"ip -n {NS_MN} -6 route add 2001:db8:1::/64 via fe80::1 dev mnA metric 100",
                f"ip -n {NS_MN} -6 route add 2001:db8:1::/64 via fe80::1 dev mnB metric 200",
                f"ip -n {NS_HA} -6 route add 2001:db8:c::/64 via fe80::a dev haA"]
        return out

    def _build(self) -> None:
        # one shell in the sandbox, not a process start per command (they cost ~0.4 s each
        # in the qemu guest of tests/kernel/guest_checks.py)
        self.sb.run(["sh", "-ec", "\n".join(self.commands())])

    def close(self) -> None:
        self.sb.close()


# --- configs -----------------------------------------------------------------------------------
def mobility_configs(dpd_delay: str | None = "1s") -> tuple[MobilityConfig, MobilityConfig]:
    """The RFC 4877 layout: BU/BA and MPS/MPA (transport, HoA-bound), HoTI/HoT and the
    payload (tunnel); mn2 without the payload child."""
    mn1 = MobilityConfig(name="mn1", ha_address=HA, identity=ID_MN, ha_identity=ID_HA,
                         psk=PSK, home_address=HOA, dpd_delay=dpd_delay)
    mn2 = MobilityConfig(name="mn2", ha_address=HA, identity=ID_B, ha_identity=ID_HA,
                         psk=PSK, home_address=HOA_B, payload=False)
    return mn1, mn2


def daemon_toml(work: Path, name: str, connections: str, log_level: str,
                kernel: str = "memory") -> str:
    return f"""\
[daemon]
listen = ["::"]
kernel = "{kernel}"
log_level = "{log_level}"
state_file = "{work / f"{name}-state.json"}"

[api]
listen = []
unix_socket = "{work / f"{name}-api.sock"}"
child_sa_keys = true

{connections}"""


def ha_agent_toml(work: Path) -> str:
    return f"""\
[home_agent]
address = "{HA}"
port = {PORT}
home_prefixes = ["2001:db8:1::/64"]
max_lifetime = 3600
status_file = "{work / "ha-bindings.json"}"
events_file = "{work / "ha-events.jsonl"}"

[[home_agent.mobile_nodes]]
name = "mn1"
identity = "{ID_MN}"
home_address = "{HOA}"

[[home_agent.mobile_nodes]]
name = "mn2"
identity = "{ID_B}"
home_address = "{HOA_B}"

[api]
socket = "{work / "ha-api.sock"}"
"""


def mn_agent_toml(work: Path, extra: str = "") -> str:
    return f"""\
[mobile_node]
connection = "mn1"
home_address = "{HOA}"
ha_address = "{HA}"
port = {PORT}
identity = "{ID_MN}"
lifetime = 600
status_file = "{work / "mn-status.json"}"
events_file = "{work / "mn-events.jsonl"}"
{extra}
[api]
socket = "{work / "mn-api.sock"}"
"""


# --- processes ---------------------------------------------------------------------------------
class Proc:
    """A process in a namespace of the sandbox, output to a log file, stopped by PID."""

    def __init__(self, net: MipNet, ns: str, work: Path, name: str, argv: list[str]) -> None:
        self.name = name
        self.log = work / f"{name}.log"
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(net.sb.netns(ns, argv), cwd=REPO, env=env(),
                                         stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT)
        track(self.proc.pid)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_pid(self.proc.pid, timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class Testbed:
    """Both daemons and both agents, started in order and waited for."""

    __test__ = False  # not a pytest class

    def __init__(self, net: MipNet, *, log_level: str = "debug", agent_log: str = "debug",
                 mn_extra: str = "", dpd_delay: str | None = "1s", kernel: str = "memory",
                 timeout: float = WAIT) -> None:
        self.net = net
        self.timeout = timeout  # the default of wait()
        # UNIX socket paths must stay short (108 octets): a directory of our own in /tmp
        self.work = Path(tempfile.mkdtemp(prefix="mip6-"))
        self.procs: list[Proc] = []
        w = self.work
        mn1, mn2 = mobility_configs(dpd_delay)
        (w / "ha.toml").write_text(daemon_toml(w, "ha", home_agent_toml([mn1, mn2]), log_level,
                                               kernel))
        (w / "mn.toml").write_text(daemon_toml(w, "mn", connection_toml(mn1, Role.MN),
                                               log_level, kernel))
        (w / "ha-agent.toml").write_text(ha_agent_toml(w))
        (w / "mn-agent.toml").write_text(mn_agent_toml(w, mn_extra))
        self.ha_api = ApiClient(unix_socket=str(w / "ha-api.sock"), timeout=15)
        self.mn_api = ApiClient(unix_socket=str(w / "mn-api.sock"), timeout=15)
        py = sys.executable
        try:
            self.ha = self._start(NS_HA, "ha-ikev2d",
                                  [py, "-m", "ikev2.daemon.main", "--config", str(w / "ha.toml")])
            self.wait(lambda: (w / "ha-api.sock").exists(), "the HA's API socket")
            self.ha_agent = self._start(NS_HA, "ha-agent", [
                py, "-m", "mobility.cli", "ha", "--config", str(w / "ha-agent.toml"),
                "--log-level", agent_log])
            self.wait(lambda: self.ha_status().get("listen", [None, 0])[1] == PORT,
                      "the home agent's socket")
            self.mn = self._start(NS_MN, "mn-ikev2d",
                                  [py, "-m", "ikev2.daemon.main", "--config", str(w / "mn.toml")])
            self.wait(lambda: (w / "mn-api.sock").exists(), "the MN's API socket")
            self.agent_log = agent_log
            self.start_mn_agent()
            self.wait(lambda: self.mn_status().get("state") == "registered"
                      and len(self.children(self.mn_api)) == CHILDREN
                      and len(self.children(self.ha_api)) == CHILDREN,
                      "the first registration and all CHILD_SAs")
        except BaseException:
            self.close(keep=True)
            print(f"testbed files kept in {self.work}")
            raise

    def start_mn_agent(self) -> None:
        """(Re)start the MN agent (its log and event file go on)."""
        self.mn_agent = self._start(NS_MN, "mn-agent", [
            sys.executable, "-m", "mobility.cli", "mn", "--config",
            str(self.work / "mn-agent.toml"), "--log-level", self.agent_log])

    def stop_mn_agent(self) -> None:
        self.mn_agent.stop()
        self.procs.remove(self.mn_agent)

    def _start(self, ns: str, name: str, argv: list[str]) -> Proc:
        p = Proc(self.net, ns, self.work, name, argv)
        self.procs.append(p)
        return p

    def close(self, keep: bool = False) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()
        if not keep and not os.environ.get("MIP6_KEEP"):
            shutil.rmtree(self.work, ignore_errors=True)

    # -- reading --------------------------------------------------------------------------------
    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.text()[-tail:]}" for p in self.procs)

    def wait(self, pred: Callable[[], object], what: str, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                value = pred()
                if value:
                    return value
            for p in self.procs:
                if not p.alive():
                    raise AssertionError(f"{p.name} exited ({p.proc.returncode}) waiting for "
                                         f"{what}\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}\n{self.logs()}")
            time.sleep(0.02)

    def ha_status(self) -> dict[str, Any]:
        try:
            return read_status(self.work / "ha-bindings.json")
        except (OSError, ValueError):
            return {}

    def mn_status(self) -> dict[str, Any]:
        try:
            return read_status(self.work / "mn-status.json")
        except (OSError, ValueError):
            return {}

    def mn_events(self) -> list[dict[str, Any]]:
        return read_events(self.work / "mn-events.jsonl")

    def ha_events(self) -> list[dict[str, Any]]:
        return read_events(self.work / "ha-events.jsonl")

    def ike(self, api: ApiClient) -> dict[str, Any]:
        sas = [s for s in api.list_ike_sas(state="ESTABLISHED")
               if s["name"] == "mn1"]
        assert len(sas) == 1, f"expected one IKE SA of mn1, got {sas}"
        return sas[0]

    def children(self, api: ApiClient) -> dict[str, dict[str, Any]]:
        """The INSTALLED CHILD_SAs of the mn1 IKE SA by name, from the API's detail view,
        with their outer addresses (`outer`: its local-host, remote-host)."""
        out = {}
        for c in self.ike(api)["child-sas"]:
            if c["state"] != "INSTALLED":
                continue
            view = api.child_sa(c["uniqueid"])
            view["outer"] = (view["local-host"], view["remote-host"])
            out[c["name"]] = view
        return out

    # -- moving ---------------------------------------------------------------------------------
    def move(self, old: str, new: str) -> None:
        """Remove the old CoA, add the new one (each on its own link), in one `ip -batch`
        (the two are microseconds apart, not a process start)."""
        batch = self.work / "move.ip"
        batch.write_text(f"addr del {old}/64 dev {LINK[old]}\n"
                         f"addr add {new}/64 dev {LINK[new]} nodad\n")
        self.net.ip(NS_MN, "-batch", str(batch))


# --- crafted Binding Updates ------------------------------------------------------------------
def exchange(net: MipNet, source: str, data: bytes, timeout: float = 3.0) -> bytes | None:
    """One datagram from `source` in the MN namespace to the HA's port; the answer, or
    None when none comes within `timeout`."""
    with entered(net.path(NS_MN)):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.sendto(data, (HA, PORT))
        try:
            return s.recvfrom(4096)[0]
        except TimeoutError:
            return None
    finally:
        s.close()


def send_bu(net: MipNet, source: str, hoa: str, bu: BindingUpdate,
            timeout: float = 3.0) -> BindingAck | None:
    """One unprotected BU from `source` (MH over UDP, RFC 5555 §4.1): its BA, or None."""
    data = exchange(net, source, encapsulate(bu, src=hoa, dst=HA), timeout)
    if data is None:
        return None
    msg = decapsulate(data).msg
    assert isinstance(msg, BindingAck), f"expected a BA, got {msg}"
    return msg


class CraftedBus:
    """BUs ESP-protected with the MN's BU/BA CHILD_SA, its keys from the MN daemon's API,
    as the MN agent would send them; sequence numbers from `seq` on (the agent's last: it
    must be stopped meanwhile, they share the SA). BAs are opened with the inbound SA."""

    def __init__(self, net: MipNet, api: ApiClient, child_id: int, seq: int) -> None:
        self.net = net
        self.sa = BuSa.from_api(api.child_keys(child_id))
        self.sender = EspSender(self.sa.transform, self.sa.outbound, seq=seq)
        self.receiver = EspReceiver(self.sa.transform, self.sa.inbound)

    def datagram(self, hoa: str, bu: BindingUpdate) -> bytes:
        src, dst = v6(hoa), v6(HA)
        return inner_packet(50, self.sender.seal(build_mh(bu, src=src, dst=dst), 135),
                            src=src, dst=dst)

    def send(self, source: str, data: bytes, timeout: float = 3.0) -> BindingAck | None:
        """`data` from `source`; the protected BA that answers it, or None."""
        answer = exchange(self.net, source, data, timeout)
        if answer is None:
            return None
        src, dst, nxt, rest = inner_header(answer)
        assert nxt == 50, "the HA answered a protected BU without ESP"
        opened = self.receiver.open(rest)
        msg = parse_mh(opened.payload, src=src, dst=dst)
        assert isinstance(msg, BindingAck), f"expected a BA, got {msg}"
        return msg

