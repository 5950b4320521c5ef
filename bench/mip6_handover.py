"""Mobile IPv6 K-bit handover latency: from the care-of address change on the mobile node
to (a) the MN's REST handover done, (b) the Binding Acknowledgement received by the MN,
(c) the home agent's IKE SA (and its tunnel CHILD_SAs) moved.

    sudo python3 bench/mip6_handover.py            # n = 20 moves
    sudo python3 bench/mip6_handover.py --n 50 -v

Prints:

    mip6 handover n=20 rest_ms_median=... ba_ms_median=... ha_moved_ms_median=...
        (max rest_ms=... ba_ms=... ha_moved_ms=...)          [one line]

Target: (c) <= 10 ms.

Setup: tests/mobility/testbed.py — two namespaces joined by two veth pairs, ikev2d in each
(memory kernel, REST API on a UNIX socket, log level warning) and an `ikev2-mip6` agent in
each (separate processes, log level info), MH over UDP on port 4191 ESP-protected with
the BU/BA SA, K bit, the agents' default `ike_move = "after-ba"`. A move is
break-before-make: the old CoA is removed (not timed: the MN then has no CoA), then t0 is
taken just before this process adds the new CoA (`nodad`) over its own rtnetlink socket in
the MN's namespace; the kernel has applied it when the ACK comes back.

The end points are taken by the agents themselves (their `events_file`, CLOCK_MONOTONIC,
the same clock in every process of the host): (a) the MN agent's `ike-moved` (its REST
`POST /ike-sas/{id}/handover` answered 200 "moved"), (b) its `ba` (the BA decoded), (c)
the HA agent's `ike-moved` (its REST handover answered, i.e. ikev2d has moved the IKE SA
and its CHILD_SAs in the kernel backend). In the K-bit order (4877-15) the HA moves
before it sends the BA and the MN after it receives it, so c < b < a. What (c) includes:
the netlink notification to the MN agent, choosing the CoA, rebinding the BU socket, ESP
on the BU (the BU/BA SA, keys fetched from the MN's ikev2d before the first move), the BU
over veth, ESP verification on the HA, the HA agent's two concurrent REST lookups (the
BU/BA CHILD_SA still protecting the HoA; the identity's IKE SAs) and the REST handover.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.handover import RTM_NEWADDR, Rtnl
from tests.mobility.testbed import COA1, COA2, LINK, NS_MN, MipNet, Testbed


def first_after(events: list[dict], t0: float, name: str, **match: object) -> float | None:
    for e in events:
        if e["t"] >= t0 and e["event"] == name and all(e.get(k) == v for k, v in match.items()):
            return float(e["t"])
    return None


def timeline(bed: Testbed, t0: float) -> str:
    """Every agent event of this move, ms after t0 (-v)."""
    evs = [("mn", e) for e in bed.mn_events() if e["t"] >= t0]
    evs += [("ha", e) for e in bed.ha_events() if e["t"] >= t0]
    evs.sort(key=lambda x: x[1]["t"])
    return " ".join(f"{who}:{e['event']}@{(e['t'] - t0) * 1000:.2f}" for who, e in evs)


def run(bed: Testbed, n: int, verbose: bool) -> str:
    rtnl = Rtnl(bed.net.path(NS_MN), *LINK.values())
    rest: list[float] = []
    ba: list[float] = []
    ha: list[float] = []
    try:
        cur = COA1
        for i in range(n):
            new = COA2 if cur == COA1 else COA1
            mark = time.monotonic()
            bed.net.ip(NS_MN, "addr", "del", f"{cur}/64", "dev", LINK[cur])
            bed.wait(lambda mark=mark: first_after(bed.mn_events(), mark, "coa-change",
                                                   new=None), "the MN without a CoA")
            request = rtnl.message(RTM_NEWADDR, new, LINK[new])
            t0 = time.monotonic()
            rtnl.send(request)

            def done(t0: float = t0, new: str = new) -> tuple[float, float, float] | None:
                mn_ev, ha_ev = bed.mn_events(), bed.ha_events()
                a = first_after(mn_ev, t0, "ike-moved", local=new)
                b = first_after(mn_ev, t0, "ba", coa=new)
                c = first_after(ha_ev, t0, "ike-moved", remote=new)
                return (a, b, c) if a and b and c else None  # type: ignore[return-value]

            a, b, c = bed.wait(done, f"move {i + 1} to {new}")
            rest.append((a - t0) * 1000)
            ba.append((b - t0) * 1000)
            ha.append((c - t0) * 1000)
            if verbose:
                print(f"  {cur} -> {new}: rest_ms={rest[-1]:.2f} ba_ms={ba[-1]:.2f} "
                      f"ha_moved_ms={ha[-1]:.2f}  [{timeline(bed, t0)}]")
            cur = new
    finally:
        rtnl.close()
    med = statistics.median
    return (f"mip6 handover n={n} rest_ms_median={med(rest):.2f} ba_ms_median={med(ba):.2f} "
            f"ha_moved_ms_median={med(ha):.2f} (max rest_ms={max(rest):.2f} "
            f"ba_ms={max(ba):.2f} ha_moved_ms={max(ha):.2f})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20, help="moves (default 20)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every move")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("mip6_handover: needs root (network namespaces)", file=sys.stderr)
        return 2
    net = MipNet()
    try:
        bed = Testbed(net, log_level="warning", agent_log="info", dpd_delay=None)
        try:
            line = run(bed, args.n, args.verbose)
        finally:
            bed.close()
    finally:
        net.close()
    print(line)
    print("target: ha_moved_ms <= 10")
    return 0


if __name__ == "__main__":
    sys.exit(main())
