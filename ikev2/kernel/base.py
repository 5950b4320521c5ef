"""The kernel port: what the core asks of an IPsec data plane (RFC 4301 SAD/SPD).

The core calls it synchronously; backends (`memory`, `xfrm`) implement it. Algorithms are
given as IKEv2 transform IDs; each backend maps them to its own names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ikev2.protocol.ts import TrafficSelector

IPPROTO_ESP = 50
IPPROTO_AH = 51


@dataclass(frozen=True, slots=True)
class ChildSaSpec:
    """Everything needed to install one CHILD_SA (both directions) and its policies."""

    reqid: int
    protocol: int  # ProtocolId.ESP / AH
    mode: str  # "tunnel" | "transport"
    local: str  # outer addresses
    remote: str
    spi_in: int
    spi_out: int
    encr_id: int
    encr_key_bits: int | None
    integ_id: int  # 0 = none (AEAD)
    esn: bool
    encr_key_in: bytes
    encr_key_out: bytes
    integ_key_in: bytes
    integ_key_out: bytes
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    encap: tuple[int, int] | None = None  # UDP encapsulation (local port, remote port)
    replay_window: int = 32
    install_policies: bool = True
    soft_bytes: int = 0  # kernel lifetimes (XFRM soft/hard byte and packet limits; 0 = none)
    hard_bytes: int = 0
    soft_packets: int = 0
    hard_packets: int = 0


@dataclass(frozen=True, slots=True)
class ChildSaStats:
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0


class KernelPort(Protocol):
    """Raise ikev2.errors.KernelError on failure; a failed install leaves nothing behind."""

    def alloc_spi(self, local: str, remote: str, protocol: int) -> int: ...

    def install_child(self, spec: ChildSaSpec) -> None: ...

    def remove_child(self, spec: ChildSaSpec) -> None: ...

    def release_spi(self, local: str, spi: int, protocol: int) -> None: ...

    def child_stats(self, spec: ChildSaSpec) -> ChildSaStats: ...
