"""IKE SA and CHILD_SA state (RFC 7296 §2). Plain slotted objects owned by the engine;
the outside world only ever sees the snapshots in `ikev2.core.events`."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ikev2.config.model import ChildConfig, ConnectionConfig, Identity
from ikev2.core.events import ChildSaInfo, Endpoint, IkeSaInfo

if TYPE_CHECKING:
    from ikev2.kernel.base import ChildSaSpec


class IkeState(StrEnum):
    CREATED = "CREATED"  # initiator, IKE_SA_INIT not yet answered
    INIT_DONE = "CONNECTING"  # keys derived, IKE_AUTH in progress
    ESTABLISHED = "ESTABLISHED"
    REKEYING = "REKEYING"  # our IKE rekey request is outstanding (§2.8)
    REKEYED = "REKEYED"  # replaced by a new IKE SA; only its delete remains
    DELETING = "DELETING"
    DELETED = "DELETED"


LIVE_IKE = frozenset({IkeState.ESTABLISHED, IkeState.REKEYING})


class ChildState(StrEnum):
    INSTALLED = "INSTALLED"
    REKEYING = "REKEYING"  # our rekey request is outstanding
    REKEYED = "REKEYED"  # a new CHILD_SA replaced it; its delete is pending
    DELETING = "DELETING"
    DELETED = "DELETED"


# (exchange, payloads, on_response) — a request waiting for the window (RFC 7296 §2.3)
QueuedRequest = tuple[int, list[Any], Callable[..., None] | None]


class Pending:
    """Our one outstanding request (window size 1) and its retransmission state (§2.1, §2.4)."""

    __slots__ = (
        "datagrams", "deadline", "exchange", "message_id", "on_response", "sent", "update",
    )

    def __init__(
        self,
        message_id: int,
        exchange: int,
        datagrams: list[bytes],
        on_response: Callable[..., None] | None,
        deadline: float,
    ) -> None:
        self.message_id = message_id
        self.exchange = exchange
        self.datagrams = datagrams
        self.on_response = on_response
        self.deadline = deadline
        self.sent = 1
        self.update = False  # a MOBIKE UPDATE_SA_ADDRESSES request


class ChildSa:
    __slots__ = (
        "child_id",
        "collision",
        "config",
        "established_at",
        "expire_at",
        "outbound",
        "rekey_at",
        "replaces",
        "spec",
        "state",
        "suite",
        "transforms",
    )

    def __init__(
        self, child_id: int, config: ChildConfig, spec: ChildSaSpec, suite: str, now: float
    ) -> None:
        self.child_id = child_id
        self.config = config
        self.spec = spec
        self.suite = suite
        self.state = ChildState.INSTALLED
        self.established_at = now
        self.transforms: tuple = ()
        self.rekey_at: float | None = None  # soft lifetime (§2.8), jittered
        self.expire_at: float | None = None  # hard lifetime
        # the peer's rekey of this SA that we answered while ours was outstanding (§2.8.1):
        # (the ChildSa it created, its Ni, our Nr)
        self.collision: tuple[ChildSa, bytes, bytes] | None = None
        # a rekey responder's new SA sends nothing until the SA it `replaces` is deleted
        # (7296-64): `outbound` False until then
        self.outbound = True
        self.replaces: ChildSa | None = None

    def info(self) -> ChildSaInfo:
        s = self.spec
        return ChildSaInfo(
            child_id=self.child_id,
            name=self.config.name,
            reqid=s.reqid,
            protocol="esp" if s.protocol == 3 else "ah",
            mode=s.mode,
            spi_in=s.spi_in,
            spi_out=s.spi_out,
            suite=self.suite,
            local_ts=tuple(str(t) for t in s.local_ts),
            remote_ts=tuple(str(t) for t in s.remote_ts),
            encap=s.encap is not None,
            state=self.state.value,
            installed_at=self.established_at,
            rekey_at=self.rekey_at,
            expire_at=self.expire_at,
            local=s.local,
            remote=s.remote,
        )


class IkeSa:
    """One IKE SA, from the first IKE_SA_INIT to its deletion."""

    __slots__ = (
        "auth_octets_peer",
        "candidates",
        "child_request",
        "children",
        "conn",
        "cookie",
        "create_reqs",
        "crypter_in",
        "crypter_out",
        "deadline",
        "dh",
        "dh_group",
        "due",
        "encap",
        "established_at",
        "first_child",
        "frag_in",
        "fragmentation",
        "home_prefix",
        "ike_id",
        "init_remote",
        "init_request",
        "init_response",
        "init_retries",
        "initiator",
        "keys",
        "last_in",
        "last_request_hash",
        "last_response",
        "local",
        "local_id",
        "local_vips",
        "mobike",
        "moving",
        "nat_local",
        "nat_remote",
        "next_id_in",
        "next_id_out",
        "ni",
        "nr",
        "peer_addrs",
        "peer_certreq",
        "peer_hashes",
        "peer_window",
        "pending",
        "prf",
        "queue",
        "reauth_of",
        "rekey_collision",
        "rekeyed_to",
        "remote",
        "remote_id",
        "remote_vips",
        "sk_d",
        "sk_pi",
        "sk_pr",
        "spi_i",
        "spi_r",
        "state",
        "stats_in",
        "suite",
        "temp_failures",
        "transforms",
        "update_again",
    )

    def __init__(
        self,
        ike_id: int,
        initiator: bool,
        local: Endpoint,
        remote: Endpoint,
        conn: ConnectionConfig | None,
    ) -> None:
        self.ike_id = ike_id
        self.initiator = initiator
        self.local = local
        self.remote = remote
        self.conn = conn
        self.candidates: tuple[ConnectionConfig, ...] = ()
        self.state = IkeState.CREATED
        self.spi_i = b""
        self.spi_r = b"\0" * 8
        self.ni = b""
        self.nr = b""
        self.dh: Any = None
        self.dh_group = 0
        self.cookie: bytes | None = None
        self.init_request = b""
        self.init_remote: Endpoint | None = None
        self.init_retries = 0
        self.init_response = b""
        self.auth_octets_peer = b""
        self.prf: Any = None
        self.transforms: tuple[tuple[int, int, int | None], ...] = ()
        self.suite = ""
        self.sk_d = b""
        self.keys: Any = None
        self.sk_pi = b""
        self.sk_pr = b""
        self.crypter_in: Any = None
        self.crypter_out: Any = None
        self.next_id_out = 0
        self.next_id_in = 0
        self.pending: Pending | None = None
        self.queue: list[QueuedRequest] = []
        self.last_response: tuple[int, list[bytes]] | None = None
        self.last_request_hash = 0
        self.children: dict[int, ChildSa] = {}
        self.child_request: Any = None
        self.local_id: Identity | None = None
        self.remote_id: Identity | None = None
        self.nat_local = False
        self.nat_remote = False
        self.encap = False
        self.mobike = False
        self.established_at: float | None = None
        self.deadline: float | None = None
        # named deadlines besides retransmission: "half_open", "rekey", "expire", "dpd",
        # "retry" (after TEMPORARY_FAILURE), "rekeyed" (old SA awaiting its delete)
        self.due: dict[str, float] = {}
        self.last_in = 0.0  # time of the last authenticated inbound message (§2.4)
        self.stats_in = 0  # inbound ESP bytes of all children at the last liveness check
        self.peer_window = 1  # SET_WINDOW_SIZE from the peer (§2.3); we send one at a time
        self.temp_failures = 0
        # the peer's IKE rekey we answered while ours was outstanding (§2.8.2):
        # (the IkeSa it created, its Ni, our Nr)
        self.rekey_collision: tuple[IkeSa, bytes, bytes] | None = None
        self.rekeyed_to: IkeSa | None = None
        self.create_reqs: list[Any] = []  # our CREATE_CHILD_SA requests, sent or queued
        self.reauth_of: int | None = None  # the IKE SA this one reauthenticates
        self.first_child: ChildConfig | None = None  # the CHILD_SA of IKE_AUTH, if not the first
        self.peer_addrs: tuple[str, ...] = ()  # the peer's ADDITIONAL_* list (RFC 4555 §3.6)
        self.moving: Any = None  # MOBIKE: the addresses before an unanswered UPDATE
        self.update_again = False
        # RFC 7383: both sides sent IKEV2_FRAGMENTATION_SUPPORTED (§2.3); the fragments of
        # the message being reassembled, one per direction ("request" / "response", §2.6)
        self.fragmentation = False
        self.frag_in: dict[str, Any] = {}
        # RFC 7427 §4: the peer's SIGNATURE_HASH_ALGORITHMS (None: it sent none); RFC 7296
        # §3.7: the CA key hashes of the peer's CERTREQ payloads
        self.peer_hashes: tuple[int, ...] | None = None
        self.peer_certreq: frozenset[bytes] = frozenset()
        # RFC 7296 §2.19 / RFC 5026 §4.4: addresses assigned through the CP in IKE_AUTH (to
        # us: local, to the peer: remote) and the home prefix (str, e.g. "2001:db8::/64")
        self.local_vips: tuple[str, ...] = ()
        self.remote_vips: tuple[str, ...] = ()
        self.home_prefix = ""

    @property
    def name(self) -> str:
        return self.conn.name if self.conn is not None else "?"

    @property
    def local_spi(self) -> bytes:
        return self.spi_i if self.initiator else self.spi_r

    def info(self) -> IkeSaInfo:
        return IkeSaInfo(
            ike_id=self.ike_id,
            name=self.name,
            state=self.state.value,
            initiator=self.initiator,
            local=self.local,
            remote=self.remote,
            local_id=str(self.local_id) if self.local_id else "",
            remote_id=str(self.remote_id) if self.remote_id else "",
            spi_i=int.from_bytes(self.spi_i or b"\0", "big"),
            spi_r=int.from_bytes(self.spi_r or b"\0", "big"),
            suite=self.suite,
            nat_local=self.nat_local,
            nat_remote=self.nat_remote,
            encap=self.encap,
            mobike=self.mobike,
            established_at=self.established_at,
            children=tuple(c.info() for c in self.children.values()),
            rekey_at=self.due.get("rekey"),
            expire_at=self.due.get("expire"),
            local_vips=self.local_vips,
            remote_vips=self.remote_vips,
            home_prefix=self.home_prefix,
        )
