#!/usr/bin/env python3
"""IKE_SA establishment benchmark: N IKE SAs (PSK, x25519, AES-GCM-128, one CHILD_SA each)
from a paced load generator against (a) an ikev2d responder and (b) a strongSwan charon
responder, both in network namespaces made by /work/shared/interop/peer.sh.

    sudo python3 bench/handshake.py              # N = 10000 against both
    sudo python3 bench/handshake.py --quick      # N = 200 (smoke test)
    sudo python3 bench/handshake.py --n 2000 --responder ikev2d
    sudo python3 bench/handshake.py --n 2000 --auth rsa2048   # RSA-2048 certificates

Prints one line per responder:

    handshake responder=ikev2d n=10000 ike_sa_per_s=... cpu_ms_per_sa=... rss_kb_per_sa=...

--auth rsa2048 (or psk,rsa2048): both sides authenticate with RSA-2048 certificates from
one RSA-2048 CA (made here with certs/build.py; AUTH method 14, RSASSA-PSS from ikev2d,
PKCS#1 v1.5 from charon; IKE_AUTH is fragmented both ways, RFC 7383). The lines carry
auth=rsa2048, and a last line compares the responders:

    handshake ratio auth=rsa2048 cpu_ms_per_sa ikev2d/charon=... (ikev2d ... charon ...)

For reference the interop README measured charon at 1.50 ms of responder CPU per IKE SA
with RSA-2048 certificates on this machine; that figure is printed with the ratio too.

cpu_ms_per_sa: responder utime+stime (/proc/PID/stat, all threads) from just before the
first IKE_SA_INIT to the last established SA, divided by N. rss_kb_per_sa: responder
VmRSS growth over the same span, divided by N (the SAs are all alive when it is read).

The load generator (this file with --generator, run inside ss-a) drives the sans-IO
`ikev2.core.engine.Engine` directly over two UDP sockets (500, 4500 with the non-ESP
marker) with at most --window (128) half-open SAs at a time, so neither the generator's
asyncio overhead nor a UDP receive-buffer overflow at the responder shapes the result.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "interop"))

IKE_PROPOSAL = "aes128gcm16-prfsha256-x25519"
ESP_PROPOSAL = "aes128gcm16"
A6, B6 = "2001:db8:1::1", "2001:db8:1::2"
ID_A, ID_B = "user@example.org", "gw.example.org"
TS_A, TS_B = "2001:db8:a::1/128", "2001:db8:b::1/128"
TS_POOL = ipaddress.ip_network("2001:db8:a::/112")  # --ts distinct: initiators' inner addresses
CLK_TCK = os.sysconf("SC_CLK_TCK")
NON_ESP_MARKER = b"\0\0\0\0"
CHARON_RSA_REFERENCE_MS = 1.50  # /work/shared/interop/README.md: charon, RSA-2048, per SA
AUTHS = ("psk", "rsa2048")


# ====================================================================== certificates


def make_pki(d: Path) -> dict[str, str]:
    """An RSA-2048 CA and certificates for the generator (ID_A) and the responder (ID_B),
    as PEM files in d; returns their paths."""
    import importlib
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import serialization

    from ikev2.crypto.certs import parse_dn

    # the repo's certs/ package (ikev2-pki), not bench/certs.py next to this file
    if not hasattr(sys.modules.get("certs", sys), "__path__"):
        sys.modules.pop("certs", None)
    sys.path.insert(0, str(REPO))
    try:
        build = importlib.import_module("certs.build")
    finally:
        sys.path.remove(str(REPO))
    Validity, generate_key = build.Validity, build.generate_key
    issue_certificate, parse_identity = build.issue_certificate, build.parse_identity
    self_signed_ca = build.self_signed_ca

    d.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    pem = serialization.Encoding.PEM
    ca_key = generate_key("rsa2048")
    ca = self_signed_ca(ca_key, parse_dn("C=XX, O=Bench, CN=Bench CA"),
                        Validity.days(now - timedelta(hours=1), 30))  # fmt: skip
    out = {"ca": str(d / "ca.pem")}
    (d / "ca.pem").write_bytes(ca.public_bytes(pem))
    for who, ident in (("a", ID_A), ("b", ID_B)):
        k = generate_key("rsa2048")
        cert = issue_certificate(ca, ca_key, k.public_key(),
                                 parse_dn(f"C=XX, O=Bench, CN={ident}"),
                                 Validity.days(now - timedelta(hours=1), 30),
                                 sans=[parse_identity(ident)])  # fmt: skip
        (d / f"{who}.pem").write_bytes(cert.public_bytes(pem))
        (d / f"{who}-key.pem").write_bytes(k.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        out[who], out[f"{who}_key"] = str(d / f"{who}.pem"), str(d / f"{who}-key.pem")
    return out


def _auth_toml(auth: str, pki: str, me: str, local: bool) -> str:
    """The auth keys of one side of a bench connection (psk: none beyond `auth`)."""
    if auth == "psk":
        return 'auth = "psk"\n'
    d = Path(pki)
    if local:
        return (f'auth = "pubkey"\ncerts = ["{d / (me + ".pem")}"]\n'
                f'key = "{d / (me + "-key.pem")}"\n')
    return f'auth = "pubkey"\ncacerts = ["{d / "ca.pem"}"]\n'


# ====================================================================== load generator


def generator_config(local: str, remote: str, psk: str, ike_port: int, natt_port: int,
                     auth: str = "psk", pki: str = "") -> str:  # fmt: skip
    return f"""
[daemon]
listen = ["{local}"]
ike_port = {ike_port}
natt_port = {natt_port}
kernel = "memory"
log_level = "warning"

[connections.bench]
local_addrs = ["{local}"]
remote_addrs = ["{remote}"]
ike_proposals = ["{IKE_PROPOSAL}"]
mobike = false
send_initial_contact = false
psk = "{psk}"

[connections.bench.local]
id = "{ID_A}"
{_auth_toml(auth, pki, "a", True)}
[connections.bench.remote]
id = "{ID_B}"
{_auth_toml(auth, pki, "b", False)}
[connections.bench.children.net]
local_ts = ["{TS_A}"]
remote_ts = ["{TS_B}"]
esp_proposals = ["{ESP_PROPOSAL}"]
start_action = "none"
"""


def _udp(addr: str, port: int) -> socket.socket:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):  # root: past net.core.rmem_max
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    s.bind((addr, port))
    s.setblocking(False)
    return s


def run_generator(args: argparse.Namespace) -> int:
    """Inside ss-a: establish args.n IKE SAs to args.remote, keep them, report as JSON."""
    from ikev2.config.loader import load_config_text
    from ikev2.config.model import TsConfig
    from ikev2.core.engine import Engine
    from ikev2.core.events import ChildSaEstablished, IkeSaEstablished, IkeSaFailed
    from ikev2.kernel.memory import MemoryKernel
    from ikev2.protocol.ts import TrafficSelector

    cfg = load_config_text(
        generator_config(args.local, args.remote, args.psk, 500, 4500, args.auth, args.pki),
        "<bench generator>",
    )
    engine = Engine(cfg.engine, MemoryKernel(random_bytes=os.urandom), os.urandom,
                    lambda _remote: args.local, wall_time=time.time)  # type: ignore[arg-type]  # fmt: skip
    base = cfg.connections[0]
    engine.load_connection(base)

    def conn_name(i: int) -> str:
        """--ts distinct: SA i proposes its own inner address 2001:db8:a::/112 + i (a road
        warrior each); --ts shared: all SAs propose the same /128."""
        if args.ts == "shared":
            return base.name
        name = f"bench{i}"
        child = base.children[0]
        own = TsConfig(selector=TrafficSelector.from_network(str(TS_POOL[i + 1]) + "/128"))
        engine.load_connection(
            replace(base, name=name, children=(replace(child, local_ts=(own,)),))
        )
        return name

    ike_sock, natt_sock = _udp(args.local, 500), _udp(args.local, 4500)
    socks = {ike_sock.fileno(): (ike_sock, 500), natt_sock.fileno(): (natt_sock, 4500)}
    poller = select.epoll()
    for fd in socks:
        poller.register(fd, select.EPOLLIN)
    poller.register(sys.stdin.fileno(), select.EPOLLIN | select.EPOLLHUP)

    def out(obj: dict[str, Any]) -> None:
        print(json.dumps(obj), flush=True)

    out({"ready": True})
    if sys.stdin.readline().strip() != "go":
        return 1
    n, window = args.n, args.window
    started = established = failed = children = sent = received = 0
    t0 = time.monotonic()
    t_done: float | None = None
    last_progress = t0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    while True:
        now = time.monotonic()
        while started < n and started - established - failed < window:
            engine.initiate(conn_name(started), now)
            started += 1
        for dg in engine.datagrams_to_send():
            natt = 4500 in (dg.local[1], dg.remote[1])
            sock = natt_sock if natt else ike_sock
            try:
                sock.sendto(NON_ESP_MARKER + dg.data if natt else dg.data, dg.remote)
                sent += 1
            except BlockingIOError:
                pass  # a lost datagram: the engine retransmits
        while (ev := engine.next_event()) is not None:
            if isinstance(ev, IkeSaEstablished):
                established += 1
            elif isinstance(ev, ChildSaEstablished):
                children += 1
            elif isinstance(ev, IkeSaFailed):
                failed += 1
        if t_done is None and established + failed >= n:
            t_done = time.monotonic()
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            out({
                "done": True, "n": n, "established": established, "failed": failed,
                "children": children, "elapsed": t_done - t0, "sent": sent,
                "received": received, "alive": len(engine.ike_sas()),
                "generator_cpu_s": (ru1.ru_utime + ru1.ru_stime)
                - (ru0.ru_utime + ru0.ru_stime),
            })  # fmt: skip
        if t_done is None and now - last_progress > 5:
            last_progress = now
            print(json.dumps({"progress": established, "failed": failed}), file=sys.stderr,
                  flush=True)  # fmt: skip
        timer = engine.get_timer()
        timeout = 0.05 if timer is None else max(0.0, min(0.05, timer - now))
        for fd, _ev in poller.poll(timeout):
            if fd == sys.stdin.fileno():
                # EOF or "quit": stop (the SAs stay; the responder is stopped next)
                return 0 if established >= n else 3
            sock, port = socks[fd]
            while True:
                try:
                    data, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if port == 4500:
                    if data[:4] != NON_ESP_MARKER:
                        continue  # ESP or NAT keepalive
                    data = data[4:]
                received += 1
                engine.receive_datagram(data, (args.local, port), (addr[0], addr[1]),
                                        time.monotonic())  # fmt: skip
        timer = engine.get_timer()
        if timer is not None and timer <= time.monotonic():
            engine.handle_timer(time.monotonic())


# ====================================================================== orchestration


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Result:
    responder: str
    n: int
    established: int
    failed: int
    elapsed: float
    cpu_s: float
    rss_kb_delta: int
    rss_kb_idle: int
    generator_cpu_s: float
    ts: str = "distinct"
    auth: str = "psk"

    @property
    def cpu_ms_per_sa(self) -> float:
        return self.cpu_s * 1000 / max(self.established, 1)

    def line(self) -> str:
        n = max(self.established, 1)
        return (
            f"handshake responder={self.responder} n={self.n} "
            f"ike_sa_per_s={self.established / self.elapsed:.0f} "
            f"cpu_ms_per_sa={self.cpu_ms_per_sa:.3f} "
            f"rss_kb_per_sa={self.rss_kb_delta / n:.1f} ts={self.ts}"
            + (f" auth={self.auth}" if self.auth != "psk" else "")
            + (f" failed={self.failed}" if self.failed else "")
        )


def window_for(args: argparse.Namespace) -> int:
    """--window, else 128 half-open SAs; 32 with certificates: an RSA-2048 IKE_AUTH request
    is two ~1.2 KB fragments, and 128 of them at once overflow the responder's default
    208 KiB UDP receive buffer (lost fragments wait 4 s for the retransmission)."""
    if args.window:
        return int(args.window)
    return 32 if args.auth != "psk" else 128


def ratio_line(auth: str, results: list[Result]) -> str | None:
    """ikev2d's responder CPU per SA over charon's, for one auth method."""
    by = {r.responder: r for r in results if r.auth == auth}
    if "ikev2d" not in by or "charon" not in by:
        return None
    ours, theirs = by["ikev2d"].cpu_ms_per_sa, by["charon"].cpu_ms_per_sa
    line = (f"handshake ratio auth={auth} cpu_ms_per_sa ikev2d/charon="
            f"{ours / theirs if theirs else float('inf'):.2f} "
            f"(ikev2d {ours:.3f} charon {theirs:.3f})")
    if auth == "rsa2048":
        line += (f" reference: charon {CHARON_RSA_REFERENCE_MS:.2f} ms (interop README), "
                 f"ikev2d/reference={ours / CHARON_RSA_REFERENCE_MS:.2f}")
    return line


def drive(harness: Any, sandbox: Any, responder: str, pid: int, psk: str,
          args: argparse.Namespace) -> Result:  # fmt: skip
    """Run the generator in ss-a against the responder `pid` in ss-b; measure `pid`."""
    argv = sandbox.netns("ss-a", [
        sys.executable, str(Path(__file__).resolve()), "--generator", "--n", str(args.n),
        "--window", str(window_for(args)), "--ts", args.ts, "--local", A6, "--remote", B6,
        "--psk", psk, "--auth", args.auth, "--pki", args.pki,
    ])  # fmt: skip
    gen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                           cwd=str(REPO))  # fmt: skip
    harness.track(gen.pid)
    assert gen.stdin is not None and gen.stdout is not None
    try:
        line = gen.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError(f"generator did not start: {line!r}")
        time.sleep(0.5)  # let the responder settle before the baseline
        cpu0, rss0 = proc_cpu_s(pid), proc_rss_kb(pid)
        gen.stdin.write("go\n")
        gen.stdin.flush()
        deadline = time.monotonic() + args.timeout
        done: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            r, _, _ = select.select([gen.stdout], [], [], 1.0)
            if r:
                line = gen.stdout.readline()
                if not line:
                    break
                msg = json.loads(line)
                if msg.get("done"):
                    done = msg
                    break
        cpu1, rss1 = proc_cpu_s(pid), proc_rss_kb(pid)
        if done is None:
            raise RuntimeError(f"{responder}: generator did not finish in {args.timeout}s")
        return Result(responder, args.n, done["established"], done["failed"],
                      done["elapsed"], cpu1 - cpu0, rss1 - rss0, rss0,
                      done["generator_cpu_s"], args.ts, args.auth)  # fmt: skip
    finally:
        with contextlib.suppress(BrokenPipeError):
            gen.stdin.close()
        try:
            gen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            harness.stop_pid(gen.pid, sig=signal.SIGKILL)
        harness.untrack(gen.pid)


def bench_ikev2d(harness: Any, sandbox: Any, workdir: Path, psk: str,
                 args: argparse.Namespace) -> Result:  # fmt: skip
    extra: dict[str, Any] = {}
    if args.auth == "rsa2048":
        pki = Path(args.pki)
        extra = {
            "local_auth": {"auth": "pubkey", "certs": [str(pki / "b.pem")],
                           "key": str(pki / "b-key.pem")},
            "remote_auth": {"auth": "pubkey", "cacerts": [str(pki / "ca.pem")]},
        }  # fmt: skip
    conn = harness.Ikev2dConn(
        name="bench", local_addr=B6, remote_addr="%any", ike_proposals=[IKE_PROPOSAL],
        esp_proposals=[ESP_PROPOSAL], local_id=ID_B, remote_id=ID_A, psk=psk,
        local_ts=[TS_B], remote_ts=[str(TS_POOL)], initiate=False, **extra,
    )  # fmt: skip
    d = harness.Ikev2d(sandbox, "ss-b", workdir / f"ikev2d-{args.auth}", [B6], [conn],
                       log_level="warning")  # fmt: skip
    # no state_file: rewriting a 10,000-SA snapshot on every change would be the benchmark
    lines = d.config.read_text().splitlines()
    d.config.write_text("\n".join(ln for ln in lines if not ln.startswith("state_file")))
    d.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and d.running():
            if _listening(sandbox, "ss-b", 500):
                break
            time.sleep(0.1)
        if not d.running():
            raise RuntimeError(f"ikev2d responder exited:\n{d.log()[-2000:]}")
        return drive(harness, sandbox, "ikev2d", d.pid, psk, args)
    finally:
        d.stop()


def _listening(sandbox: Any, ns: str, port: int) -> bool:
    r = sandbox.run(["ip", "netns", "exec", ns, "ss", "-Hlun", f"sport = :{port}"],
                    check=False)  # fmt: skip
    return bool(r.stdout.strip())


def charon_bench_conf(state: Path, psk: str, policies: bool,
                      auth: str = "psk") -> tuple[str, str]:  # fmt: skip
    """strongswan.conf and swanctl.conf for the charon responder, written for the bench:
    thresholds that would throttle one busy peer raised, a larger IKE_SA table, little
    logging; libipsec as in peer.sh (this kernel has no ESP)."""
    strongswan = f"""# bench/handshake.py: charon responder under load
charon {{
    load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey gmp curve25519 aes sha1 sha2 hmac gcm kdf kernel-libipsec kernel-netlink socket-default vici
    install_routes = no
    # defaults (5 half-open per peer IP, cookies past 30 half-open) would throttle the one
    # generator address; the generator keeps at most 128 half-open
    block_threshold = 100000
    cookie_threshold = 100000
    init_limit_half_open = 0
    ikesa_table_size = 4096
    ikesa_table_segments = 16
    retransmit_tries = 3
    plugins {{
        vici {{
            socket = unix://{state}/b/charon.vici
        }}
    }}
    filelog {{
        charon {{
            path = {state}/b/charon.log
            append = no
            default = 0
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
    }}
}}
"""  # noqa: E501
    swanctl = f"""# bench/handshake.py
connections {{
    bench {{
        version = 2
        local_addrs = {B6}
        proposals = {IKE_PROPOSAL}
        encap = yes
        unique = no
        local {{
            auth = {"pubkey" if auth != "psk" else "psk"}
            id = {ID_B}{_charon_certs(auth, True)}
        }}
        remote {{
            auth = {"pubkey" if auth != "psk" else "psk"}
            id = {ID_A}{_charon_certs(auth, False)}
        }}
        children {{
            bench-net {{
                local_ts = {TS_B}
                remote_ts = {TS_POOL}
                esp_proposals = {ESP_PROPOSAL}
                mode = tunnel
                policies = {"yes" if policies else "no"}
            }}
        }}
    }}
}}
secrets {{
    ike-bench {{
        id-a = {ID_A}
        id-b = {ID_B}
        secret = {psk}
    }}
}}
"""
    return strongswan, swanctl


def _charon_certs(auth: str, local: bool) -> str:
    if auth == "psk":
        return ""
    return "\n            certs = bench-b.pem" if local else "\n            cacerts = bench-ca.pem"


def bench_charon(harness: Any, sandbox: Any, peer: Any, psk: str,
                 args: argparse.Namespace) -> Result:  # fmt: skip
    state: Path = peer.state
    old = peer.charon_pid("b")
    if old is not None:
        harness.stop_pid(old)
    strongswan, swanctl = charon_bench_conf(state, psk, args.charon_policies, args.auth)
    if args.auth == "rsa2048":  # credentials where swanctl --load-all finds them
        import shutil as _sh

        sw = state / "b" / "swanctl"
        pki = Path(args.pki)
        _sh.copy(pki / "ca.pem", sw / "x509ca" / "bench-ca.pem")
        _sh.copy(pki / "b.pem", sw / "x509" / "bench-b.pem")
        _sh.copy(pki / "b-key.pem", sw / "private" / "bench-b-key.pem")
    (state / "b" / "strongswan.conf").write_text(strongswan)
    (state / "b" / "swanctl" / "swanctl.conf").write_text(swanctl)
    run = state / "b" / "run"
    run.mkdir(exist_ok=True)
    (state / "b" / "charon.vici").unlink(missing_ok=True)
    charon = os.environ.get("CHARON", "/usr/lib/ipsec/charon")
    # like peer.sh: a private mount namespace so charon's /run/charon.pid is ours alone
    argv = sandbox.netns("ss-b", [
        "unshare", "--mount", "--propagation", "private", "sh", "-c",
        'mount --bind "$1/run" /run && exec env STRONGSWAN_CONF="$1/strongswan.conf" "$2"',
        "sh", str(state / "b"), charon,
    ])  # fmt: skip
    with open(state / "b" / "charon.stdout", "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    harness.track(proc.pid)
    (state / "b" / "charon.pid").write_text(f"{proc.pid}\n")
    try:
        deadline = time.monotonic() + 10
        while not (state / "b" / "charon.vici").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bench charon did not start: see {state}/b/charon.log")
            time.sleep(0.1)
        peer.swanctl("b", "--load-all", "--noprompt")
        return drive(harness, sandbox, "charon", proc.pid, psk, args)
    finally:
        harness.stop_pid(proc.pid, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def orchestrate(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("bench/handshake.py: needs root (network namespaces)", file=sys.stderr)
        return 2
    import tempfile

    import harness  # tests/interop/harness.py: netns sandbox, peer.sh, ikev2d runner

    responders = args.responder.split(",")
    if "charon" in responders and not os.access(
        os.environ.get("CHARON", "/usr/lib/ipsec/charon"), os.X_OK
    ):
        print("bench/handshake.py: charon not installed", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="ikev2d-bench-"))
    auths = args.auth.split(",")
    for a in auths:
        if a not in AUTHS:
            raise SystemExit(f"unknown --auth {a!r} (one of {', '.join(AUTHS)})")
    if "rsa2048" in auths:
        args.pki = str(workdir / "pki")
        make_pki(Path(args.pki))
    sandbox = harness.Sandbox()
    peer = harness.Peer(sandbox, workdir / "peer")
    results: list[Result] = []
    try:
        peer.start(only="b", IKE_PROPOSAL=IKE_PROPOSAL, ESP_PROPOSAL=ESP_PROPOSAL,
                   OUTER="v6")  # fmt: skip
        psk = peer.psk_secret("b")
        old = peer.charon_pid("b")
        if old is not None:  # ikev2d first; the bench charon is started on its own config
            harness.stop_pid(old)
        for auth in auths:
            args.auth = auth
            for r in responders:
                if r == "ikev2d":
                    res = bench_ikev2d(harness, sandbox, workdir, psk, args)
                elif r == "charon":
                    res = bench_charon(harness, sandbox, peer, psk, args)
                else:
                    raise SystemExit(f"unknown responder {r!r}")
                results.append(res)
                print(res.line(), flush=True)
                if args.verbose:
                    print(f"  # {res}", file=sys.stderr)
            ratio = ratio_line(auth, results)
            if ratio is not None:
                print(ratio, flush=True)
    finally:
        peer.stop()
        sandbox.close()
        harness.reap_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"# kept {workdir}", file=sys.stderr)
    return 0 if all(r.established == r.n for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10000, help="IKE SAs per responder (10000)")
    p.add_argument("--quick", action="store_true", help="N = 200, a smoke test")
    p.add_argument("--window", type=int, default=0,
                   help="max half-open SAs (128; 32 with --auth rsa2048)")
    p.add_argument("--responder", default="ikev2d,charon", help="ikev2d,charon (both)")
    p.add_argument("--timeout", type=float, default=900, help="per responder, seconds")
    p.add_argument(
        "--ts",
        choices=("distinct", "shared"),
        default="distinct",
        help="initiator inner addresses: one /128 per SA (default) or one for all",
    )
    p.add_argument(
        "--charon-policies",
        action="store_true",
        help="let charon install IPsec policies too (libipsec: O(N) per SA)",
    )
    p.add_argument("--auth", default="psk",
                   help="psk, rsa2048 (certificates), or both: psk,rsa2048 (default psk)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--verbose", "-v", action="store_true")
    # internal: the load generator inside ss-a
    p.add_argument("--generator", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--local", default=A6, help=argparse.SUPPRESS)
    p.add_argument("--remote", default=B6, help=argparse.SUPPRESS)
    p.add_argument("--psk", default="", help=argparse.SUPPRESS)
    p.add_argument("--pki", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n = 200
    if args.generator:
        return run_generator(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
