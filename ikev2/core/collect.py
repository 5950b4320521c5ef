"""One pass over a message's payloads, sorted by kind, so each handler states what it
needs instead of re-scanning (libreswan's per-exchange payload declarations, simplified)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ikev2.protocol.enums import NotifyType
from ikev2.protocol.payloads import KE, SA, Nonce, Notify, TSi, TSr


@dataclass(slots=True)
class Collected:
    sa: SA | None = None
    nonce: Nonce | None = None
    ke: KE | None = None
    tsi: TSi | None = None
    tsr: TSr | None = None
    notifies: list[Notify] = field(default_factory=list)

    def notify(self, kind: NotifyType) -> Notify | None:
        for n in self.notifies:
            if n.type == kind:
                return n
        return None

    def has(self, kind: NotifyType) -> bool:
        return self.notify(kind) is not None

    @property
    def error(self) -> Notify | None:
        """The first error notify (types below 16384, RFC 7296 §3.10.1)."""
        for n in self.notifies:
            if n.type < 16384:
                return n
        return None


def collect(payloads: list) -> Collected:
    c = Collected()
    for p in payloads:
        if isinstance(p, Notify):
            c.notifies.append(p)
        elif isinstance(p, SA):
            c.sa = p
        elif isinstance(p, Nonce):
            c.nonce = p
        elif isinstance(p, KE):
            c.ke = p
        elif isinstance(p, TSi):
            c.tsi = p
        elif isinstance(p, TSr):
            c.tsr = p
    return c
