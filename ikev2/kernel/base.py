"""The kernel port: what the core asks of an IPsec data plane (RFC 4301 SAD/SPD).

The core calls it synchronously; backends (`memory`, `xfrm`) implement it. Algorithms are
given as IKEv2 transform IDs; each backend maps them to its own names.

Backends also report what the data plane decides on its own (`KernelEvent`: lifetime
expiries, acquires from trap policies, migrations done by others, NAT mapping changes).
They expose them through `KernelEventSource`: a file descriptor an event loop watches and
a non-blocking `read_events()`; `ikev2.kernel.events_bridge` feeds them to the engine.
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
    soft_time: int = 0  # kernel add-expire seconds (soft: EXPIRE event, hard: SA deleted)
    hard_time: int = 0
    mark: int = 0  # XFRM mark value/mask on both SAs and all policies (mask 0: no mark)
    mark_mask: int = 0
    if_id: int = 0  # XFRM interface ID (0: none)
    priority: int = 0  # policy priority override (0: derived from the selectors)


@dataclass(frozen=True, slots=True)
class ChildSaStats:
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0


class KernelPort(Protocol):
    """Raise ikev2.errors.KernelError on failure; a failed install leaves nothing behind.

    `protocol` arguments take the IKEv2 Protocol ID (ProtocolId.ESP = 3, AH = 2) the core
    uses; backends also accept the IP protocol numbers (50, 51)."""

    def alloc_spi(self, local: str, remote: str, protocol: int) -> int: ...

    def install_child(self, spec: ChildSaSpec, *, outbound: bool = True) -> None:
        """Both SAs and the policies; with `outbound=False` the outbound SA waits for
        `install_outbound` (a rekey responder keeps sending on the old SA, 7296-64)."""
        ...

    def install_outbound(self, spec: ChildSaSpec) -> None:
        """The outbound SA of a CHILD_SA installed with `outbound=False` (no-op otherwise).
        Sharing the old SA's reqid, it takes over the outbound traffic (XFRM prefers the
        newest valid SA of a template)."""
        ...

    def remove_child(self, spec: ChildSaSpec) -> None: ...

    def release_spi(self, local: str, spi: int, protocol: int) -> None: ...

    def child_stats(self, spec: ChildSaSpec) -> ChildSaStats: ...

    def install_trap(self, spec: ChildSaSpec) -> None:
        """Policies for `spec`'s selectors whose template names `spec.reqid` but no SA:
        matching traffic makes the kernel ask for one (ACQUIRE). A CHILD_SA installed later
        with the same reqid shares these policies; they stay until `remove_trap`. SPIs and
        keys in `spec` are ignored."""
        ...

    def remove_trap(self, spec: ChildSaSpec) -> None: ...

    def migrate_child(
        self, spec: ChildSaSpec, local: str, remote: str, encap: tuple[int, int] | None
    ) -> ChildSaSpec:
        """Move an installed CHILD_SA's SAs (keeping SPIs, keys and sequence numbers) and
        its policies' tunnel endpoints to new outer addresses / UDP encapsulation (RFC 4555
        §3.5, RFC 4877 K bit). Traffic selectors equal to the old outer host address
        follow the move. Returns the spec now installed; pass that one from then on."""
        ...


def ip_protocol(protocol: int) -> int:
    """IKEv2 Protocol ID (2 AH, 3 ESP) or IP protocol number → IP protocol number."""
    return {2: IPPROTO_AH, 3: IPPROTO_ESP}.get(protocol, protocol)


def ike_protocol(protocol: int) -> int:
    """IP protocol number (50, 51) or IKEv2 Protocol ID → IKEv2 Protocol ID."""
    return {IPPROTO_AH: 2, IPPROTO_ESP: 3}.get(protocol, protocol)


def moved_selectors(
    selectors: tuple[TrafficSelector, ...], old: str, new: str
) -> tuple[TrafficSelector, ...]:
    """Selectors with the single-host selector of outer address `old` replaced by `new`
    (same protocol and ports): host-address selectors follow an SA move (REQUIREMENTS X-05)."""
    old_host = TrafficSelector.from_network(old)
    out: list[TrafficSelector] = []
    for ts in selectors:
        if (ts.start_addr, ts.end_addr, ts.ts_type) == (
            old_host.start_addr, old_host.end_addr, old_host.ts_type
        ):
            host = TrafficSelector.from_network(new)
            ts = TrafficSelector(
                host.ts_type, ts.ip_proto, ts.start_port, ts.end_port, host.start_addr,
                host.end_addr,
            )
        out.append(ts)
    return tuple(out)


# --- kernel events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildSaExpired:
    """A soft (rekey now) or hard (SA gone) lifetime expiry of one SA of an installed
    CHILD_SA (XFRM_MSG_EXPIRE, REQUIREMENTS X-12). `spi_in` names the CHILD_SA the way the
    core does; `spi`/`inbound` say which of its two SAs expired."""

    reqid: int
    spi_in: int
    spi: int
    inbound: bool
    hard: bool
    protocol: int = 3  # IKEv2 Protocol ID


@dataclass(frozen=True, slots=True)
class AcquireRequest:
    """Outbound traffic hit a policy without SAs (XFRM_MSG_ACQUIRE, REQUIREMENTS X-12).
    `reqid` is the core's reqid when the policy is this daemon's, else 0 (`kernel_reqid`
    is the template's). `src`/`dst` are the triggering packet's addresses."""

    reqid: int
    kernel_reqid: int
    local: str
    remote: str
    src: str
    dst: str
    proto: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class SaMove:
    reqid: int  # the core's reqid, 0 when not this daemon's
    kernel_reqid: int
    mode: str
    old_local: str
    old_remote: str
    new_local: str
    new_remote: str


@dataclass(frozen=True, slots=True)
class SaMigrated:
    """The kernel migrated SAs (XFRM_MSG_MIGRATE notification, REQUIREMENTS X-07): the
    K-bit hook a mobility daemon uses. `own` is True when this backend's migrate_child
    caused it (the core must not move the IKE SA a second time). `km_local`/`km_remote`
    are the addresses IKE should use from now on (XFRMA_KMADDRESS), when given."""

    direction: int
    moves: tuple[SaMove, ...]
    km_local: str | None = None
    km_remote: str | None = None
    own: bool = False


@dataclass(frozen=True, slots=True)
class NatMappingChanged:
    """The peer's NAT mapping of a UDP-encapsulated SA changed (XFRM_MSG_MAPPING)."""

    reqid: int
    spi_in: int
    old: tuple[str, int]
    new: tuple[str, int]


@dataclass(frozen=True, slots=True)
class KernelEventsLost:
    """Events were dropped (netlink ENOBUFS): resynchronise from the SA table (X-18)."""

    reason: str = "netlink receive buffer overflow"


KernelEvent = ChildSaExpired | AcquireRequest | SaMigrated | NatMappingChanged | KernelEventsLost


class KernelEventSource(Protocol):
    """How a backend delivers KernelEvents: watch `event_fileno()` for readability, then
    `read_events()` (never blocks; [] when nothing is pending)."""

    def event_fileno(self) -> int | None: ...

    def read_events(self) -> list[KernelEvent]: ...
