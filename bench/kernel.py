"""Benchmark the xfrm backend: install, read, migrate and remove N CHILD_SAs.

    sudo python3 bench/kernel.py                 # N = 1000, in a private network namespace
    /work/shared/tools/run-in-kernel.sh 'python3 bench/kernel.py --n 1000'   # with ESP

One CHILD_SA = ALLOCSPI + inbound SA + outbound SA + 3 tunnel-mode policies (out/in/fwd),
each pair with its own /128 selectors. Without ESP in the kernel (this machine's host) only
the SPI and policy part runs. Prints lines like

    kernel install n=1000 per_sa_us=412.3 ops=6/sa
    kernel migrate n=1000 per_sa_us=... method=native

Figures, never assertions (bench/README.md).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import ipaddress
import os
import subprocess
import sys
import time

from ikev2.errors import KernelError
from ikev2.kernel.base import ChildSaSpec
from ikev2.kernel.xfrm import XfrmKernel
from ikev2.kernel.xfrm.policies import wanted_policies
from ikev2.protocol.enums import EncrId
from ikev2.protocol.ts import TrafficSelector as TS

CLONE_NEWNET = 0x40000000
LOCAL, REMOTE, NEW_LOCAL = "2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::11"


def private_netns() -> None:
    """Move this process into a new, empty network namespace (never the host's tables)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        sys.exit(f"bench/kernel.py: unshare(CLONE_NEWNET): {os.strerror(err)} (run as root)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def spec(i: int, spi_in: int) -> ChildSaSpec:
    return ChildSaSpec(
        reqid=i + 1, protocol=3, mode="tunnel", local=LOCAL, remote=REMOTE, spi_in=spi_in,
        spi_out=0xD0000000 + i, encr_id=EncrId.AES_GCM_16, encr_key_bits=128, integ_id=0,
        esn=False, encr_key_in=os.urandom(20), encr_key_out=os.urandom(20),
        integ_key_in=b"", integ_key_out=b"",
        local_ts=(TS.from_network(str(ipaddress.IPv6Address("2001:db8:a::") + i + 1)),),
        remote_ts=(TS.from_network(str(ipaddress.IPv6Address("2001:db8:b::") + i + 1)),),
    )


def line(what: str, n: int, seconds: float, extra: str = "") -> None:
    print(f"kernel {what} n={n} per_sa_us={seconds / n * 1e6:.1f}{extra}", flush=True)


def has_esp(k: XfrmKernel) -> bool:
    s = spec(999_999, k.alloc_spi(LOCAL, REMOTE, 3))
    try:
        k.install_child(s)
    except KernelError as e:
        if e.errno in (errno.EPROTONOSUPPORT, errno.ENOSYS):
            k.release_spi(LOCAL, s.spi_in, 3)
            print(f"# no ESP in this kernel ({e}); SPIs and policies only", flush=True)
            return False
        raise
    k.remove_child(s)
    return True


def full(k: XfrmKernel, n: int) -> None:
    specs: list[ChildSaSpec] = []
    t = time.perf_counter()
    for i in range(n):
        s = spec(i, k.alloc_spi(LOCAL, REMOTE, 3))
        k.install_child(s)
        specs.append(s)
    line("install", n, time.perf_counter() - t, " ops=6/sa")
    t = time.perf_counter()
    for s in specs:
        k.child_stats(s)
    line("stats", n, time.perf_counter() - t)
    for method, native, target in (("native", True, NEW_LOCAL), ("readd", False, LOCAL)):
        k.use_migrate = native
        before = dict(k.migrations)
        t = time.perf_counter()
        specs = [k.migrate_child(s, target, REMOTE, None) for s in specs]
        used = "native" if k.migrations["native"] > before["native"] else "readd"
        line("migrate", n, time.perf_counter() - t, f" method={used}")
        if used != method:
            print(f"# asked for {method}, the backend used {used}", flush=True)
    t = time.perf_counter()
    for s in specs:
        k.remove_child(s)
    line("remove", n, time.perf_counter() - t)


def policies_only(k: XfrmKernel, n: int) -> None:
    k.start()
    wants = []
    t = time.perf_counter()
    for i in range(n):
        k.alloc_spi(LOCAL, REMOTE, 3)
        for w in wanted_policies(spec(i, 0), k.reqids.ref(i + 1), k.own):
            k.policies.add(i + 1, w)
            wants.append((i + 1, w))
    line("install-policies", n, time.perf_counter() - t, " ops=4/sa (allocspi + 3 policies)")
    t = time.perf_counter()
    for owner, w in wants:
        k.policies.remove(owner, w.key)
    line("remove-policies", n, time.perf_counter() - t)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000, help="CHILD_SAs (default 1000)")
    p.add_argument("--policies-only", action="store_true", help="skip SAs even with ESP")
    args = p.parse_args()
    private_netns()
    k = XfrmKernel()
    try:
        k.start()
        if not args.policies_only and has_esp(k):
            full(k, args.n)
        else:
            policies_only(k, args.n)
    finally:
        k.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
