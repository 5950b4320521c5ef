"""Sans-IO engine cost per IKE SA (no sockets): CPU time the responder engine spends on
IKE_SA_INIT + IKE_AUTH with one CHILD_SA, PSK, x25519, AES-GCM-128. Prints one line per
role. Usage: python3 bench/core.py [N]"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ikev2.config.model import EngineConfig
from tests.core.harness import Pair, esp, ike, make_conn, mirror


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    pair = Pair(engine_config=EngineConfig(cookie_threshold=10**9))
    conn = make_conn(ike_props=ike("aes128gcm16-prfsha256-x25519"), esp_props=esp("aes128gcm16"),
                     send_initial_contact=False)
    pair.a.engine.load_connection(conn)
    pair.b.engine.load_connection(mirror(conn))
    a, b = pair.a.engine, pair.b.engine
    cpu = {"a": 0.0, "b": 0.0}
    clock = time.process_time
    for _ in range(n):
        t = clock()
        a.initiate("home", pair.now)
        out = a.datagrams_to_send()
        cpu["a"] += clock() - t
        while out:
            t = clock()
            for d in out:
                b.receive_datagram(d.data, d.remote, d.local, pair.now)
            back = b.datagrams_to_send()
            while b.next_event() is not None:
                pass
            cpu["b"] += clock() - t
            t = clock()
            for d in back:
                a.receive_datagram(d.data, d.remote, d.local, pair.now)
            out = a.datagrams_to_send()
            while a.next_event() is not None:
                pass
            cpu["a"] += clock() - t
    assert len(b.by_id) == n and all(s.state.value == "ESTABLISHED" for s in b.by_id.values())
    for role, name in (("b", "responder"), ("a", "initiator")):
        print(f"core {name} n={n} cpu_ms_per_sa={cpu[role] / n * 1000:.3f}")


if __name__ == "__main__":
    main()
