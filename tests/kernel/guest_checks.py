"""Real-kernel checks of the xfrm backend; runs INSIDE the qemu guest that
/work/shared/tools/run-in-kernel.sh boots (Debian's 6.1 kernel with ESP), started by
tests/kernel/test_real_kernel.py as `python3 -m tests.kernel.guest_checks [NAME ...]`.

Two network namespaces joined by a veth (the topology of /work/shared/tools/xfrm-esp-check.sh):
  ikA va 2001:db8:1::1/64 192.0.2.1/24, inner on lo 2001:db8:a::1 198.51.100.1
  ikB vb 2001:db8:1::2/64 192.0.2.2/24, inner on lo 2001:db8:b::1 203.0.113.1
Prints one `CHECK <name> PASS|FAIL <detail>` line per check and a final
`GUEST-SUMMARY <json>`; exits 0 only if every check passed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ikev2.kernel.base import ChildSaExpired, ChildSaSpec, SaMigrated
from ikev2.kernel.xfrm import XfrmKernel
from ikev2.kernel.xfrm.consts import XfrmMsg
from ikev2.kernel.xfrm.cstruct import family_of, pack_addr, unpack_addr
from ikev2.kernel.xfrm.netlink import XfrmSocket
from ikev2.kernel.xfrm.ownership import Ownership, list_owned
from ikev2.kernel.xfrm.sockopt import prepare_ike_socket
from ikev2.protocol.enums import EncrId, IntegId
from ikev2.protocol.ts import TrafficSelector as TS
from tests.kernel.netns import entered

NS_A, NS_B = "ikA", "ikB"
A6, B6, A4, B4 = "2001:db8:1::1", "2001:db8:1::2", "192.0.2.1", "192.0.2.2"
A6_NEW, A4_NEW = "2001:db8:1::11", "192.0.2.11"
IN_A6, IN_B6, IN_A4, IN_B4 = "2001:db8:a::1", "2001:db8:b::1", "198.51.100.1", "203.0.113.1"
PSK = "ikev2d guest test psk, not a secret"
REPO = Path(__file__).resolve().parents[2]

CHECKS: list[tuple[str, Callable[[], str]]] = []


def check(name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    def deco(fn: Callable[[], str]) -> Callable[[], str]:
        CHECKS.append((name, fn))
        return fn
    return deco


def sh(cmd: str, check: bool = True, timeout: float = 60) -> str:
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=timeout,
                       check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd!r} -> {r.returncode}: {r.stdout[-400:]} {r.stderr[-400:]}")
    return r.stdout


def path(ns: str) -> str:
    return f"/run/netns/{ns}"


def setup_topology() -> None:
    for ns in (NS_A, NS_B):
        sh(f"ip netns add {ns}")
        sh(f"ip -n {ns} link set lo up")
        sh(f"ip netns exec {ns} sysctl -qw net.ipv6.conf.all.accept_dad=0 "
           "net.ipv6.conf.default.accept_dad=0")
    sh(f"ip link add va netns {NS_A} type veth peer name vb netns {NS_B}")
    sh(f"ip -n {NS_A} link set va up; ip -n {NS_B} link set vb up")
    sh(f"ip -n {NS_A} addr add {A4}/24 dev va; ip -n {NS_B} addr add {B4}/24 dev vb")
    sh(f"ip -n {NS_A} addr add {A6}/64 dev va nodad; ip -n {NS_B} addr add {B6}/64 dev vb nodad")
    sh(f"ip -n {NS_A} addr add {IN_A4}/32 dev lo; ip -n {NS_B} addr add {IN_B4}/32 dev lo")
    sh(f"ip -n {NS_A} addr add {IN_A6}/128 dev lo; ip -n {NS_B} addr add {IN_B6}/128 dev lo")
    sh(f"ip -n {NS_A} route add {IN_B4}/32 via {B4} src {IN_A4}")
    sh(f"ip -n {NS_B} route add {IN_A4}/32 via {A4} src {IN_B4}")
    sh(f"ip -n {NS_A} route add {IN_B6}/128 via {B6} src {IN_A6}")
    sh(f"ip -n {NS_B} route add {IN_A6}/128 via {A6} src {IN_B6}")


def ping(ns: str, src: str, dst: str, count: int = 3) -> None:
    sh(f"ip netns exec {ns} ping -n -q -c {count} -i 0.2 -W 3 -I {src} {dst}", timeout=30)


# --- backend-level checks -------------------------------------------------------------------

KERNELS: dict[str, XfrmKernel] = {}
SOCKS: dict[str, XfrmSocket] = {}


def kernel(ns: str) -> XfrmKernel:
    if ns not in KERNELS:
        with entered(path(ns)):  # every socket must be opened inside the namespace
            KERNELS[ns] = XfrmKernel()
            KERNELS[ns].event_fileno()
            SOCKS[ns] = XfrmSocket()
    return KERNELS[ns]


def owned(ns: str) -> tuple[list[Any], list[Any]]:
    kernel(ns)
    return list_owned(SOCKS[ns], Ownership())


_reqids = iter(range(1, 10_000))


@dataclass(frozen=True, slots=True)
class Pair:
    a: ChildSaSpec
    b: ChildSaSpec


ALGS = {
    "gcm": (EncrId.AES_GCM_16, 128, 0, 20, 0),  # aes128gcm16: 16 + 4 salt octets
    "cbc": (EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128, 32, 32),  # aes256-sha256
}


def make_pair(fam: int, mode: str, alg: str, **kw: Any) -> Pair:
    """Mirror-image specs for A and B with SPIs allocated by each side's kernel."""
    oa, ob = (A6, B6) if fam == 6 else (A4, B4)
    ia, ib = (IN_A6, IN_B6) if fam == 6 else (IN_A4, IN_B4)
    if mode == "transport":
        ia, ib = oa, ob
    encr, bits, integ, elen, ilen = ALGS[alg]
    ka, kb = os.urandom(elen), os.urandom(elen)
    ia_key, ib_key = os.urandom(ilen), os.urandom(ilen)
    spi_a = kernel(NS_A).alloc_spi(oa, ob, 3)
    spi_b = kernel(NS_B).alloc_spi(ob, oa, 3)
    reqid = next(_reqids)
    a = ChildSaSpec(
        reqid=reqid, protocol=3, mode=mode, local=oa, remote=ob, spi_in=spi_a, spi_out=spi_b,
        encr_id=encr, encr_key_bits=bits, integ_id=integ, esn=False,
        encr_key_in=kb, encr_key_out=ka, integ_key_in=ib_key, integ_key_out=ia_key,
        local_ts=(TS.from_network(ia),), remote_ts=(TS.from_network(ib),),
    )
    a = replace(a, **kw)
    b = replace(a, local=ob, remote=oa, spi_in=spi_b, spi_out=spi_a, encr_key_in=ka,
                encr_key_out=kb, integ_key_in=ia_key, integ_key_out=ib_key,
                local_ts=a.remote_ts, remote_ts=a.local_ts,
                encap=(a.encap[1], a.encap[0]) if a.encap else None)
    return Pair(a, b)


def install(p: Pair) -> None:
    kernel(NS_A).install_child(p.a)
    kernel(NS_B).install_child(p.b)


def remove(p: Pair) -> None:
    kernel(NS_A).remove_child(p.a)
    kernel(NS_B).remove_child(p.b)
    for ns in (NS_A, NS_B):
        pols, sas = owned(ns)
        assert not pols and not sas, f"{ns}: {len(pols)} policies, {len(sas)} SAs left"


def inner(p: Pair) -> tuple[str, str]:
    return str(p.a.local_ts[0].start), str(p.a.remote_ts[0].start)


def traffic(p: Pair, count: int = 3) -> str:
    src, dst = inner(p)
    ping(NS_A, src, dst, count)
    sa = kernel(NS_A).child_stats(p.a)
    sb = kernel(NS_B).child_stats(p.b)
    assert sa.packets_out >= count and sb.packets_in >= count, (sa, sb)
    assert sb.packets_out >= count and sa.packets_in >= count, (sa, sb)
    return (f"A out={sa.packets_out}p/{sa.bytes_out}B in={sa.packets_in}p, "
            f"B in={sb.packets_in}p out={sb.packets_out}p")


def _esp_case(fam: int, mode: str, alg: str) -> Callable[[], str]:
    def run() -> str:
        p = make_pair(fam, mode, alg)
        install(p)
        try:
            pols, sas = owned(NS_A)
            want = 3 if mode == "tunnel" else 2
            assert len(sas) == 2 and len(pols) == want, (len(sas), len(pols))
            return traffic(p)
        finally:
            remove(p)
    return run


for _fam in (6, 4):
    for _mode in ("tunnel", "transport"):
        for _alg in ("gcm", "cbc"):
            check(f"esp_v{_fam}_{_mode}_{_alg}")(_esp_case(_fam, _mode, _alg))


@check("udp_encap_v4_tunnel")
def udp_encap() -> str:
    """REQUIREMENTS X-08: ESP-in-UDP SAs (4500/4500) with UDP_ENCAP sockets on both sides."""
    socks = []
    for ns, addr in ((NS_A, A4), (NS_B, B4)):
        with entered(path(ns)):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, 4500))
        prepare_ike_socket(s, natt=True)
        socks.append(s)
    p = make_pair(4, "tunnel", "gcm", encap=(4500, 4500))
    install(p)
    try:
        detail = traffic(p)
        got = SOCKS[NS_A].request(XfrmMsg.GETSA, {
            "daddr": pack_addr(B4), "spi": p.a.spi_out, "family": 2,
            "proto": 50})[0].get_attr("XFRMA_ENCAP")
        assert (got["encap_type"], got["encap_sport"], got["encap_dport"]) == (2, 4500, 4500)
        return detail + " encap=ESPINUDP 4500->4500"
    finally:
        remove(p)
        for s in socks:
            s.close()


@check("esn_window_128")
def esn() -> str:
    """REQUIREMENTS X-09: ESN with a 128-packet window (XFRMA_REPLAY_ESN_VAL)."""
    p = make_pair(6, "tunnel", "gcm", esn=True, replay_window=128)
    install(p)
    try:
        detail = traffic(p)
        msg = SOCKS[NS_B].request(XfrmMsg.GETSA, {
            "daddr": pack_addr(B6), "spi": p.b.spi_in, "family": 10, "proto": 50})[0]
        esn_val = msg.get_attr("XFRMA_REPLAY_ESN_VAL")
        assert msg["flags"] & 128 and esn_val["replay_window"] == 128, (msg["flags"], esn_val)
        assert esn_val["seq"] >= 3, esn_val
        return detail + f" esn seq={esn_val['seq']}"
    finally:
        remove(p)


def _wait_events(k: XfrmKernel, pred: Callable[[Any], bool], timeout: float) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += k.read_events()
        if any(pred(e) for e in got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"no matching event within {timeout}s; got {got}")


@check("soft_and_hard_expire")
def expire() -> str:
    """REQUIREMENTS X-12: a soft packet limit raises a soft EXPIRE, a hard time limit a
    hard one (and the kernel deletes the SA)."""
    ka = kernel(NS_A)
    ka.read_events()
    p = make_pair(6, "transport", "gcm", soft_packets=2, hard_time=3)
    install(p)
    try:
        ping(NS_A, A6, B6, 3)
        evs = _wait_events(ka, lambda e: isinstance(e, ChildSaExpired) and not e.hard, 3)
        soft = [e for e in evs if isinstance(e, ChildSaExpired) and not e.hard]
        assert soft[0].spi_in == p.a.spi_in and soft[0].reqid == p.a.reqid, soft
        evs = _wait_events(ka, lambda e: isinstance(e, ChildSaExpired) and e.hard, 8)
        hard = [e for e in evs if isinstance(e, ChildSaExpired) and e.hard]
        assert {e.inbound for e in hard} <= {True, False} and hard[0].spi_in == p.a.spi_in
        _pols, sas = owned(NS_A)
        return (f"soft: {len(soft)} event(s) ({'in' if soft[0].inbound else 'out'} first), "
                f"hard: {len(hard)} event(s); SAs left on A: {len(sas)}")
    finally:
        remove(p)


def _oseq(ns: str, spec: ChildSaSpec) -> int:
    msg = SOCKS[ns].request(XfrmMsg.GETSA, {"daddr": pack_addr(spec.remote),
                                            "spi": spec.spi_out,
                                            "family": family_of(spec.remote), "proto": 50})[0]
    esn = msg.get_attr("XFRMA_REPLAY_ESN_VAL")
    if esn:
        return esn["oseq"]
    return msg.get_attr("XFRMA_REPLAY_VAL")["oseq"]


def _migrate_case(fam: int, mode: str, alg: str, native: bool) -> str:
    old_a, new_a = (A6, A6_NEW) if fam == 6 else (A4, A4_NEW)
    plen = 64 if fam == 6 else 24
    sh(f"ip -n {NS_A} addr add {new_a}/{plen} dev va" + (" nodad" if fam == 6 else ""))
    ka, kb = kernel(NS_A), kernel(NS_B)
    ka.read_events()
    p = make_pair(fam, mode, alg)
    install(p)
    ka.use_migrate = kb.use_migrate = native
    moved = None
    try:
        traffic(p)
        seq_before = _oseq(NS_A, p.a)
        before = dict(ka.migrations)
        moved = Pair(ka.migrate_child(p.a, new_a, p.a.remote, None),
                     kb.migrate_child(p.b, p.b.local, new_a, None))
        assert moved.a.local == new_a and moved.b.remote == new_a
        if mode == "transport":
            assert str(moved.a.local_ts[0].start) == new_a
        detail = traffic(moved)
        seq_after = _oseq(NS_A, moved.a)
        assert seq_after >= seq_before + 3, (seq_before, seq_after)
        _pols, sas = owned(NS_A)
        addrs = {unpack_addr(s["saddr"], s["family"]) for s in sas} | {
            unpack_addr(s["id"]["daddr"], s["family"]) for s in sas}
        assert old_a not in addrs and len(sas) == 2, addrs
        used_native = ka.migrations["native"] > before["native"]
        kind = "XFRM_MSG_MIGRATE" if used_native else "re-add"
        if mode == "transport":  # the selectors move too: only re-adding can do that
            kind += " (selectors moved)"
            assert not used_native
        elif native:
            assert used_native and ka.use_migrate, "the kernel refused XFRM_MSG_MIGRATE"
        own = ""
        if used_native:
            evs = _wait_events(ka, lambda e: isinstance(e, SaMigrated), 3)
            mig = [e for e in evs if isinstance(e, SaMigrated)]
            assert all(e.own for e in mig), mig
            own = f", {len(mig)} MIGRATE notification(s) marked own"
        return f"{kind}: oseq {seq_before} -> {seq_after}; {detail}{own}"
    finally:
        ka.use_migrate = kb.use_migrate = True
        remove(moved or p)
        sh(f"ip -n {NS_A} addr del {new_a}/{plen} dev va")


check("migrate_native_v6_tunnel")(lambda: _migrate_case(6, "tunnel", "gcm", True))
check("migrate_fallback_v4_tunnel")(lambda: _migrate_case(4, "tunnel", "cbc", False))
check("migrate_v6_transport")(lambda: _migrate_case(6, "transport", "cbc", True))


# --- two ikev2d daemons -------------------------------------------------------------------------

def render(side: str, conns: list[dict[str, str]], log_level: str = "info") -> str:
    me_a = side == "A"
    listen = [A6, A4] if me_a else [B6, B4]
    out = [
        "[daemon]",
        f"listen = {json.dumps(listen)}",
        'kernel = "xfrm"',
        f'log_level = "{log_level}"',
    ]
    for c in conns:
        local, remote = (c["a"], c["b"]) if me_a else (c["b"], c["a"])
        lts, rts = (c["a_ts"], c["b_ts"]) if me_a else (c["b_ts"], c["a_ts"])
        out += [
            "", f"[connections.{c['name']}]",
            f'local_addrs = ["{local}"]', f'remote_addrs = ["{remote}"]',
            f'ike_proposals = ["{c["ike"]}"]', f'psk = "{PSK}"',
            f"[connections.{c['name']}.local]",
            f'id = "{"user@example.org" if me_a else "gw.example.org"}"',
            f"[connections.{c['name']}.remote]",
            f'id = "{"gw.example.org" if me_a else "user@example.org"}"',
            f"[connections.{c['name']}.children.{c['name']}c]",
            f'local_ts = ["{lts}"]', f'remote_ts = ["{rts}"]', f'mode = "{c["mode"]}"',
            f'esp_proposals = ["{c["esp"]}"]',
            f'start_action = "{"initiate" if me_a else "none"}"',
        ]
    return "\n".join(out) + "\n"


@dataclass
class Daemon:
    ns: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def start_daemon(ns: str, side: str, conns: list[dict[str, str]], workdir: Path,
                 tag: str) -> Daemon:
    conf = workdir / f"{tag}-{side}.toml"
    conf.write_text(render(side, conns))
    log = workdir / f"{tag}-{side}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "ikev2.daemon.main", "--config",
             str(conf)], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return Daemon(ns, proc, log)


def stop_daemon(d: Daemon, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
    if d.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(d.proc.pid, sig)
        try:
            d.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(d.proc.pid, signal.SIGKILL)
            d.proc.wait(timeout=5)
    return d.proc.returncode


def wait_sas(ns: str, n: int, timeout: float, daemons: list[Daemon]) -> list[Any]:
    deadline = time.monotonic() + timeout
    sas: list[Any] = []
    while time.monotonic() < deadline:
        _pols, sas = owned(ns)
        live = [s for s in sas if s["reqid"] != Ownership().larval_reqid]
        if len(live) >= n:
            return live
        for d in daemons:
            if d.proc.poll() is not None:
                raise AssertionError(f"ikev2d in {d.ns} exited {d.proc.returncode}:\n"
                                     f"{d.tail()}")
        time.sleep(0.25)
    raise AssertionError(f"{ns}: {len(sas)} SAs after {timeout}s, want {n}\n" +
                         "\n".join(f"--- {d.ns}\n{d.tail()}" for d in daemons))


def counters(ns: str) -> dict[int, int]:
    _pols, sas = owned(ns)
    return {s["id"]["spi"]: s["curlft"]["packets"] for s in sas}


@contextlib.contextmanager
def daemon_pair(conns: list[dict[str, str]], tag: str) -> Iterator[tuple[Daemon, Daemon]]:
    workdir = Path(tempfile.mkdtemp(prefix=f"ikev2d-{tag}-"))
    b = start_daemon(NS_B, "B", conns, workdir, tag)
    time.sleep(0.5)
    a = start_daemon(NS_A, "A", conns, workdir, tag)
    try:
        yield a, b
    finally:
        for d in (a, b):
            stop_daemon(d)


def _daemon_case(conns: list[dict[str, str]], tag: str) -> str:
    n = 2 * len(conns)
    with daemon_pair(conns, tag) as (a, b):
        wait_sas(NS_A, n, 60, [a, b])
        wait_sas(NS_B, n, 10, [a, b])
        pols_a, _ = owned(NS_A)
        for c in conns:
            ping(NS_A, c["ping_src"], c["ping_dst"], 3)
        ca, cb = counters(NS_A), counters(NS_B)
        assert len(ca) == n and all(v >= 3 for v in ca.values()), ca
        assert len(cb) == n and all(v >= 3 for v in cb.values()), cb
        rc = (stop_daemon(a), stop_daemon(b))
        assert rc == (0, 0), f"exit codes {rc}\n{a.tail()}\n{b.tail()}"
    for ns in (NS_A, NS_B):
        pols, sas = owned(ns)
        assert not pols and not sas, f"{ns} after SIGTERM: {len(pols)} policies, {len(sas)} SAs"
        assert sh(f"ip -n {ns} xfrm state").strip() == ""
        assert sh(f"ip -n {ns} xfrm policy").strip() == ""
    return (f"{len(pols_a)} policies on A; SA packets A {sorted(ca.values())} "
            f"B {sorted(cb.values())}; SIGTERM left no state or policy")


TUNNEL_CONNS = [
    {"name": "v6", "a": A6, "b": B6, "a_ts": f"{IN_A6}/128", "b_ts": f"{IN_B6}/128",
     "mode": "tunnel", "ike": "aes128gcm16-prfsha256-x25519", "esp": "aes128gcm16",
     "ping_src": IN_A6, "ping_dst": IN_B6},
    {"name": "v4", "a": A4, "b": B4, "a_ts": f"{IN_A4}/32", "b_ts": f"{IN_B4}/32",
     "mode": "tunnel", "ike": "aes256-sha256-x25519", "esp": "aes256-sha256",
     "ping_src": IN_A4, "ping_dst": IN_B4},
]
TRANSPORT_CONNS = [
    {"name": "t6", "a": A6, "b": B6, "a_ts": f"{A6}[icmpv6]", "b_ts": f"{B6}[icmpv6]",
     "mode": "transport", "ike": "aes128gcm16-prfsha256-x25519", "esp": "aes256-sha256",
     "ping_src": A6, "ping_dst": B6},
    {"name": "t4", "a": A4, "b": B4, "a_ts": f"{A4}[icmp]", "b_ts": f"{B4}[icmp]",
     "mode": "transport", "ike": "aes256-sha256-x25519", "esp": "aes128gcm16",
     "ping_src": A4, "ping_dst": B4},
]

check("daemons_tunnel_v6_gcm_v4_cbc")(lambda: _daemon_case(TUNNEL_CONNS, "tunnel"))
check("daemons_transport_v6_cbc_v4_gcm")(lambda: _daemon_case(TRANSPORT_CONNS, "transport"))


@check("daemon_kill9_restart_no_stale_state")
def kill9() -> str:
    """Ownership: ikev2d killed with SIGKILL with SAs up leaves them; the restarted one
    removes them before installing its own; SIGTERM then leaves nothing."""
    conns = TUNNEL_CONNS[:1]
    workdir = Path(tempfile.mkdtemp(prefix="ikev2d-kill9-"))
    b = start_daemon(NS_B, "B", conns, workdir, "kill9")
    a = start_daemon(NS_A, "A", conns, workdir, "kill9")
    a2 = None
    try:
        first = {s["id"]["spi"] for s in wait_sas(NS_A, 2, 60, [a, b])}
        stop_daemon(a, signal.SIGKILL)
        pols, sas = owned(NS_A)
        assert len(sas) == 2 and len(pols) == 3, "kill -9 should leave the SAs behind"
        a2 = start_daemon(NS_A, "A", conns, workdir, "kill9b")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _pols, sas = owned(NS_A)
            spis = {s["id"]["spi"] for s in sas if s["reqid"] != Ownership().larval_reqid}
            if len(spis) == 2 and not spis & first:
                break
            time.sleep(0.25)
        else:
            raise AssertionError(f"A: SPIs {spis}, old {first}\n{a2.tail()}")
        pols, sas = owned(NS_A)
        assert len(pols) == 3 and len(sas) == 2, (len(pols), len(sas))
        ping(NS_A, IN_A6, IN_B6, 2)
        assert stop_daemon(a2) == 0
        pols, sas = owned(NS_A)
        assert not pols and not sas
        return f"old SPIs {sorted(map(hex, first))} gone after restart; new pair pings"
    finally:
        for d in (a, b, a2):
            if d is not None:
                stop_daemon(d)
        for ns in (NS_A, NS_B):
            kernel(ns).start()
            kernel(ns).close()
            KERNELS.pop(ns, None)


PEER_SH = Path(os.environ.get("IKEV2D_PEER_SH", "/work/shared/interop/peer.sh"))
CHARON = Path(os.environ.get("CHARON", "/usr/lib/ipsec/charon"))
PEER_PSK = "peer.sh test psk, not a secret"


def _all_sas(ns: str) -> list[Any]:
    with entered(path(ns)):
        nl = XfrmSocket()
    try:
        return nl.dump(XfrmMsg.GETSA)
    finally:
        nl.close()


@check("charon_netlink_interop")
def charon_interop() -> str:
    """ikev2d (kernel = "xfrm") initiates to strongSwan charon with kernel-netlink (peer.sh
    KERNEL=netlink ONLY=b): one tunnel CHILD_SA carrying IPv6 and IPv4 inner traffic over
    an IPv6 outer path, pings through ESP with counters rising on both kernels, SIGTERM
    removes every SA on both sides."""
    if not (os.access(PEER_SH, os.X_OK) and os.access(CHARON, os.X_OK)):
        return "SKIP: strongSwan charon or peer.sh not installed"
    state = tempfile.mkdtemp(prefix="ikev2d-peer-")
    env = {**os.environ, "PEER_STATE": state, "KERNEL": "netlink", "ONLY": "b",
           "CERT_KEY": "ed25519", "IKE_PROPOSAL": "aes128gcm16-prfsha256-x25519",
           "ESP_PROPOSAL": "aes128gcm16"}
    r = subprocess.run([str(PEER_SH), "start"], env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, f"peer.sh start: {r.stdout[-500:]} {r.stderr[-500:]}"
    conf = Path(state) / "ikev2d-a.toml"
    conf.write_text(f"""[daemon]
listen = ["{A6}"]
kernel = "xfrm"
[connections.psk]
local_addrs = ["{A6}"]
remote_addrs = ["{B6}"]
ike_proposals = ["aes128gcm16-prfsha256-x25519"]
psk = "{PEER_PSK}"
[connections.psk.local]
id = "user@example.org"
[connections.psk.remote]
id = "gw.example.org"
[connections.psk.children.net]
local_ts = ["{IN_A6}/128", "{IN_A4}/32"]
remote_ts = ["{IN_B6}/128", "{IN_B4}/32"]
mode = "tunnel"
esp_proposals = ["aes128gcm16"]
start_action = "initiate"
""")
    log = Path(state) / "ikev2d-a.log"
    d = None
    try:
        sh(f"ip -n ss-a route add {IN_B6}/128 via {B6} src {IN_A6}")
        sh(f"ip -n ss-a route add {IN_B4}/32 via {B4} src {IN_A4}")
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", "ss-a", sys.executable, "-m", "ikev2.daemon.main",
                 "--config", str(conf)], cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        d = Daemon("ss-a", proc, log)
        deadline = time.monotonic() + 60
        while len(_all_sas("ss-a")) < 2 or len(_all_sas("ss-b")) < 2:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"no CHILD_SA with charon\n{d.tail()}\n--- charon\n"
                                     + sh(f"tail -n 20 {state}/b/charon.log", check=False))
            time.sleep(0.25)
        ping("ss-a", IN_A6, IN_B6, 3)
        ping("ss-a", IN_A4, IN_B4, 3)
        ours = {m["id"]["spi"]: m["curlft"]["packets"] for m in _all_sas("ss-a")}
        theirs = {m["id"]["spi"]: m["curlft"]["packets"] for m in _all_sas("ss-b")}
        assert all(v >= 6 for v in ours.values()) and all(v >= 6 for v in theirs.values()), (
            ours, theirs)
        assert set(ours) == set(theirs), (ours, theirs)
        assert stop_daemon(d) == 0, d.tail()
        deadline = time.monotonic() + 10
        while _all_sas("ss-b") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _all_sas("ss-a") and not _all_sas("ss-b"), "SAs left after SIGTERM"
        assert sh("ip -n ss-a xfrm policy").strip() == ""
        return (f"SA packets ikev2d {sorted(ours.values())} charon "
                f"{sorted(theirs.values())}; delete removed both sides' SAs")
    finally:
        if d is not None:
            stop_daemon(d)
        subprocess.run([str(PEER_SH), "stop"], env=env, capture_output=True, timeout=60,
                       check=False)


def main(argv: list[str]) -> int:
    wanted = set(argv)
    t0 = time.monotonic()
    setup_topology()
    results: dict[str, dict[str, Any]] = {}
    for name, fn in CHECKS:
        if wanted and name not in wanted:
            continue
        t = time.monotonic()
        try:
            detail = fn()
            ok = True
        except Exception as e:  # report, keep going
            ok = False
            detail = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
        dt = time.monotonic() - t
        skipped = ok and detail.startswith("SKIP: ")
        results[name] = {"ok": ok, "skipped": skipped, "detail": detail,
                         "seconds": round(dt, 2)}
        first = detail.splitlines()[0] if detail else ""
        verdict = "SKIP" if skipped else "PASS" if ok else "FAIL"
        print(f"CHECK {name} {verdict} ({dt:.1f}s) {first}", flush=True)
        if not ok:
            print("    " + detail.replace("\n", "\n    "), flush=True)
    for k in KERNELS.values():
        k.close()
    results["_total_seconds"] = {"ok": True, "detail": "", "seconds":
                                 round(time.monotonic() - t0, 1)}
    print("GUEST-SUMMARY " + json.dumps(results), flush=True)
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
