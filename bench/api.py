"""REST API cost with many SAs: N IKE SAs (default 10,000, one CHILD_SA each) established
between two in-memory engines (tests/core/harness.Pair, real IKE_SA_INIT + IKE_AUTH), the
initiator's engine held by a Daemon whose API listens on 127.0.0.1; then the time to list
them all (GET /ike-sas) and to fetch one (GET /ike-sas/{id}) over HTTP/1.1 keep-alive.

    python3 bench/api.py [N] [--lists 30] [--gets 2000]

Prints, e.g.:
    setup n=10000 seconds=9.8
    api list-cold n=10000 ms=...           (first list: renders every SA's JSON once)
    api list n=10000 median_ms=... p99_ms=... bytes=...
    api get median_ms=... p99_ms=...
    api list-filtered n=... median_ms=...  (?state=ESTABLISHED&connection=home)
Targets: list <= 100 ms, get p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import random
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from api.server import ApiServer
from ikev2.config.model import EngineConfig
from ikev2.daemon.runner import Daemon
from ikev2.daemon.settings import ApiConfig, DaemonConfig
from tests.core.harness import Pair, esp, ike, make_conn, mirror


def establish(n: int) -> tuple[Pair, object]:
    pair = Pair(engine_config=EngineConfig(cookie_threshold=10**9))
    conn = make_conn(ike_props=ike("aes128gcm16-prfsha256-x25519"),
                     esp_props=esp("aes128gcm16"), send_initial_contact=False)
    a, b = pair.a.engine, pair.b.engine
    a.load_connection(conn)
    b.load_connection(mirror(conn))
    for _ in range(n):
        a.initiate("home", pair.now)
        out = a.datagrams_to_send()
        while out:
            for d in out:
                b.receive_datagram(d.data, d.remote, d.local, pair.now)
            back = b.datagrams_to_send()
            out = []
            for d in back:
                a.receive_datagram(d.data, d.remote, d.local, pair.now)
            out = a.datagrams_to_send()
        while b.next_event() is not None:
            pass
        while a.next_event() is not None:
            pass
    return pair, conn


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def timed_get(conn: http.client.HTTPConnection, path: str, token: str) -> tuple[float, int]:
    t = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - t
    if resp.status != 200:
        raise SystemExit(f"GET {path}: {resp.status} {body[:200]!r}")
    return elapsed * 1000, len(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", nargs="?", type=int, default=10000)
    ap.add_argument("--lists", type=int, default=30)
    ap.add_argument("--gets", type=int, default=2000)
    args = ap.parse_args()

    t = time.perf_counter()
    pair, conn = establish(args.n)
    engine = pair.a.engine
    up = sum(1 for s in engine.ike_sas() if s.state == "ESTABLISHED")
    print(f"setup n={up} seconds={time.perf_counter() - t:.1f}", flush=True)
    if up != args.n:
        raise SystemExit(f"only {up} of {args.n} IKE SAs established")

    tmp = tempfile.mkdtemp(prefix="ikev2d-bench-")
    api_config = ApiConfig(enabled=True, listen=("127.0.0.1",), port=0,
                           token_file=os.path.join(tmp, "token"))
    daemon = Daemon(DaemonConfig(connections=(conn,), api=api_config), engine,  # type: ignore
                    clock=lambda: pair.now)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = ApiServer(daemon, api_config)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    host, port = server.addresses[0]
    http_conn = http.client.HTTPConnection(host, port, timeout=60)
    token = server.token

    cold, size = timed_get(http_conn, "/ike-sas", token)
    print(f"api list-cold n={up} ms={cold:.1f} bytes={size}", flush=True)
    lists = [timed_get(http_conn, "/ike-sas", token)[0] for _ in range(args.lists)]
    print(f"api list n={up} median_ms={statistics.median(lists):.1f} "
          f"p99_ms={percentile(lists, 99):.1f} bytes={size}", flush=True)
    ids = [s.ike_id for s in engine.ike_sas()]
    rng = random.Random(1)
    gets = [timed_get(http_conn, f"/ike-sas/{rng.choice(ids)}", token)[0]
            for _ in range(args.gets)]
    print(f"api get median_ms={statistics.median(gets):.2f} p99_ms={percentile(gets, 99):.2f}",
          flush=True)
    filtered = [timed_get(http_conn, "/ike-sas?state=ESTABLISHED&connection=home", token)[0]
                for _ in range(max(3, args.lists // 3))]
    print(f"api list-filtered n={up} median_ms={statistics.median(filtered):.1f}", flush=True)
    http_conn.close()
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


if __name__ == "__main__":
    main()
