"""MOBIKE (RFC 4555) between two ikev2d daemons in network namespaces: the address watcher
(ikev2/daemon/addresses.py) sees an address go and the initiator moves the IKE SA with
UPDATE_SA_ADDRESSES; the responder follows. Memory kernel (no ESP on this host). The
`root` tests need namespaces; the first tests check the watcher's address rules on
rtnetlink messages built here (no root).

Topology (namespaces in a private /run/netns, tests/interop/harness.Sandbox):

    mb-i  mi0 2001:db8:1::1/64 192.0.2.1/24 ── mr0 2001:db8:1::2/64 192.0.2.2/24  mb-r
          mi1 2001:db8:2::1/64              ── mr1 2001:db8:2::2/64
          (mb-i: 2001:db8:1::/64 also via 2001:db8:2::2 on mi1, metric 2048: the path
          that is left when mi0 goes down)

NAT: `test_nat_appears_and_goes` adds a third namespace mb-n that masquerades (iptables,
nft backend; scripts/setup-debian.sh installs the iptables package) on a second IPv4 path
(its topology is drawn above the test). NAT in and out of a move is also covered with two
engines in memory (tests/core/test_mobike.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ikev2.config.loader import load_config_text
from ikev2.core.events import IkeSaInfo, IkeSaUpdated
from ikev2.daemon import addresses
from ikev2.daemon.main import make_engine, make_kernel
from ikev2.daemon.runner import Daemon
from ikev2.daemon.statefile import StateFileError, read_state
from tests.daemon.helpers import REPO, WAIT, env
from tests.interop.harness import NetnsBed, stop_pid, track
from tests.kernel.netns import entered

NS_I, NS_R = "mb-i", "mb-r"
I6, I6B, I4 = "2001:db8:1::1", "2001:db8:1::11", "192.0.2.1"
R6, R4 = "2001:db8:1::2", "192.0.2.2"
I6L2, R6L2 = "2001:db8:2::1", "2001:db8:2::2"
ID_I, ID_R = "user@example.org", "gw.example.org"
TS_I, TS_R = "198.51.100.1/32", "203.0.113.1/32"
PSK = "ikev2d mobike netns test psk, not a secret"


# --- the address rules, on rtnetlink messages built with pyroute2 (no root) --------------
def _link(index: int, flags: int, name: str, *, delete: bool = False) -> Any:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["header"]["type"] = addresses.RTM_DELLINK if delete else addresses.RTM_NEWLINK
    msg["index"], msg["flags"] = index, flags
    msg["attrs"] = [("IFLA_IFNAME", name)]
    return msg


def _addr(index: int, address: str, *, scope: int = 0, flags: int = 0,
          delete: bool = False) -> Any:  # fmt: skip
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    msg = ifaddrmsg()
    msg["header"]["type"] = addresses.RTM_DELADDR if delete else addresses.RTM_NEWADDR
    msg["index"], msg["scope"], msg["flags"] = index, scope, flags & 0xFF
    msg["family"] = 10 if ":" in address else 2
    msg["attrs"] = [("IFA_ADDRESS", address), ("IFA_FLAGS", flags)]
    return msg


UP = addresses.IFF_UP | addresses.IFF_RUNNING
WILD = addresses.ListenPolicy.from_listen(["::", "0.0.0.0"])


def _table() -> addresses.AddressTable:
    t = addresses.AddressTable()
    t.apply(_link(1, UP | addresses.IFF_LOOPBACK, "lo"), dump=True)
    t.apply(_link(2, UP, "eth0"), dump=True)
    t.apply(_addr(1, "127.0.0.1", scope=254), dump=True)
    t.apply(_addr(1, "::1", scope=254), dump=True)
    t.apply(_addr(1, "2001:db8:a::1"), dump=True)  # an inner address on lo (peer.sh)
    t.apply(_addr(2, I6), dump=True)
    t.apply(_addr(2, I4), dump=True)
    t.apply(_addr(2, "fe80::1", scope=253), dump=True)
    return t


def test_usable_addresses_are_global_and_not_on_loopback() -> None:
    """Global scope only, nothing on lo (inner addresses live there), link-local out."""
    assert _table().usable(WILD) == (I6, I4)


def test_unusable_flags_and_newest_first() -> None:
    """Tentative / dadfailed / deprecated addresses do not count until the kernel says
    otherwise; an address that appears later goes first (the initiator takes the first of
    a family, 4555-03: a new network's address wins)."""
    t = _table()
    for flag in (addresses.IFA_F_TENTATIVE, addresses.IFA_F_DADFAILED,
                 addresses.IFA_F_DEPRECATED):  # fmt: skip
        t.apply(_addr(2, I6B, flags=flag))
        assert I6B not in t.usable(WILD)
    t.apply(_addr(2, I6B))  # DAD done
    assert t.usable(WILD) == (I6B, I6, I4)
    t.apply(_addr(2, I6, delete=True))
    assert t.usable(WILD) == (I6B, I4)


def test_link_down_drops_its_addresses() -> None:
    """RTM_NEWLINK without IFF_UP or without IFF_RUNNING (no carrier) drops every address
    of that link, IPv4 included; RTM_DELLINK forgets them."""
    t = _table()
    t.apply(_link(2, addresses.IFF_UP, "eth0"))  # carrier lost
    assert t.usable(WILD) == ()
    t.apply(_link(2, UP, "eth0"))
    assert t.usable(WILD) == (I6, I4)
    t.apply(_link(2, UP, "eth0", delete=True))
    assert t.usable(WILD) == () and not t.addrs.keys() - {(1, "127.0.0.1"), (1, "::1"),
                                                          (1, "2001:db8:a::1")}  # fmt: skip


def test_listen_policy() -> None:
    """Wildcards cover their family; specific listen addresses only themselves; loopback
    addresses count only when the daemon listens on loopback alone."""
    t = _table()
    assert t.usable(addresses.ListenPolicy.from_listen([I6])) == (I6,)
    assert t.usable(addresses.ListenPolicy.from_listen(["::"])) == (I6,)
    assert t.usable(addresses.ListenPolicy.from_listen(["127.0.0.1"])) == ("127.0.0.1",)
    loop = addresses.ListenPolicy.from_listen(["127.0.0.1", "::1"])
    assert t.usable(loop) == ("127.0.0.1", "::1")


def test_feed_never_passes_an_empty_set() -> None:
    """All addresses gone: the engine keeps the last set, so the next address that
    appears is a change it acts on (Engine.set_local_addresses treats a call after an
    empty set like its first call, which only records)."""

    class Engine:
        def __init__(self) -> None:
            self.calls: list[tuple[str, ...]] = []

        def set_local_addresses(self, addrs: tuple[str, ...], now: float) -> None:
            self.calls.append(tuple(addrs))

    class Stub:
        def __init__(self) -> None:
            self.engine = Engine()
            self.flushed = 0

        def clock(self) -> float:
            return 0.0

        def _after(self) -> None:
            self.flushed += 1

    d = Stub()
    addresses.feed(d, (I6,))  # type: ignore[arg-type]
    addresses.feed(d, ())  # type: ignore[arg-type]
    addresses.feed(d, (I6B,))  # type: ignore[arg-type]
    assert d.engine.calls == [(I6,), (I6B,)] and d.flushed == 2


# --- topology -----------------------------------------------------------------------------
class MobikeNet(NetnsBed):
    """The two namespaces above, in a sandbox."""

    def _build(self) -> None:
        run = self.sb.run
        for ns in (NS_I, NS_R):
            run(["ip", "netns", "add", ns])
            run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                 "net.ipv6.conf.default.accept_dad=0"])  # fmt: skip
            self.ip(ns, "link", "set", "lo", "up")
        for n in (0, 1):
            run(["ip", "link", "add", f"mi{n}", "netns", NS_I, "type", "veth", "peer", "name",
                 f"mr{n}", "netns", NS_R])  # fmt: skip
        self.ip(NS_I, "addr", "add", f"{I6}/64", "dev", "mi0", "nodad")
        self.ip(NS_I, "addr", "add", f"{I4}/24", "dev", "mi0")
        self.ip(NS_I, "addr", "add", f"{I6L2}/64", "dev", "mi1", "nodad")
        self.ip(NS_R, "addr", "add", f"{R6}/64", "dev", "mr0", "nodad")
        self.ip(NS_R, "addr", "add", f"{R4}/24", "dev", "mr0")
        self.ip(NS_R, "addr", "add", f"{R6L2}/64", "dev", "mr1", "nodad")
        # inner (tunnelled) addresses on lo, as peer.sh does: never MOBIKE candidates
        self.ip(NS_I, "addr", "add", TS_I, "dev", "lo")
        self.ip(NS_R, "addr", "add", TS_R, "dev", "lo")
        for ns, prefix in ((NS_I, "mi"), (NS_R, "mr")):
            for n in (0, 1):
                self.ip(ns, "link", "set", f"{prefix}{n}", "up")
        self.ip(NS_I, "-6", "route", "add", "2001:db8:1::/64", "via", R6L2, "dev", "mi1",
                "metric", "2048")  # fmt: skip

    def close(self) -> None:
        self.sb.close()


@pytest.fixture
def net() -> Iterator[MobikeNet]:
    n = MobikeNet()
    try:
        yield n
    finally:
        n.close()


def config(*, initiator: bool, remote: str, state_file: Path | None = None,
           log_level: str = "debug", conn_extra: str = "") -> str:  # fmt: skip
    """One connection `mob` (child `net`), listening on the wildcards (so any new address
    can be sent from). The responder accepts every address the initiator may move to."""
    me, peer = (ID_I, ID_R) if initiator else (ID_R, ID_I)
    lts, rts = (TS_I, TS_R) if initiator else (TS_R, TS_I)
    remotes = [remote] if initiator else [I6, I6B, I4, I6L2]
    state = f'state_file = "{state_file}"\n' if state_file else ""
    return f"""\
[daemon]
listen = ["::", "0.0.0.0"]
kernel = "memory"
log_level = "{log_level}"
{state}
[connections.mob]
remote_addrs = [{", ".join(f'"{a}"' for a in remotes)}]
mobike = true
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
psk = "{PSK}"
retransmit = {{ timeout = 1, tries = 3 }}
{conn_extra}
[connections.mob.local]
id = "{me}"

[connections.mob.remote]
id = "{peer}"

[connections.mob.children.net]
local_ts = ["{lts}"]
remote_ts = ["{rts}"]
esp_proposals = ["aes128gcm16"]
start_action = "{"initiate" if initiator else "none"}"
"""


# --- subprocess daemons -------------------------------------------------------------------
class NsDaemon:
    """`python -m ikev2.daemon.main --config` inside a namespace of the sandbox."""

    def __init__(self, net: MobikeNet, ns: str, workdir: Path, name: str, text: str) -> None:
        self.name = name
        self.config = workdir / f"{name}.toml"
        self.state = workdir / f"{name}.json"
        self.log = workdir / f"{name}.log"
        self.config.write_text(text.replace("[daemon]\n", f'[daemon]\nstate_file = '
                                            f'"{self.state}"\n', 1))  # fmt: skip
        argv = net.sb.netns(ns, [sys.executable, "-m", "ikev2.daemon.main", "--config",
                                 str(self.config)])  # fmt: skip
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env(), stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT)  # fmt: skip
        track(self.proc.pid)

    def sas(self) -> list[IkeSaInfo]:
        try:
            return read_state(self.state)[1]
        except StateFileError:
            return []

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_pid(self.proc.pid, timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def wait_for(what: str, predicate: Callable[[], object], *daemons: NsDaemon,
             timeout: float = WAIT) -> Any:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for d in daemons:
            if d.proc.poll() is not None:
                raise AssertionError(f"{d.name} exited ({d.proc.returncode}) waiting for "
                                     f"{what}:\n{d.text()[-4000:]}")  # fmt: skip
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {d.name}\n{d.text()[-4000:]}" for d in daemons)
            raise AssertionError(f"gave up waiting for {what}\n{logs}")
        time.sleep(0.02)


def only_sa(d: NsDaemon) -> IkeSaInfo | None:
    sas = [s for s in d.sas() if s.state == "ESTABLISHED" and s.children]
    return sas[0] if len(sas) == 1 else None


@pytest.fixture
def pair(net: MobikeNet, tmp_path: Path) -> Iterator[tuple[NsDaemon, NsDaemon]]:
    started: list[NsDaemon] = []
    try:
        r = NsDaemon(net, NS_R, tmp_path, "responder", config(initiator=False, remote="%any"))
        started.append(r)
        wait_for("the responder's state file", lambda: r.state.exists(), r)
        i = NsDaemon(net, NS_I, tmp_path, "initiator",
                     config(initiator=True, remote=R6, conn_extra='dpd_delay = "1s"'))
        started.append(i)
        wait_for("an IKE SA with its CHILD_SA on both sides",
                 lambda: only_sa(i) and only_sa(r), i, r)  # fmt: skip
        yield i, r
    finally:
        for d in started:
            d.stop()


def same_sa(before: IkeSaInfo, after: IkeSaInfo) -> None:
    """Moved, not re-created: the same IKE SPIs and the same CHILD_SA SPIs."""
    assert (after.spi_i, after.spi_r) == (before.spi_i, before.spi_r)
    assert [(c.spi_in, c.spi_out) for c in after.children] == [
        (c.spi_in, c.spi_out) for c in before.children
    ]


@pytest.mark.root
def test_address_removal_moves_the_sa_and_back(
    net: MobikeNet, pair: tuple[NsDaemon, NsDaemon]
) -> None:
    """4555-03/04/06: the initiator's address goes (`ip addr del`); it picks its other
    address of the family and sends UPDATE_SA_ADDRESSES; the responder takes the new
    address from the IP header. Both state files show the new endpoint with the same SPIs
    (4555-14: the CHILD_SAs move with it, not rekeyed). A DPD round trip then works on
    the new path (4555-16 context); moving back works the same way."""
    i, r = pair
    si, sr = only_sa(i), only_sa(r)
    assert si is not None and sr is not None
    assert si.mobike and sr.mobike
    assert tuple(si.local) == (I6, 4500) and tuple(sr.remote) == (I6, 4500)  # 4555-02
    assert (si.spi_i, si.spi_r) == (sr.spi_i, sr.spi_r)

    # a second address appears (the peer hears of it, 4555-08), then the first goes
    mark_i, mark_r = len(i.text()), len(r.text())
    net.ip(NS_I, "addr", "add", f"{I6B}/64", "dev", "mi0", "nodad")
    wait_for(f"{I6B} usable", lambda: f"new {I6B}" in i.text()[mark_i:], i)
    net.ip(NS_I, "addr", "del", f"{I6}/64", "dev", "mi0")

    def moved_to(addr: str) -> object:
        a, b = only_sa(i), only_sa(r)
        return a and b and a.local[0] == addr and b.remote[0] == addr and (a, b)

    ai, ar = wait_for(f"both sides on {I6B}", lambda: moved_to(I6B), i, r)
    same_sa(si, ai)
    same_sa(sr, ar)
    assert tuple(ai.remote) == (R6, 4500) and tuple(ar.local) == (R6, 4500)
    assert tuple(ar.remote) == (I6B, 4500)
    ilog, rlog = i.text()[mark_i:], r.text()[mark_r:]
    assert f"gone {I6}" in ilog
    assert f"MOBIKE update {I6B}[4500] -> {R6}[4500]" in ilog
    assert f"moved {I6}[4500]-{R6}[4500] -> {I6B}[4500]-{R6}[4500]" in ilog
    assert f"moved {R6}[4500]-{I6}[4500] -> {R6}[4500]-{I6B}[4500]" in rlog

    # DPD (dpd_delay 1 s on the initiator): a second probe is only sent once the first
    # was answered (liveness.check sends only with no request pending) - a round trip.
    mark_i = len(i.text())
    wait_for("two answered DPD probes from the new address",
             lambda: i.text()[mark_i:].count("checking liveness") >= 2, i, r)  # fmt: skip
    assert "retransmit" not in i.text()[mark_i:]
    assert only_sa(i) is not None and only_sa(r) is not None

    # back: the old address returns (the peer is sent the new list), the other one goes
    net.ip(NS_I, "addr", "add", f"{I6}/64", "dev", "mi0", "nodad")
    wait_for(f"{I6} usable again", lambda: f"new {I6}" in i.text()[mark_i:], i)
    net.ip(NS_I, "addr", "del", f"{I6B}/64", "dev", "mi0")
    bi, br = wait_for(f"both sides back on {I6}", lambda: moved_to(I6), i, r)
    same_sa(si, bi)
    same_sa(sr, br)
    logs = i.text() + r.text()
    assert "Traceback" not in logs and "ERROR" not in logs


# --- in-process daemons (kernel SAs visible) -----------------------------------------------
def make(text: str, ns_path: str) -> Daemon:
    config = load_config_text(text, "<mobike-netns>")
    d = Daemon(config, make_engine(config, make_kernel(config)))  # type: ignore[arg-type]
    with entered(ns_path):
        d.start()  # sockets and the netlink watcher are opened inside the namespace
    return d


def sa_of(d: Daemon) -> IkeSaInfo | None:
    sas = [s for s in d.engine.ike_sas() if s.state == "ESTABLISHED" and s.children]
    return sas[0] if len(sas) == 1 else None


def kernel_outer(d: Daemon) -> set[tuple[str, str]]:
    """(local, remote) outer addresses of every CHILD_SA in the memory kernel."""
    return {(s.local, s.remote) for s in d.engine.kernel.children.values()}  # type: ignore


async def until(what: str, predicate: Callable[[], object], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.005)
    return value


async def dpd_round_trip(d: Daemon, ike_id: int) -> None:
    """An empty INFORMATIONAL now (engine.check_liveness) and its answer."""
    before = d.received
    d.command(d.engine.check_liveness, ike_id)  # type: ignore[attr-defined]
    sa = d.engine.by_id[ike_id]  # type: ignore[attr-defined]
    await until("the DPD answer", lambda: d.received > before and sa.pending is None)


async def in_process_pair(net: MobikeNet, remote: str) -> tuple[Daemon, Daemon]:
    r = make(config(initiator=False, remote="%any", log_level="info"), net.path(NS_R))
    try:
        i = make(config(initiator=True, remote=remote, log_level="info"), net.path(NS_I))
    except BaseException:
        r.close()
        raise
    try:
        await until("both sides established", lambda: sa_of(i) and sa_of(r))
    except BaseException:
        i.close()
        r.close()
        raise
    return i, r


@pytest.mark.root
def test_kernel_sas_follow_link_down_and_api_move(net: MobikeNet) -> None:
    """In one process (so the memory kernels can be read): 4555-14 the CHILD_SAs' outer
    addresses follow the IKE SA on both sides; a link going down (RTM_NEWLINK without
    IFF_UP) drops its addresses and the initiator moves to the other link (4555-03/04);
    an explicit `update_addresses` (the API path) moves it too; each move keeps the SPIs
    and a DPD exchange works afterwards. The inner addresses on lo are never candidates."""

    async def main() -> None:
        i, r = await in_process_pair(net, R6)
        updates: list[IkeSaUpdated] = []
        i.listeners.append(lambda e: updates.append(e) if isinstance(e, IkeSaUpdated) else None)
        try:
            si = sa_of(i)
            assert si is not None
            watcher = i.address_watcher
            assert watcher is not None
            assert TS_I.split("/")[0] not in watcher.usable  # on lo: inner, not outer
            assert set(watcher.usable) == {I6, I4, I6L2}
            assert kernel_outer(i) == {(I6, R6)} and kernel_outer(r) == {(R6, I6)}

            # mi0 down: I6 and I4 go; the only IPv6 address left is on mi1
            await asyncio.to_thread(net.ip, NS_I, "link", "set", "mi0", "down")
            await until(f"the initiator on {I6L2}", lambda: updates and sa_of(r)
                        and sa_of(r).remote[0] == I6L2)  # type: ignore[union-attr]
            ai = sa_of(i)
            assert ai is not None and tuple(ai.local) == (I6L2, 4500)
            assert (ai.spi_i, ai.spi_r) == (si.spi_i, si.spi_r)
            assert kernel_outer(i) == {(I6L2, R6)} and kernel_outer(r) == {(R6, I6L2)}
            assert watcher.usable == (I6L2,)
            await dpd_round_trip(i, ai.ike_id)
            await dpd_round_trip(r, sa_of(r).ike_id)  # type: ignore[union-attr]

            # mi0 up again; then the API path: update_addresses to a chosen address
            await asyncio.to_thread(net.ip, NS_I, "link", "set", "mi0", "up")
            await until("mi0's IPv4 address usable again", lambda: I4 in watcher.usable)
            # the kernel flushed mi0's IPv6 addresses when it went down: add one back
            await asyncio.to_thread(net.ip, NS_I, "addr", "add", f"{I6B}/64", "dev", "mi0",
                                    "nodad")  # fmt: skip
            await until(f"{I6B} usable", lambda: I6B in watcher.usable)
            n = len(updates)
            i.update_addresses(ai.ike_id, local=I6B)
            await until(f"the API move to {I6B}", lambda: len(updates) > n and sa_of(r)
                        and sa_of(r).remote[0] == I6B)  # type: ignore[union-attr]
            assert kernel_outer(i) == {(I6B, R6)} and kernel_outer(r) == {(R6, I6B)}
            bi = sa_of(i)
            assert bi is not None and (bi.spi_i, bi.spi_r) == (si.spi_i, si.spi_r)
            await dpd_round_trip(i, bi.ike_id)
        finally:
            i.close()
            r.close()

    asyncio.run(main())


# --- behind a NAT and out again (iptables MASQUERADE in a middle namespace) -----------------
#
#   mb-i  mi0 192.0.2.1/24 ──────────────────────────────── mr0 192.0.2.2/24  mb-r
#         mn0 198.51.100.65/26 ── ni0 198.51.100.126/26  mb-n
#                                 nr0 203.0.113.129/25 ───── rn0 203.0.113.130/25
#   mb-n forwards and masquerades what leaves nr0 (UDP source ports -> 41000-41099);
#   mb-i reaches 192.0.2.0/24 through mb-n only while mi0 has no address (metric 2048).
NS_N = "mb-n"
I4_NAT, N4_IN, N4_OUT, R4_NAT = ("198.51.100.65", "198.51.100.126", "203.0.113.129",
                                 "203.0.113.130")  # fmt: skip
NAT_PORTS = range(41000, 41100)


def _build_nat(net: MobikeNet) -> None:
    run = net.sb.run
    run(["ip", "netns", "add", NS_N])
    net.ip(NS_N, "link", "set", "lo", "up")
    run(["ip", "link", "add", "mn0", "netns", NS_I, "type", "veth", "peer", "name", "ni0",
         "netns", NS_N])  # fmt: skip
    run(["ip", "link", "add", "nr0", "netns", NS_N, "type", "veth", "peer", "name", "rn0",
         "netns", NS_R])  # fmt: skip
    net.ip(NS_I, "addr", "add", f"{I4_NAT}/26", "dev", "mn0")
    net.ip(NS_N, "addr", "add", f"{N4_IN}/26", "dev", "ni0")
    net.ip(NS_N, "addr", "add", f"{N4_OUT}/25", "dev", "nr0")
    net.ip(NS_R, "addr", "add", f"{R4_NAT}/25", "dev", "rn0")
    for ns, dev in ((NS_I, "mn0"), (NS_N, "ni0"), (NS_N, "nr0"), (NS_R, "rn0")):
        net.ip(ns, "link", "set", dev, "up")
    net.ip(NS_I, "route", "add", "192.0.2.0/24", "via", N4_IN, "metric", "2048")
    net.ip(NS_N, "route", "add", "192.0.2.0/24", "via", R4_NAT)
    run(["ip", "netns", "exec", NS_N, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
    nat = ["ip", "netns", "exec", NS_N, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o",
           "nr0"]  # fmt: skip
    run([*nat, "-p", "udp", "-j", "MASQUERADE", "--to-ports",
         f"{NAT_PORTS.start}-{NAT_PORTS.stop - 1}"])  # fmt: skip
    run([*nat, "-j", "MASQUERADE"])


def _nat_flags(sa: IkeSaInfo) -> tuple[bool, bool, bool, tuple[bool, ...]]:
    return sa.nat_local, sa.nat_remote, sa.encap, tuple(c.encap for c in sa.children)


@pytest.mark.root
def test_nat_appears_and_goes(net: MobikeNet, tmp_path: Path) -> None:
    """4555-05/06 with a real NAT box: the initiator's direct IPv4 address goes; its other
    address is behind a masquerading NAT (iptables, nft backend, source ports rewritten).
    UPDATE_SA_ADDRESSES with NAT-D over the new addresses: the responder sees the NAT's
    address and port in the IP/UDP header, both sides switch UDP encapsulation on (IKE SA
    and CHILD_SA, the initiator knows it is the one behind the NAT), the same SPIs; DPD
    round trips through the NAT. Then the direct address returns and the NATed one goes:
    both sides switch encapsulation off again, back on the direct path."""
    if shutil.which("iptables") is None:
        pytest.skip("no iptables binary (scripts/setup-debian.sh installs the iptables package)")
    _build_nat(net)
    r_text = config(initiator=False, remote="%any").replace(
        f'"{I6L2}"]', f'"{I6L2}", "{N4_OUT}"]', 1)  # the responder accepts the NAT's address
    assert N4_OUT in r_text
    started: list[NsDaemon] = []
    try:
        r = NsDaemon(net, NS_R, tmp_path, "responder", r_text)
        started.append(r)
        wait_for("the responder's state file", lambda: r.state.exists(), r)
        i = NsDaemon(net, NS_I, tmp_path, "initiator",
                     config(initiator=True, remote=R4, conn_extra='dpd_delay = "1s"'))
        started.append(i)
        si, sr = wait_for("an IKE SA with its CHILD_SA on both sides",
                          lambda: (a := only_sa(i)) and (b := only_sa(r)) and (a, b), i, r)
        assert tuple(si.local) == (I4, 4500) and tuple(sr.remote) == (I4, 4500)
        assert _nat_flags(si) == _nat_flags(sr) == (False, False, False, (False,))

        def on(local: str, seen: str) -> object:
            """The initiator on `local`, the responder seeing it as `seen`."""
            a, b = only_sa(i), only_sa(r)
            return a and b and a.local[0] == local and b.remote[0] == seen and (a, b)

        # behind the NAT: the direct address goes, the route via mb-n is left
        wait_for(f"{I4_NAT} usable", lambda: I4_NAT in i.text(), i)
        mark_i = len(i.text())
        net.ip(NS_I, "addr", "del", f"{I4}/24", "dev", "mi0")
        ai, ar = wait_for(f"both sides on {I4_NAT} behind the NAT",
                          lambda: on(I4_NAT, N4_OUT), i, r)
        same_sa(si, ai)
        same_sa(sr, ar)
        assert tuple(ai.local) == (I4_NAT, 4500) and tuple(ai.remote) == (R4, 4500)
        assert ar.remote[1] in NAT_PORTS, f"the NAT rewrote the port: {ar.remote}"
        assert tuple(ar.local) == (R4, 4500)
        # the initiator is behind a NAT (its own address was changed); the responder sees
        # the peer's NAT; both encapsulate the CHILD_SA in UDP now
        assert _nat_flags(ai) == (True, False, True, (True,)), ai
        assert _nat_flags(ar) == (False, True, True, (True,)), ar
        assert [(c.local, c.remote) for c in ai.children] == [(I4_NAT, R4)]
        assert [(c.local, c.remote) for c in ar.children] == [(R4, N4_OUT)]
        ilog = i.text()[mark_i:]
        assert f"moved {I4}[4500]-{R4}[4500] -> {I4_NAT}[4500]-{R4}[4500] NAT-T" in ilog
        mark_i = len(i.text())
        wait_for("two answered DPD probes through the NAT",
                 lambda: i.text()[mark_i:].count("checking liveness") >= 2, i, r)  # fmt: skip
        assert "retransmit" not in i.text()[mark_i:]

        # out again: the direct address returns, the NATed one goes
        net.ip(NS_I, "addr", "add", f"{I4}/24", "dev", "mi0")
        wait_for(f"{I4} usable again", lambda: f"new {I4}" in i.text()[mark_i:], i)
        net.ip(NS_I, "addr", "del", f"{I4_NAT}/26", "dev", "mn0")
        bi, br = wait_for(f"both sides back on {I4} without NAT", lambda: on(I4, I4), i, r)
        same_sa(si, bi)
        same_sa(sr, br)
        assert tuple(bi.local) == (I4, 4500) and tuple(br.remote) == (I4, 4500)
        assert _nat_flags(bi) == _nat_flags(br) == (False, False, False, (False,)), (bi, br)
        assert [(c.local, c.remote) for c in br.children] == [(R4, I4)]
        mark_i = len(i.text())
        wait_for("two answered DPD probes on the direct path",
                 lambda: i.text()[mark_i:].count("checking liveness") >= 2, i, r)  # fmt: skip
        logs = i.text() + r.text()
        assert "Traceback" not in logs and "ERROR" not in logs
    finally:
        for d in started:
            d.stop()
