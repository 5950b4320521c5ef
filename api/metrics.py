"""`GET /metrics`: Prometheus text format (version 0.0.4), from core events and daemon
counters. Exchange and retransmission counts need counters the core does not keep yet
(docs/api.md lists them)."""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

from ikev2.core.events import IkeSaEstablished, IkeSaFailed

# handshake latency buckets (seconds): loopback is milliseconds, real paths 10s of ms
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
IKE_STATES = ("CREATED", "CONNECTING", "ESTABLISHED", "REKEYING", "REKEYED", "DELETING")

_EVENTS_HELP = "Core events by type (ike-up, ike-down, ike-failed, ike-rekey, ...)."


class Metrics:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.events: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()  # IKE SA establishment failures by notify
        self.latency_counts = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.requests: Counter[tuple[str, int]] = Counter()  # (method, status)

    def on_event(self, type_: str, event: object) -> None:
        """Called for every core event before the daemon forgets when it initiated."""
        self.events[type_] += 1
        if isinstance(event, IkeSaFailed):
            self.failures[event.notify or "none"] += 1
        elif isinstance(event, IkeSaEstablished):
            started = self.daemon.initiated_at.get(event.ike.ike_id)
            if started is not None:
                seconds = max(0.0, self.daemon.clock() - started)
                self.latency_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
                self.latency_sum += seconds

    def render(self, states: dict[str, int], children: int, streams: int) -> str:
        d = self.daemon
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {_num(value)}")

        all_states = dict.fromkeys(IKE_STATES, 0) | states
        metric("ikev2_ike_sas", "gauge", "IKE SAs by state.",
               [(f'{{state="{s}"}}', n) for s, n in sorted(all_states.items())])
        metric("ikev2_child_sas", "gauge", "CHILD SAs of all IKE SAs.", [("", children)])
        metric("ikev2_connections", "gauge", "Connections loaded.",
               [("", len(d.connections))])
        metric("ikev2_events_total", "counter", _EVENTS_HELP,
               [(f'{{type="{t}"}}', n) for t, n in sorted(self.events.items())])
        metric("ikev2_ike_failures_total", "counter",
               "IKE SAs that failed to establish, by the notify that ended them.",
               [(f'{{notify="{n}"}}', c) for n, c in sorted(self.failures.items())])
        metric("ikev2_datagrams_received_total", "counter", "IKE datagrams given to the engine.",
               [("", d.received)])
        metric("ikev2_datagrams_sent_total", "counter", "IKE datagrams sent.", [("", d.sent)])
        metric("ikev2_datagrams_dropped_total", "counter",
               "Datagrams dropped because handling them raised.", [("", d.dropped)])
        name = "ikev2_handshake_seconds"
        out.append(f"# HELP {name} Time from initiating an IKE SA to its establishment "
                   "(IKE SAs this daemon initiated).")
        out.append(f"# TYPE {name} histogram")
        total = 0
        for bound, n in zip(BUCKETS, self.latency_counts, strict=False):
            total += n
            out.append(f'{name}_bucket{{le="{_num(bound)}"}} {total}')
        total += self.latency_counts[-1]
        out.append(f'{name}_bucket{{le="+Inf"}} {total}')
        out.append(f"{name}_sum {_num(self.latency_sum)}")
        out.append(f"{name}_count {total}")
        metric("ikev2_api_event_streams", "gauge", "Open event streams.", [("", streams)])
        metric("ikev2_api_requests_total", "counter", "API requests answered, by status.",
               [(f'{{method="{m}",status="{s}"}}', n)
                for (m, s), n in sorted(self.requests.items())])
        return "\n".join(out) + "\n"


def _num(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))
