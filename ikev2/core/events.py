"""What the core reports (aioquic-style small frozen dataclasses). The daemon logs them,
the API publishes them; snapshots are plain values, never live SA objects."""

from __future__ import annotations

from dataclasses import dataclass

Endpoint = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ChildSaInfo:
    child_id: int
    name: str
    reqid: int
    protocol: str  # "esp" | "ah"
    mode: str  # "tunnel" | "transport"
    spi_in: int
    spi_out: int
    suite: str  # strongSwan proposal syntax, e.g. "aes128gcm16-noesn"
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    encap: bool
    state: str
    installed_at: float
    rekey_at: float | None = None
    expire_at: float | None = None
    local: str = ""  # outer (tunnel or SA) addresses; they follow MOBIKE / K-bit moves
    remote: str = ""


@dataclass(frozen=True, slots=True)
class IkeSaInfo:
    ike_id: int
    name: str
    state: str
    initiator: bool
    local: Endpoint
    remote: Endpoint
    local_id: str
    remote_id: str
    spi_i: int
    spi_r: int
    suite: str  # e.g. "aes128gcm16-prfsha256-x25519"
    nat_local: bool
    nat_remote: bool
    encap: bool
    mobike: bool
    established_at: float | None
    children: tuple[ChildSaInfo, ...]
    rekey_at: float | None = None
    expire_at: float | None = None
    local_vips: tuple[str, ...] = ()  # assigned to us through the CP (RFC 7296 §2.19)
    remote_vips: tuple[str, ...] = ()  # assigned by us to the peer
    home_prefix: str = ""  # MIP6_HOME_PREFIX assigned (RFC 5026 §4.4), either direction


@dataclass(frozen=True, slots=True)
class IkeSaEstablished:
    ike: IkeSaInfo


@dataclass(frozen=True, slots=True)
class IkeSaFailed:
    """Establishment failed; nothing of this IKE SA remains."""

    ike_id: int
    name: str
    reason: str
    notify: str | None = None


@dataclass(frozen=True, slots=True)
class IkeSaDeleted:
    ike_id: int
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ChildSaEstablished:
    ike_id: int
    child: ChildSaInfo


@dataclass(frozen=True, slots=True)
class ChildSaFailed:
    ike_id: int
    name: str
    reason: str
    notify: str | None = None


@dataclass(frozen=True, slots=True)
class ChildSaDeleted:
    ike_id: int
    child_id: int
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class IkeSaRekeyed:
    """The IKE SA `old_ike_id` was replaced by `ike` (RFC 7296 §2.8); its CHILD_SAs moved."""

    old_ike_id: int
    ike: IkeSaInfo


@dataclass(frozen=True, slots=True)
class IkeSaUpdated:
    """The IKE SA (and its CHILD_SAs) moved to other addresses (RFC 4555, RFC 4877)."""

    old_local: Endpoint
    old_remote: Endpoint
    ike: IkeSaInfo


@dataclass(frozen=True, slots=True)
class IkeSaUpdateFailed:
    """An address update we started did not happen and the IKE SA keeps its addresses:
    the peer refused our UPDATE_SA_ADDRESSES (RFC 4555 §3.5; `notify` names its error), or
    the kernel refused a K-bit move (RFC 4877 §4.4). `local`/`remote` were asked for."""

    ike_id: int
    name: str
    local: Endpoint
    remote: Endpoint
    reason: str
    notify: str | None = None


@dataclass(frozen=True, slots=True)
class IkeSaAlive:
    """The peer answered a liveness check asked for with `Engine.check_liveness` (an empty
    INFORMATIONAL, RFC 7296 §2.4). `rtt`: seconds from the check to the answer, waiting
    for an exchange already in flight included (window size 1, §2.3)."""

    ike_id: int
    name: str
    rtt: float


@dataclass(frozen=True, slots=True)
class ChildSaRekeyed:
    """CHILD_SA `old_child_id` was replaced by `child` (RFC 7296 §2.8)."""

    ike_id: int
    old_child_id: int
    child: ChildSaInfo


Event = (
    IkeSaEstablished | IkeSaFailed | IkeSaDeleted | IkeSaRekeyed | IkeSaUpdated
    | IkeSaUpdateFailed | IkeSaAlive | ChildSaEstablished | ChildSaFailed | ChildSaDeleted
    | ChildSaRekeyed
)


@dataclass(frozen=True, slots=True)
class Datagram:
    """A UDP datagram to send. `data` excludes the non-ESP marker; the daemon adds it when
    either port is the NAT-T port (RFC 3948 §2.2)."""

    data: bytes
    local: Endpoint
    remote: Endpoint
