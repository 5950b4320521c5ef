"""Interop harness: strongSwan charon (via /work/shared/interop/peer.sh) against ikev2d, both
in network namespaces ss-a / ss-b.

Isolation: peer.sh's namespace names are fixed (ss-a, ss-b) and `peer.sh start` deletes
existing ones, so two test runs on one machine would break each other. Every command here
runs inside a private mount namespace (a "holder" process that mounted its own tmpfs on
/run/netns), so *our* ss-a/ss-b are invisible to anyone else, and vanish with the holder.

Every long-lived process (holder, charon, ikev2d) is stopped by PID by the fixture that
started it, and recorded for the session safety net (`reap_all`, scripts/test.sh).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PEER_SH = Path(os.environ.get("IKEV2D_PEER_SH", "/work/shared/interop/peer.sh"))

# peer.sh topology (peer.sh header / interop README)
A6, B6 = "2001:db8:1::1", "2001:db8:1::2"
A4, B4 = "192.0.2.1", "192.0.2.2"
IN_A6, IN_A4 = "2001:db8:a::1", "198.51.100.1"
IN_B6, IN_B4 = "2001:db8:b::1", "203.0.113.1"
ID_A, ID_B = "user@example.org", "gw.example.org"
PSK_TEXT = "peer.sh test psk, not a secret"

# ------------------------------------------------------------------ process bookkeeping


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_tracked: dict[int, str] = {}
_watch_files: list[Path] = []  # pid lists of the live sandboxes' watchdogs


def track(pid: int) -> None:
    """Remember a process we started; scripts/test.sh kills leftovers from its pid dir, and
    each sandbox's watchdog kills them if this (pytest) process dies without cleaning up."""
    start = _start_time(pid)
    if start is None:
        return
    _tracked[pid] = start
    for f in _watch_files:
        with f.open("a") as fh:
            fh.write(f"{pid} {start}\n")
    base = os.environ.get("IKEV2D_TEST_TMP")
    if base:
        d = Path(base) / "pids"
        d.mkdir(parents=True, exist_ok=True)
        (d / str(pid)).write_text(start)


def untrack(pid: int) -> None:
    _tracked.pop(pid, None)
    base = os.environ.get("IKEV2D_TEST_TMP")
    if base:
        (Path(base) / "pids" / str(pid)).unlink(missing_ok=True)


def alive(pid: int, start: str | None = None) -> bool:
    st = _start_time(pid)
    if st is None:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z" and (start is None or st == start)


def stop_pid(pid: int, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """SIGTERM, wait, SIGKILL: only if `pid` is still the process we recorded."""
    start = _tracked.get(pid) or _start_time(pid)
    if start is None or not alive(pid, start):
        untrack(pid)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid, start):
        time.sleep(0.05)
    if alive(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    untrack(pid)


def reap_all() -> list[int]:
    """Kill whatever this session started and did not stop (a crashed fixture)."""
    killed = []
    for pid, start in list(_tracked.items()):
        if alive(pid, start):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        untrack(pid)
    return killed


# ------------------------------------------------------------------ sandbox


# The holder: mounts a private /run/netns, says "ready", then waits for the process that
# started it ($1) to go away. If that process dies without closing the sandbox (SIGKILL,
# crash), the holder kills every process recorded in $2 ("pid starttime" lines, checked
# against /proc so a recycled PID is left alone) and exits: our namespaces vanish with it.
_HOLDER = r"""
mount -t tmpfs -o size=1m,mode=755 ikev2d-test /run/netns || exit 1
echo ready
while kill -0 "$1" 2>/dev/null; do sleep 1; done
while read -r pid start; do
    cur=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20)
    [ -n "$cur" ] && [ "$cur" = "$start" ] && kill -9 "$pid" 2>/dev/null
done < "$2"
"""


class Sandbox:
    """A private mount namespace with its own /run/netns (see the module docstring)."""

    def __init__(self) -> None:
        import tempfile

        Path("/run/netns").mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="ikev2d-sandbox-", suffix=".pids")
        os.close(fd)
        self.watch_file = Path(name)
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _HOLDER,
             "holder", str(os.getpid()), name],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, start_new_session=True,
        )  # fmt: skip
        track(self.proc.pid)
        _watch_files.append(self.watch_file)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.close()
            raise RuntimeError(f"netns sandbox did not start: {line!r}")
        self.prefix = ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", "--"]

    def cmd(self, argv: Sequence[str]) -> list[str]:
        return [*self.prefix, *argv]

    def netns(self, ns: str, argv: Sequence[str]) -> list[str]:
        return self.cmd(["ip", "netns", "exec", ns, *argv])

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:  # fmt: skip
        r = subprocess.run(
            self.cmd(argv), capture_output=True, text=True, timeout=timeout, env=env,
            check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if check and r.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(argv)} -> {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n"
                f"{r.stderr}"
            )
        return r

    def close(self) -> None:
        if self.watch_file in _watch_files:
            _watch_files.remove(self.watch_file)
        self.watch_file.unlink(missing_ok=True)
        stop_pid(self.proc.pid, timeout=2, sig=signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()


class NetnsBed:
    """Namespaces built by `_build` inside a Sandbox; `ip(ns, ...)` runs `ip -n ns ...`."""

    def __init__(self) -> None:
        self.sb = Sandbox()
        try:
            self._build()
        except BaseException:
            self.sb.close()
            raise

    def _build(self) -> None:
        raise NotImplementedError

    def ip(self, ns: str, *args: str) -> None:
        self.sb.run(["ip", "-n", ns, *args])

    def path(self, ns: str) -> str:
        """The namespace as a path this process can open (setns)."""
        return f"/proc/{self.sb.proc.pid}/root/run/netns/{ns}"


# ------------------------------------------------------------------ charon via peer.sh


def parse_vici_raw(text: str) -> list[dict[str, Any]]:
    """`swanctl --list-sas --raw` → one dict per "list-sa event": {ike_name: {...}}.
    Sections become dicts, `k=[a b]` lists, everything else strings."""
    events: list[dict[str, Any]] = []
    tok = re.compile(r"\s*(?:(\})|([^\s={}]+)\s*(=\[([^\]]*)\]|=([^\s}]*)|\{))")
    for line in text.splitlines():
        m = re.match(r"(\S+) event \{", line)
        if not m or m.group(1) != "list-sa":
            continue
        pos = m.end()
        root: dict[str, Any] = {}
        stack = [root]
        while stack and pos < len(line):
            t = tok.match(line, pos)
            if t is None:
                if line[pos:].strip() == "":
                    break
                raise ValueError(f"cannot parse swanctl raw output at {line[pos : pos + 40]!r}")
            pos = t.end()
            if t.group(1):
                stack.pop()
            elif t.group(3) == "{":
                new: dict[str, Any] = {}
                stack[-1][t.group(2)] = new
                stack.append(new)
            elif t.group(4) is not None:
                stack[-1][t.group(2)] = t.group(4).split()
            else:
                stack[-1][t.group(2)] = t.group(5)
        events.append(root)
    return events


@dataclass
class CharonSa:
    name: str
    ike: dict[str, Any]

    @property
    def children(self) -> list[dict[str, Any]]:
        return list(self.ike.get("child-sas", {}).values())


class Peer:
    """peer.sh in a sandbox: `start`, `swanctl`, config and log access for instance a|b."""

    def __init__(self, sandbox: Sandbox, state: Path) -> None:
        self.sb = sandbox
        self.state = state
        self.env_base = {**os.environ, "PEER_STATE": str(state)}
        self.running: list[str] = []

    def sh(self, *args: str, env: dict[str, str] | None = None, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self.sb.run(
            ["bash", str(PEER_SH), *args],
            env={**self.env_base, **(env or {})},
            check=check,
            timeout=timeout,
        )

    def start(self, only: str | None = None, **knobs: str) -> None:
        env = dict(knobs)
        if only:
            env["ONLY"] = only
        self.running = []
        self.sh("start", env=env)
        for i in "ab":
            pid = self.charon_pid(i)
            if pid is not None:
                track(pid)
                self.running.append(i)

    def charon_pid(self, inst: str) -> int | None:
        p = self.state / inst / "charon.pid"
        try:
            pid = int(p.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def stop(self) -> None:
        pids = [p for p in (self.charon_pid(i) for i in "ab") if p is not None]
        try:
            self.sh("stop", check=False, timeout=30)
        finally:
            for pid in pids:  # peer.sh stop kills them; make sure, by PID
                stop_pid(pid, timeout=2, sig=signal.SIGKILL)

    def swanctl(self, inst: str, *args: str, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return self.sh("swanctl", inst, *args, check=check, timeout=timeout)

    def list_sas(self, inst: str) -> list[CharonSa]:
        out = self.swanctl(inst, "--list-sas", "--raw").stdout
        return [CharonSa(n, d) for ev in parse_vici_raw(out) for n, d in ev.items()]

    def log(self, inst: str) -> str:
        try:
            return (self.state / inst / "charon.log").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, inst: str, n: int = 60) -> str:
        return "\n".join(self.log(inst).splitlines()[-n:])

    def generated_conf(self, inst: str) -> str:
        return (self.state / inst / "swanctl" / "swanctl.conf").read_text()

    def psk_secret(self, inst: str = "b") -> str:
        """The PSK as peer.sh wrote it into the secrets section ("0x..." hex)."""
        m = re.search(r"secret\s*=\s*(\S+)", self.generated_conf(inst))
        assert m, "no PSK in peer.sh's swanctl.conf"
        return m.group(1)

    def load_conf(self, inst: str, text: str) -> None:
        """Replace the instance's swanctl.conf and load it (conns not in it are unloaded)."""
        (self.state / inst / "swanctl" / "swanctl.conf").write_text(text)
        self.swanctl(inst, "--load-all", "--noprompt")

    def terminate_all(self, inst: str) -> None:
        for sa in self.list_sas(inst):
            uid = sa.ike.get("uniqueid")
            if uid:
                self.swanctl(inst, "--terminate", "--ike-id", uid, "--force", "--timeout", "5",
                             check=False)  # fmt: skip


def swanctl_conf(
    inst: str, psk: str, conns: dict[str, tuple[str, str]], ike_proposal: str,
    esp_proposal: str, *, encap: bool = True, conn_options: dict[str, str] | None = None,
    child_options: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """A swanctl.conf for instance a|b (written here, same facts as peer.sh's): one PSK
    connection per entry of conns = {name: (local_addr, remote_addr)}, each with one child
    `<name>-net` between the two sides' inner addresses. `conn_options` / `child_options`
    add swanctl.conf settings (e.g. {"dpd_delay": "2s"}, {"rekey_time": "0"}) to every
    connection / child."""
    conn_extra = "".join(f"\n    {k} = {v}" for k, v in (conn_options or {}).items())
    child_extra = "".join(f"\n        {k} = {v}" for k, v in (child_options or {}).items())
    if inst == "a":
        me, peer = ID_A, ID_B
        lts, rts = f"{IN_A6}/128,{IN_A4}/32", f"{IN_B6}/128,{IN_B4}/32"
    else:
        me, peer = ID_B, ID_A
        lts, rts = f"{IN_B6}/128,{IN_B4}/32", f"{IN_A6}/128,{IN_A4}/32"
    parts = ["# written by tests/interop/harness.py", "connections {"]
    for name, (local, remote) in conns.items():
        parts.append(f"""\
  {name} {{
    version = 2
    local_addrs = {local}
    remote_addrs = {remote}
    proposals = {ike_proposal}
    encap = {"yes" if encap else "no"}
    mobike = yes{conn_extra}
    local {{
      auth = psk
      id = {me}
    }}
    remote {{
      auth = psk
      id = {peer}
    }}
    children {{
      {name}-net {{
        local_ts = {lts}
        remote_ts = {rts}
        esp_proposals = {esp_proposal}
        mode = tunnel{child_extra}
      }}
    }}
  }}""")
    parts += ["}", "secrets {", "  ike-psk {", f"    id-a = {ID_A}", f"    id-b = {ID_B}",
              f"    secret = {psk}", "  }", "}", ""]  # fmt: skip
    return "\n".join(parts)


# ------------------------------------------------------------------ ikev2d


def ikev2d_argv() -> list[str]:
    """The `ikev2d` entry point of the interpreter running the tests (a venv's or pyenv's),
    else the same module through this interpreter."""
    exe = Path(sys.executable).parent / "ikev2d"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("ikev2d")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from ikev2.daemon.main import main; "
            "sys.exit(main())"]  # fmt: skip


def toml_str(s: str) -> str:
    return json.dumps(s)


def toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(toml_str(i) for i in items) + "]"


def toml_value(v: object) -> str:
    """str, bool, int, float, a list of str or a dict (an inline table) as TOML."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return toml_str(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


@dataclass
class Ikev2dConn:
    name: str
    local_addr: str
    remote_addr: str  # "%any" for a responder
    ike_proposals: Sequence[str]
    esp_proposals: Sequence[str]
    local_id: str
    remote_id: str
    psk: str
    local_ts: Sequence[str]
    remote_ts: Sequence[str]
    initiate: bool
    # extra keys of the connection / its child, e.g. {"rekey_time": "12s",
    # "retransmit": {"timeout": 1, "tries": 2}} / {"rekey_time": "8s", "rand_time": "0s"}
    options: dict[str, Any] = field(default_factory=dict)
    child_options: dict[str, Any] = field(default_factory=dict)
    # keys of [connections.X.local] / [connections.X.remote] over id and auth = "psk", e.g.
    # {"auth": "pubkey", "certs": [...], "key": "..."}; a value None drops the key
    local_auth: dict[str, Any] = field(default_factory=dict)
    remote_auth: dict[str, Any] = field(default_factory=dict)

    def _side(self, ident: str, over: dict[str, Any]) -> str:
        keys = {"id": ident, "auth": "psk", **over}
        return "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items() if v is not None)

    def toml(self) -> str:
        c = f"connections.{self.name}"
        extra = "".join(f"{k} = {toml_value(v)}\n" for k, v in self.options.items())
        child_extra = "".join(f"{k} = {toml_value(v)}\n" for k, v in self.child_options.items())
        return f"""
[{c}]
local_addrs = {toml_list([self.local_addr])}
remote_addrs = {toml_list([self.remote_addr])}
ike_proposals = {toml_list(self.ike_proposals)}
encap = false
mobike = true
psk = {toml_str(self.psk)}
{extra}
[{c}.local]
{self._side(self.local_id, self.local_auth)}
[{c}.remote]
{self._side(self.remote_id, self.remote_auth)}
[{c}.children.net]
local_ts = {toml_list(self.local_ts)}
remote_ts = {toml_list(self.remote_ts)}
mode = "tunnel"
esp_proposals = {toml_list(self.esp_proposals)}
start_action = {toml_str("initiate" if self.initiate else "none")}
{child_extra}"""


class Ikev2d:
    """One ikev2d in a namespace of the sandbox, with its config, log and state file."""

    def __init__(self, sandbox: Sandbox, ns: str, workdir: Path, listen: Sequence[str],
                 conns: Sequence[Ikev2dConn], *, log_level: str = "debug") -> None:  # fmt: skip
        self.sb = sandbox
        self.ns = ns
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "ikev2d.toml"
        self.state_file = workdir / "sas.json"
        self.log_file = workdir / "ikev2d.log"
        text = f"""# written by tests/interop/harness.py
[daemon]
listen = {toml_list(listen)}
ike_port = 500
natt_port = 4500
kernel = "memory"
log_level = {toml_str(log_level)}
state_file = {toml_str(str(self.state_file))}
""" + "".join(c.toml() for c in conns)
        self.config.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.state_file.unlink(missing_ok=True)
        argv = self.sb.netns(self.ns, [*ikev2d_argv(), "--config", str(self.config)])
        with open(self.log_file, "wb") as logf:
            # nsenter and `ip netns exec` exec(): the Popen pid is ikev2d's own
            self.proc = subprocess.Popen(
                argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        track(self.proc.pid)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 8.0) -> int | None:
        if self.proc is None:
            return None
        stop_pid(self.proc.pid, timeout=timeout)
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def state(self) -> list[dict[str, Any]]:
        try:
            doc = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return []
        return list(doc.get("ike_sas", []))

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Until the state file exists (written at start-up) or the daemon died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state_file.exists():
                return
            if not self.running():
                raise AssertionError(f"ikev2d exited ({self.proc and self.proc.returncode}):\n"
                                     f"{self.log()[-3000:]}")  # fmt: skip
            time.sleep(0.05)
        raise AssertionError(f"ikev2d wrote no state file in {timeout}s:\n{self.log()[-3000:]}")

    def wait_established(self, timeout: float = 20.0) -> dict[str, Any]:
        """The first IKE SA with state ESTABLISHED and at least one installed child."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sa in self.state():
                if is_established(sa) and sa.get("children"):
                    return sa
            if not self.running():
                break
            time.sleep(0.05)
        raise AssertionError(
            f"ikev2d: no established IKE SA with a CHILD_SA within {timeout}s; state "
            f"{self.state()}\n--- ikev2d log (tail)\n{self.log()[-4000:]}"
        )

    def wait_log(self, pattern: str, timeout: float = 20.0) -> re.Match[str] | None:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline:
            m = rx.search(self.log())
            if m:
                return m
            if not self.running():
                return rx.search(self.log())
            time.sleep(0.1)
        return None


def is_established(sa: dict[str, Any]) -> bool:
    return str(sa.get("state", "")).upper() in ("ESTABLISHED", "IKESTATE.ESTABLISHED")


# ------------------------------------------------------------------ algorithm names

_CHARON_ENCR = {"AES_GCM_16": "aes{}gcm16", "AES_CBC": "aes{}", "AES_GCM_12": "aes{}gcm12",
                "AES_GCM_8": "aes{}gcm8", "CHACHA20_POLY1305": "chacha20poly1305",
                "AES_CTR": "aes{}ctr", "AES_CCM_16": "aes{}ccm16"}  # fmt: skip
_CHARON_INTEG = {"HMAC_SHA2_256_128": "sha256", "HMAC_SHA2_384_192": "sha384",
                 "HMAC_SHA2_512_256": "sha512", "HMAC_SHA1_96": "sha1",
                 "AES_XCBC_96": "aesxcbc", "AES_CMAC_96": "aescmac"}  # fmt: skip
_CHARON_PRF = {"PRF_HMAC_SHA2_256": "prfsha256", "PRF_HMAC_SHA2_384": "prfsha384",
               "PRF_HMAC_SHA2_512": "prfsha512", "PRF_HMAC_SHA1": "prfsha1",
               "PRF_AES128_XCBC": "prfaesxcbc", "PRF_AES128_CMAC": "prfaescmac"}  # fmt: skip
_CHARON_DH = {"CURVE_25519": "x25519", "CURVE_448": "x448", "MODP_2048": "modp2048",
              "MODP_3072": "modp3072", "MODP_4096": "modp4096", "ECP_256": "ecp256",
              "ECP_384": "ecp384", "ECP_521": "ecp521", "MODP_1024": "modp1024"}  # fmt: skip
_DH_ALIASES = {"curve25519": "x25519", "curve448": "x448"}


@dataclass(frozen=True)
class Suite:
    """Canonical algorithms of one SA in strongSwan proposal keywords."""

    encr: str
    integ: str | None = None
    prf: str | None = None
    dh: str | None = None
    esn: bool = False


def charon_ike_suite(ike: dict[str, Any]) -> Suite:
    return Suite(
        encr=_charon_encr(ike),
        integ=_CHARON_INTEG.get(ike.get("integ-alg", ""), ike.get("integ-alg")),
        prf=_CHARON_PRF.get(ike.get("prf-alg", ""), ike.get("prf-alg")),
        dh=_CHARON_DH.get(ike.get("dh-group", ""), ike.get("dh-group")),
    )


def charon_child_suite(child: dict[str, Any]) -> Suite:
    return Suite(
        encr=_charon_encr(child),
        integ=_CHARON_INTEG.get(child.get("integ-alg", ""), child.get("integ-alg")),
        esn=child.get("esn") in ("1", "yes"),
    )


def _charon_encr(d: dict[str, Any]) -> str:
    alg = d.get("encr-alg", "?")
    fmt = _CHARON_ENCR.get(alg)
    return fmt.format(d.get("encr-keysize", "")) if fmt else alg


_ENCR_RX = re.compile(r"^(aes\d+(?:gcm\d+|ccm\d+|ctr)?|chacha20poly1305|3des|null)$")


def parse_suite(text: str, *, ike: bool) -> Suite:
    """ikev2d's suite string (strongSwan syntax, e.g. "aes256-sha256-prfsha256-modp2048",
    "aes128gcm16-noesn") → Suite. An IKE suite without a prf keyword takes the PRF that
    matches its integrity algorithm, as strongSwan's proposal syntax does."""
    encr = integ = prf = dh = None
    esn = False
    for t in text.lower().split("-"):
        if _ENCR_RX.match(t):
            encr = t
        elif t.startswith("prf"):
            prf = t
        elif t in ("esn", "noesn"):
            esn = t == "esn"
        elif re.match(r"^(modp\d+|ecp\d+|x25519|x448|curve25519|curve448)$", t):
            dh = _DH_ALIASES.get(t, t)
        elif re.match(r"^(sha\d*|aesxcbc|aescmac|sha256_96)$", t):
            integ = t
    if ike and prf is None and integ is not None:
        prf = "prf" + integ
    return Suite(encr or "?", integ, prf, dh if ike else None, esn)


def proposal_suite(proposal: str, *, ike: bool) -> Suite:
    """A configured strongSwan proposal (one algorithm of each kind) → Suite."""
    return parse_suite(proposal, ike=ike)


def iter_children(sa: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from sa.get("children", [])


# ------------------------------------------------------------------ the acceptance check


def _net(s: str) -> str:
    """'2001:db8:a::1/128' / '198.51.100.1/32[udp/...]' → canonical network text."""
    import ipaddress

    base = s.split("[", 1)[0].strip()
    try:
        return str(ipaddress.ip_network(base, strict=False))
    except ValueError:
        return base


def compare_sa(
    ours: dict[str, Any], theirs: CharonSa, *, ike_proposal: str, esp_proposal: str,
    ikev2d_initiator: bool,
) -> list[str]:  # fmt: skip
    """Every way ikev2d's state-file SA and charon's list-sas SA disagree (empty = same)."""
    bad: list[str] = []
    ike = theirs.ike

    def check(what: str, mine: object, charon: object) -> None:
        if mine != charon:
            bad.append(f"{what}: ikev2d {mine!r} != charon {charon!r}")

    check("IKE state", "ESTABLISHED", ike.get("state"))
    check("ikev2d IKE state", True, is_established(ours))
    check("SPIi", f"{ours.get('spi_i', -1):016x}", ike.get("initiator-spi"))
    check("SPIr", f"{ours.get('spi_r', -1):016x}", ike.get("responder-spi"))
    check("initiator role", ikev2d_initiator, bool(ours.get("initiator")))
    check("charon role", ikev2d_initiator, ike.get("initiator") != "yes")
    want_ike = proposal_suite(ike_proposal, ike=True)
    check("IKE suite (ikev2d vs proposal)", parse_suite(str(ours.get("suite")), ike=True), want_ike)
    check("IKE suite (charon vs proposal)", charon_ike_suite(ike), want_ike)
    check("local id", ours.get("local_id"), ike.get("remote-id"))
    check("remote id", ours.get("remote_id"), ike.get("local-id"))
    local, remote = ours.get("local", ["?", 0]), ours.get("remote", ["?", 0])
    check("local address", _net(str(local[0])), _net(str(ike.get("remote-host"))))
    check("remote address", _net(str(remote[0])), _net(str(ike.get("local-host"))))
    # charon fakes a NAT (encap=yes): both must have floated to 4500
    check("local port", int(local[1]), int(ike.get("remote-port", 0)))
    check("remote port", int(remote[1]), int(ike.get("local-port", 0)))
    check("NAT-T port", 4500, int(local[1]))
    kids_c = theirs.children
    kids_o = list(iter_children(ours))
    check("number of CHILD_SAs", len(kids_o), len(kids_c))
    if len(kids_o) == 1 and len(kids_c) == 1:
        c, o = kids_c[0], kids_o[0]
        check("CHILD_SA state (charon)", "INSTALLED", c.get("state"))
        check("CHILD SPI ikev2d in = charon out", f"{o.get('spi_in', -1):08x}", c.get("spi-out"))
        check("CHILD SPI ikev2d out = charon in", f"{o.get('spi_out', -1):08x}", c.get("spi-in"))
        want_esp = proposal_suite(esp_proposal, ike=False)
        check("ESP suite (ikev2d vs proposal)", parse_suite(str(o.get("suite")), ike=False),
              want_esp)  # fmt: skip
        check("ESP suite (charon vs proposal)", charon_child_suite(c), want_esp)
        check("mode", str(o.get("mode", "")).upper(), c.get("mode"))
        check("protocol", str(o.get("protocol", "")).upper(), c.get("protocol"))
        check("UDP encapsulation", bool(o.get("encap")), c.get("encap") == "yes")
        check("local TS", sorted(_net(t) for t in o.get("local_ts", [])),
              sorted(_net(t) for t in c.get("remote-ts", [])))  # fmt: skip
        check("remote TS", sorted(_net(t) for t in o.get("remote_ts", [])),
              sorted(_net(t) for t in c.get("local-ts", [])))  # fmt: skip
    return bad
