"""The sans-IO IKEv2 engine: datagrams, time and commands in; datagrams, kernel calls and
events out. No sockets, no clock, no RNG of its own (ARCHITECTURE.md)."""

from __future__ import annotations

import heapq
import ipaddress
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import count

from ikev2.config.model import ConnectionConfig, DpdAction, EngineConfig
from ikev2.core import (
    child,
    cookies,
    create_child,
    fragments,
    ike_auth,
    ike_init,
    ike_rekey,
    informational,
    lifetimes,
    liveness,
    mobike,
    traps,
)
from ikev2.core.events import (
    Datagram,
    Endpoint,
    Event,
    IkeSaDeleted,
    IkeSaFailed,
    IkeSaInfo,
    IkeSaUpdated,
    IkeSaUpdateFailed,
)
from ikev2.core.sa import LIVE_IKE, ChildSa, ChildState, IkeSa, IkeState, Pending
from ikev2.errors import (
    DropMessage,
    IkeError,
    IntegrityError,
    InvalidMajorVersion,
    InvalidSyntax,
    UnusableAddress,
)
from ikev2.kernel.base import KernelPort
from ikev2.protocol.codec import build_message, parse_message
from ikev2.protocol.enums import ExchangeType, IkeFlags, NotifyType, ProtocolId
from ikev2.protocol.header import HEADER_LEN, Header, parse_header
from ikev2.protocol.payloads import Notify
from ikev2.protocol.sk import unprotect

log = logging.getLogger("ikev2.core")

_I = int(IkeFlags.INITIATOR)
_R = int(IkeFlags.RESPONSE)
_SA_INIT = int(ExchangeType.IKE_SA_INIT)
_AUTH = int(ExchangeType.IKE_AUTH)

RequestHandler = Callable[..., list]
REQUEST_HANDLERS: dict[int, RequestHandler] = {
    ExchangeType.IKE_AUTH: ike_auth.handle_request,
    ExchangeType.CREATE_CHILD_SA: create_child.handle_request,
    ExchangeType.INFORMATIONAL: informational.handle_request,
}


@dataclass(frozen=True, slots=True)
class IkeKeyExport:
    spi_i: bytes
    spi_r: bytes
    encr_id: int
    encr_key_bits: int | None
    integ_id: int
    sk_ei: bytes
    sk_er: bytes
    sk_ai: bytes
    sk_ar: bytes

    def __repr__(self) -> str:  # never log key material by accident
        return f"IkeKeyExport({self.spi_i.hex()}_i, <redacted>)"


class Engine:
    """One IKEv2 endpoint: all IKE SAs of a daemon. Drive it with receive_datagram,
    handle_timer and the commands; drain datagrams_to_send, next_event, get_timer."""

    def __init__(
        self,
        config: EngineConfig,
        kernel: KernelPort,
        random_bytes: Callable[[int], bytes],
        source_for: Callable[[str], str] | None = None,
        *,
        wall_time: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        self.kernel = kernel
        self.random = random_bytes
        self.source_for = source_for
        # POSIX time for certificate validity periods (the engine's `now` is monotonic);
        # None: certificate authentication fails with "no wall clock"
        self.wall_time = wall_time
        self.connections: dict[str, ConnectionConfig] = {}
        self.by_spi: dict[bytes, IkeSa] = {}
        self.by_id: dict[int, IkeSa] = {}
        self.half_open: dict[tuple[bytes, str, int], IkeSa] = {}
        self.half_open_by_ip: dict[str, int] = {}
        self.cookies = cookies.CookieJar(random_bytes(32))
        self.cookie_rotated: float | None = None
        self.local_addresses: tuple[str, ...] = ()  # for MOBIKE (set_local_addresses)
        self.traps: dict[int, object] = {}  # trap reqid -> the ChildSaSpec of its policies
        self.trap_reqids: dict[tuple[str, str], int] = {}  # (connection, child) -> reqid
        self._addresses_known = False
        self._out: list[Datagram] = []
        self._events: deque[Event] = deque()
        self._timers: list[tuple[float, int, int]] = []
        self._seq = count()
        self._ids = count(1)
        self._child_ids = count(1)
        self._reqids = count(1)
        self._err_tokens = 20.0
        self._err_time = 0.0

    # -- commands -----------------------------------------------------------------------
    def load_connection(self, conn: ConnectionConfig) -> None:
        """Add or replace a connection; its start_action = "trap" children get trap
        policies (kernel ACQUIREs then start them, see `on_acquire`)."""
        if conn.name in self.connections:
            traps.remove(self, conn.name)
        self.connections[conn.name] = conn
        traps.install(self, conn)

    def unload_connection(self, name: str) -> None:
        del self.connections[name]
        traps.remove(self, name)

    def on_acquire(self, reqid: int, now: float) -> bool:
        """The kernel saw traffic for a trap policy of ours (XFRM_MSG_ACQUIRE)."""
        return traps.on_acquire(self, reqid, now)

    def initiate(
        self, name: str, now: float, *, child: str | None = None, local: str | None = None
    ) -> int:
        """Start an IKE SA (with its first CHILD_SA: `child`, or the connection's first)
        for connection `name` (RFC 7296 §1.2), from `local` if given (else the first
        concrete local_addrs entry, else the routed source). UnusableAddress if `local`
        is not of the remote address's family or outside the connection's local_addrs;
        whether the host has it is the caller's business (no I/O here)."""
        conn = self.connections[name]
        first = conn.child(child) if child is not None else None
        if not conn.remote_addrs or conn.remote_addrs[0] in ("%any", "0.0.0.0", "::"):
            raise ValueError(f"connection {name!r} has no remote address to initiate to")
        remote_addr = conn.remote_addrs[0]
        if local is None:
            local_addr = self._local_address(conn, remote_addr)
        else:
            local_addr = self.check_local(name, local)
        port = self.config.ike_port
        sa = IkeSa(
            next(self._ids),
            True,
            (local_addr, conn.local_port or port),
            (remote_addr, conn.remote_port or port),
            conn,
        )
        sa.spi_i = self.new_ike_spi()
        sa.first_child = first
        self.by_spi[sa.spi_i] = sa
        self.by_id[sa.ike_id] = sa
        ike_init.start(self, sa, now)
        return sa.ike_id

    def check_local(self, name: str, local: str) -> str:
        """`local`, normalised, if connection `name` may initiate from it: a unicast
        address of the family of its remote address, within its local_addrs. KeyError for
        an unknown connection, UnusableAddress saying what to change otherwise. Whether
        this host has the address and a socket for it is for the daemon to check."""
        conn = self.connections[name]
        try:
            ip = ipaddress.ip_address(local)
        except ValueError:
            raise UnusableAddress(local, f"{local!r} is not an IP address") from None
        if ip.is_unspecified or ip.is_multicast:
            raise UnusableAddress(local, f"{ip} cannot be the source of an IKE SA; give "
                                  "one of this host's unicast addresses")
        remote_addr = conn.remote_addrs[0] if conn.remote_addrs else "%any"
        if remote_addr not in ("%any", "0.0.0.0", "::") and (
                ip.version != ipaddress.ip_address(remote_addr).version):
            raise UnusableAddress(local, f"{ip} is IPv{ip.version} but connection "
                                  f"{conn.name!r} initiates to {remote_addr}; give an "
                                  f"IPv{6 if ip.version == 4 else 4} address")
        if not ike_init._matches(conn.local_addrs, str(ip)):
            raise UnusableAddress(local, f"{ip} is not in the local_addrs of connection "
                                  f"{conn.name!r} ({', '.join(conn.local_addrs)}); give one "
                                  "of them, or set local_addrs = [\"%any\"]")
        return str(ip)

    def terminate(self, ike_id: int, now: float) -> None:
        """Delete an IKE SA and its CHILD_SAs (RFC 7296 §1.4.1)."""
        sa = self.by_id.get(ike_id)
        if sa is None:
            raise KeyError(ike_id)
        informational.delete_ike_sa(self, sa, now, "terminated locally")

    def shutdown(self, now: float) -> None:
        for sa in list(self.by_id.values()):
            informational.delete_ike_sa(self, sa, now, "daemon shutting down")

    def create_child(self, ike_id: int, child_name: str, now: float) -> None:
        """A further CHILD_SA of the connection on an established IKE SA (RFC 7296 §1.3.1)."""
        sa = self._live(ike_id)
        assert sa.conn is not None
        cfg = sa.conn.child(child_name)
        create_child.start(self, sa, cfg, now)

    def rekey_child(self, ike_id: int, child_id: int, now: float) -> None:
        """Rekey one CHILD_SA now (RFC 7296 §1.3.3). ValueError if it cannot be rekeyed."""
        sa = self._live(ike_id)
        c = self._child(sa, child_id)
        if c.state != ChildState.INSTALLED:
            raise ValueError(f"CHILD_SA {{{child_id}}} is {c.state.value}, not INSTALLED")
        create_child.start(self, sa, c.config, now, old=c)

    def rekey_ike(self, ike_id: int, now: float) -> None:
        """Rekey the IKE SA now (RFC 7296 §1.3.2). ValueError if it is not ESTABLISHED."""
        sa = self._live(ike_id)
        if sa.state != IkeState.ESTABLISHED:
            raise ValueError(f"IKE_SA [{ike_id}] is {sa.state.value}, not ESTABLISHED")
        ike_rekey.start(self, sa, now)

    def reauthenticate(self, ike_id: int, now: float) -> int:
        """A new IKE SA from scratch, then the old one is deleted (RFC 7296 §2.8.3)."""
        return lifetimes.reauthenticate(self, self._live(ike_id), now)

    def terminate_child(self, ike_id: int, child_id: int, now: float) -> None:
        """Delete one CHILD_SA (RFC 7296 §1.4.1)."""
        sa = self._live(ike_id)
        informational.delete_child(self, sa, self._child(sa, child_id), now, "terminated locally")

    def check_liveness(self, ike_id: int, now: float) -> None:
        """Send an empty INFORMATIONAL (RFC 7296 §2.4), now or after the exchange in
        flight; the answer raises IkeSaAlive, no answer deletes the IKE SA (IkeSaDeleted)
        after the retransmissions. A check already outstanding answers for this one."""
        liveness.probe(self, self._live(ike_id), now)

    def set_local_addresses(self, addresses: list[str] | tuple[str, ...], now: float) -> None:
        """This host's usable addresses changed (the daemon watches netlink). MOBIKE
        initiators whose address went move (RFC 4555 §3.5); peers get the new list."""
        new = tuple(dict.fromkeys(str(ipaddress.ip_address(a)) for a in addresses))
        if new == self.local_addresses and self._addresses_known:
            return
        first = not self._addresses_known
        self._addresses_known = True
        self.local_addresses = new
        if not first:
            mobike.addresses_changed(self, now)

    def update_addresses(
        self, ike_id: int, now: float, *, local: str | None = None, remote: str | None = None,
        mode: str = "auto",
    ) -> IkeSaInfo:
        """Move an IKE SA and its CHILD_SAs to a new local and/or remote address (a
        handover). `mode` "mobike": signal it with UPDATE_SA_ADDRESSES (RFC 4555 §3.5; we
        must be the IKE SA initiator and MOBIKE negotiated), the CHILD_SAs move on the
        answer; "kbit": move here without an exchange (RFC 4877 §4.4, both ends moved by
        a K-bit Binding Update); "auto": mobike when possible, else kbit. Kernel SAs keep
        SPIs, keys and sequence numbers; HoA-bound transport SAs stay. ValueError for an
        impossible request; KernelError if the kernel refuses (nothing moved)."""
        sa = self._live(ike_id)
        if mode not in ("auto", "mobike", "kbit"):
            raise ValueError(f"mode {mode!r}: use auto, mobike or kbit")
        use_mobike = sa.mobike and sa.initiator
        if mode == "mobike" and not use_mobike:
            raise ValueError(
                "MOBIKE was not negotiated on this IKE SA" if not sa.mobike else
                "only the IKE SA initiator can send UPDATE_SA_ADDRESSES (RFC 4555 §3.5)"
            )
        new_local = (str(ipaddress.ip_address(local)), sa.local[1]) if local else sa.local
        new_remote = (str(ipaddress.ip_address(remote)), sa.remote[1]) if remote else sa.remote
        if ipaddress.ip_address(new_local[0]).version != ipaddress.ip_address(
            new_remote[0]
        ).version:
            raise ValueError(f"{new_local[0]} and {new_remote[0]} are of different families")
        if (new_local, new_remote) == (sa.local, sa.remote):
            return sa.info()
        if use_mobike and mode != "kbit":
            mobike.start_update(self, sa, new_local, new_remote, now)
            return sa.info()
        moved: list[tuple[ChildSa, object]] = []
        try:
            for c in sa.children.values():
                if not mobike.follows(c, sa.local[0], sa.remote[0]):
                    continue
                moved.append((c, c.spec))
                c.spec = self.kernel.migrate_child(c.spec, new_local[0], new_remote[0],
                                                   c.spec.encap)
        except Exception as exc:
            for c, old_spec in moved[:-1]:  # put back what already moved
                try:
                    c.spec = self.kernel.migrate_child(c.spec, old_spec.local,  # type: ignore
                                                       old_spec.remote,  # type: ignore
                                                       old_spec.encap)  # type: ignore
                except Exception:
                    log.exception("CHILD_SA %s{%d}: cannot move back", c.config.name,
                                  c.child_id)
            failed = moved[-1][0]
            self.emit(IkeSaUpdateFailed(
                sa.ike_id, sa.name, new_local, new_remote,
                f"the kernel refused to move CHILD_SA {failed.config.name}{{{failed.child_id}}}"
                f" to {new_local[0]}-{new_remote[0]}: {exc}; the IKE SA stays at "
                f"{sa.local[0]}-{sa.remote[0]}"))
            raise
        old_local, old_remote = sa.local, sa.remote
        sa.local, sa.remote = new_local, new_remote
        log.info("IKE_SA %s[%d] moved %s[%d]-%s[%d] -> %s[%d]-%s[%d]", sa.name, sa.ike_id,
                 *old_local, *old_remote, *new_local, *new_remote)
        info = sa.info()
        self.emit(IkeSaUpdated(old_local, old_remote, info))
        return info

    def ike_keys(self, ike_id: int) -> IkeKeyExport | None:
        """SK_e/SK_a of an IKE SA, for a Wireshark ikev2_decryption_table (the API's key
        export, off by default). KeyError for an unknown SA; None before keys exist."""
        sa = self.by_id[ike_id]
        keys = sa.keys
        if keys is None:
            return None
        encr = next((t for t in sa.transforms if t[0] == 1), None)
        integ = next((t for t in sa.transforms if t[0] == 3), None)
        return IkeKeyExport(
            sa.spi_i, sa.spi_r, encr[1] if encr else 0, encr[2] if encr else None,
            integ[1] if integ else 0, keys.sk_ei, keys.sk_er, keys.sk_ai, keys.sk_ar,
        )

    def on_kernel_migrate(self, event: object, now: float) -> int:
        """Another mobility daemon moved our SAs in the kernel (XFRM_MSG_MIGRATE, e.g.
        UMIP's mip6d on a K-bit binding, with KMADDRESS): the CHILD_SAs' records and the
        IKE SA follow, without migrating the kernel a second time (RFC 4877 §4.4,
        REQUIREMENTS X-07). Returns the number of IKE SAs moved."""
        if getattr(event, "own", False):
            return 0
        km_local = getattr(event, "km_local", None)
        km_remote = getattr(event, "km_remote", None)
        moved: dict[int, tuple[Endpoint, Endpoint]] = {}
        for move in getattr(event, "moves", ()):
            what = (f"{move.mode} SAs {move.old_local}-{move.old_remote} -> "
                    f"{move.new_local}-{move.new_remote}")
            if not move.reqid:
                log.info("kernel migrate of %s with %s: not ikev2d's SAs, nothing follows",
                         what, f"reqid {move.kernel_reqid:#x}" if move.kernel_reqid else
                         "reqid 0 (any; give the mobility daemon ikev2d's reqids)")
                continue
            found = False
            for sa in self.by_id.values():
                for c in sa.children.values():
                    spec = c.spec
                    if spec.reqid != move.reqid:
                        continue
                    if (spec.local, spec.remote) == (move.new_local, move.new_remote):
                        found = True  # followed already (another policy of the same move)
                        continue
                    if (spec.local, spec.remote) != (move.old_local, move.old_remote):
                        continue
                    found = True
                    c.spec = replace(spec, local=move.new_local, remote=move.new_remote)
                    if sa.ike_id in moved or sa.state not in LIVE_IKE:
                        continue
                    moved[sa.ike_id] = (sa.local, sa.remote)
                    if sa.local[0] == move.old_local or km_local:
                        sa.local = (km_local or move.new_local, sa.local[1])
                    if sa.remote[0] == move.old_remote or km_remote:
                        sa.remote = (km_remote or move.new_remote, sa.remote[1])
            if not found:
                log.info("kernel migrate of %s (reqid %d): no CHILD_SA of ours there, nothing "
                         "follows", what, move.reqid)
        for ike_id, (old_local, old_remote) in moved.items():
            sa = self.by_id[ike_id]
            log.info("IKE_SA %s[%d] follows a kernel migrate: %s[%d]-%s[%d] -> %s[%d]-%s[%d]"
                     " (same SPIs, no IKE exchange)", sa.name, sa.ike_id, *old_local,
                     *old_remote, *sa.local, *sa.remote)
            self.emit(IkeSaUpdated(old_local, old_remote, sa.info()))
        return len(moved)

    def on_nat_mapping(self, event: object, now: float) -> bool:
        """The kernel saw ESP-in-UDP from a new NAT mapping of the peer (XFRM_MSG_MAPPING):
        without MOBIKE, the side not behind the NAT follows it (RFC 7296 §2.23, 7296-75);
        with MOBIKE the initiator repairs it with UPDATE_SA_ADDRESSES (4555-15)."""
        spi_in = getattr(event, "spi_in", None)
        new = getattr(event, "new", None)
        if spi_in is None or new is None:
            return False
        for sa in self.by_id.values():
            if any(c.spec.spi_in == spi_in for c in sa.children.values()):
                if sa.mobike or not sa.nat_remote or sa.state not in LIVE_IKE:
                    return False
                mobike.follow_rebinding(self, sa, sa.local, (new[0], new[1]))
                return True
        return False

    def on_child_expire(self, spi_in: int, hard: bool, now: float) -> bool:
        """A kernel lifetime expired (bytes/packets): soft → rekey, hard → delete. False if
        no CHILD_SA of ours has that inbound SPI."""
        for sa in self.by_id.values():
            for c in sa.children.values():
                if c.spec.spi_in == spi_in:
                    lifetimes.child_expired(self, sa, c, now, hard=hard, why="kernel")
                    self.schedule(sa)
                    return True
        return False

    # -- outputs ------------------------------------------------------------------------
    def datagrams_to_send(self) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        timers = self._timers
        while timers:
            deadline, _, ike_id = timers[0]
            sa = self.by_id.get(ike_id)
            if sa is not None and sa.deadline == deadline:
                return deadline
            heapq.heappop(timers)
        return None

    def _live(self, ike_id: int) -> IkeSa:
        sa = self.by_id.get(ike_id)
        if sa is None:
            raise KeyError(ike_id)
        if sa.state not in LIVE_IKE:
            raise ValueError(f"IKE_SA [{ike_id}] is {sa.state.value}")
        return sa

    @staticmethod
    def _child(sa: IkeSa, child_id: int) -> ChildSa:
        c = sa.children.get(child_id)
        if c is None:
            raise KeyError(child_id)
        return c

    def ike_sas(self) -> list[IkeSaInfo]:
        return [sa.info() for sa in self.by_id.values()]

    def ike_sa(self, ike_id: int) -> IkeSaInfo | None:
        sa = self.by_id.get(ike_id)
        return sa.info() if sa is not None else None

    # -- input --------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, local: Endpoint, remote: Endpoint, now: float) -> None:
        try:
            header = parse_header(data)
        except InvalidMajorVersion:
            self._answer_bad_version(data, local, remote, now)
            return
        except DropMessage as e:
            log.debug("dropped datagram from %s[%d]: %s", remote[0], remote[1], e)
            return
        try:
            if header.exchange == _SA_INIT:
                if header.flags & _R:
                    self._on_response(self.by_spi.get(header.spi_i), header, data, remote, now)
                else:
                    ike_init.handle_request(self, header, data, local, remote, now)
                return
            sa = self._lookup(header)
            if sa is None:
                log.debug(
                    "dropped %s for unknown IKE SA %s_i %s_r from %s",
                    _exchange_name(header.exchange), header.spi_i.hex(), header.spi_r.hex(),
                    remote[0],
                )
                return
            if header.flags & _R:
                self._on_response(sa, header, data, remote, now)
            else:
                self._on_request(sa, header, data, local, remote, now)
        except DropMessage as e:
            log.debug("dropped message from %s[%d]: %s", remote[0], remote[1], e)

    def handle_timer(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, ike_id = heapq.heappop(timers)
            sa = self.by_id.get(ike_id)
            if sa is None or sa.deadline != deadline:
                continue
            sa.deadline = None
            self._on_sa_timer(sa, now)
            if sa.state != IkeState.DELETED:
                self.schedule(sa)

    # -- plumbing used by the handlers --------------------------------------------------
    def new_ike_spi(self) -> bytes:
        while True:
            spi = self.random(8)
            if spi != b"\0" * 8 and spi not in self.by_spi:
                return spi

    def new_child_id(self) -> int:
        return next(self._child_ids)

    def new_reqid(self) -> int:
        return next(self._reqids)

    def new_ike_id(self) -> int:
        return next(self._ids)

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def send(self, data: bytes, local: Endpoint, remote: Endpoint) -> None:
        self._out.append(Datagram(data, local, remote))

    def schedule(self, sa: IkeSa) -> None:
        """Keep one heap entry per SA at its earliest deadline: retransmission, the named
        deadlines in `sa.due`, CHILD_SA lifetimes (stale entries are skipped lazily)."""
        deadline = sa.pending.deadline if sa.pending is not None else None
        if sa.due:
            d = min(sa.due.values())
            if deadline is None or d < deadline:
                deadline = d
        for c in sa.children.values():
            for d in (c.rekey_at, c.expire_at):
                if d is not None and (deadline is None or d < deadline):
                    deadline = d
        if deadline != sa.deadline:
            sa.deadline = deadline
            if deadline is not None:
                heapq.heappush(self._timers, (deadline, next(self._seq), sa.ike_id))

    def send_request(
        self,
        sa: IkeSa,
        exchange: int,
        payloads: list,
        on_response: Callable[..., None] | None,
        now: float,
    ) -> None:
        """Send a request, or queue it while one is outstanding (window size 1, §2.3)."""
        if sa.pending is not None:
            sa.queue.append((exchange, payloads, on_response))
            return
        message_id = sa.next_id_out
        if exchange == _SA_INIT:
            data = build_message(sa.spi_i, sa.spi_r, exchange, _I, 0, payloads)
            sa.init_request = data
            sa.next_id_out = 1
        else:
            sa.next_id_out += 1
        datagrams = (
            [data] if exchange == _SA_INIT
            else self._protect(sa, exchange, 0, message_id, payloads)
        )
        rt = sa.conn.retransmit if sa.conn else None
        timeout = rt.timeout if rt else 4.0
        sa.pending = Pending(message_id, exchange, datagrams, on_response, now + timeout)
        self.schedule(sa)
        for d in datagrams:
            self.send(d, sa.local, sa.remote)

    def send_oneshot(self, sa: IkeSa, exchange: int, payloads: list) -> None:
        """A request we will not retransmit (the IKE_AUTH failure report of §2.21.2)."""
        message_id = sa.next_id_out
        sa.next_id_out += 1
        for d in self._protect(sa, exchange, 0, message_id, payloads):
            self.send(d, sa.local, sa.remote)

    def _protect(
        self, sa: IkeSa, exchange: int, flags: int, message_id: int, payloads: list
    ) -> list[bytes]:
        """HDR, SK{payloads}: one datagram, or its SKF fragments if fragmentation was
        negotiated and it does not fit (RFC 7383 §2.5)."""
        if sa.initiator:
            flags |= _I
        max_size = fragments.max_message_size(
            sa.conn.fragment_size if sa.conn is not None else None, sa.local,
            self.config.natt_port,
        )
        return fragments.protect_message(sa, exchange, flags, message_id, payloads,
                                         self.random, max_size)

    def remove(self, sa: IkeSa, reason: str, *, notify: str | None = None) -> None:
        """Forget an IKE SA and everything below it; report it once."""
        if sa.state == IkeState.DELETED and sa.ike_id not in self.by_id:
            return
        child.remove_all(self, sa)
        if sa.child_request is not None:
            child.abandon_request(self, sa)
        create_child.abandon_all(self, sa)
        sa.state = IkeState.DELETED
        sa.deadline = None
        sa.pending = None
        sa.queue.clear()
        sa.due.clear()
        self.by_id.pop(sa.ike_id, None)
        if self.by_spi.get(sa.local_spi) is sa:
            del self.by_spi[sa.local_spi]
        self.forget_half_open(sa)
        if sa.established_at is None:
            log.debug("IKE_SA %s[%d] failed: %s", sa.name, sa.ike_id, reason)
            self.emit(IkeSaFailed(sa.ike_id, sa.name, reason, notify))
        elif sa.rekeyed_to is not None:  # IkeSaRekeyed already told the world
            log.debug("IKE_SA %s[%d] (rekeyed) removed: %s", sa.name, sa.ike_id, reason)
        else:
            log.debug("IKE_SA %s[%d] deleted: %s", sa.name, sa.ike_id, reason)
            self.emit(IkeSaDeleted(sa.ike_id, sa.name, reason))

    def error_response(
        self, header: Header, notify: NotifyType, data: bytes, local: Endpoint, remote: Endpoint,
        now: float,
    ) -> None:
        """An unprotected error answer to an IKE_SA_INIT request, rate-limited (§2.21.1,
        7296-87)."""
        if not self._may_answer(now):
            return
        msg = build_message(
            header.spi_i, b"\0" * 8, _SA_INIT, _R, 0,
            [Notify(ProtocolId.NONE, notify, b"", data)],
        )
        self.send(msg, local, remote)

    def add_half_open(self, key: tuple[bytes, str, int], sa: IkeSa) -> None:
        self.half_open[key] = sa
        self.half_open_by_ip[key[1]] = self.half_open_by_ip.get(key[1], 0) + 1

    def forget_half_open(self, sa: IkeSa) -> None:
        if sa.initiator or sa.init_remote is None:
            return
        key = (sa.spi_i, *sa.init_remote)
        if self.half_open.get(key) is sa:
            del self.half_open[key]
            ip = key[1]
            left = self.half_open_by_ip.get(ip, 1) - 1
            if left > 0:
                self.half_open_by_ip[ip] = left
            else:
                self.half_open_by_ip.pop(ip, None)

    # -- internals ----------------------------------------------------------------------

    def _local_address(self, conn: ConnectionConfig, remote_addr: str) -> str:
        for addr in conn.local_addrs:
            if addr not in ("%any", "0.0.0.0", "::"):
                return addr
        if self.source_for is not None:
            return self.source_for(remote_addr)
        version = ipaddress.ip_address(remote_addr).version
        return "127.0.0.1" if version == 4 else "::1"

    def _lookup(self, header: Header) -> IkeSa | None:
        if header.flags & _I:  # sent by the original initiator: we are the responder
            sa = self.by_spi.get(header.spi_r)
            if sa is None or sa.initiator or sa.spi_i != header.spi_i:
                return None
        else:
            sa = self.by_spi.get(header.spi_i)
            if sa is None or not sa.initiator or sa.spi_r != header.spi_r:
                return None
        return sa

    def _on_response(
        self, sa: IkeSa | None, header: Header, data: bytes, remote: Endpoint, now: float
    ) -> None:
        """Match a response to our outstanding request (§2.1); anything else is dropped."""
        if sa is None:
            raise DropMessage("response for no IKE SA of ours")
        if remote != sa.remote:
            raise DropMessage(
                f"response from {remote[0]}[{remote[1]}], but the peer of IKE_SA "
                f"{sa.name}[{sa.ike_id}] is {sa.remote[0]}[{sa.remote[1]}]"
            )
        pending = sa.pending
        if pending is None or pending.message_id != header.message_id:
            raise DropMessage(f"unexpected response with message ID {header.message_id}")
        if pending.exchange != header.exchange:
            raise DropMessage(f"response of type {header.exchange} to a {pending.exchange}")
        if header.exchange == _SA_INIT:
            try:
                payloads = parse_message(data)[1]
            except IkeError as e:
                raise DropMessage(f"malformed IKE_SA_INIT response: {e}") from e
        else:
            try:
                if fragments.is_fragment(header):  # RFC 7383 §2.6
                    if not fragments.may_receive(sa):
                        raise DropMessage("SKF, but we did not announce fragmentation")
                    whole = fragments.add_fragment(sa, "response", header, data)
                    if whole is None:
                        return  # more fragments to come; the request stays outstanding
                    payloads = whole[0]
                else:
                    payloads = unprotect(data, header, sa.crypter_in)
            except IntegrityError as e:
                raise DropMessage(f"integrity check failed: {e}") from e
            except DropMessage:
                raise
            except IkeError as e:
                sa.pending = None
                self.remove(sa, f"malformed {_exchange_name(header.exchange)} response: {e}")
                return
        sa.pending = None
        sa.last_in = now
        if pending.on_response is not None:
            pending.on_response(self, sa, header, payloads, data, now)
        self.send_next(sa, now)

    def send_next(self, sa: IkeSa, now: float) -> None:
        """Send the first queued request if the window is free; keep the timer right."""
        if sa.state == IkeState.DELETED:
            return
        if sa.pending is None and sa.queue:
            exchange, payloads, cb = sa.queue.pop(0)
            self.send_request(sa, exchange, payloads, cb, now)
        else:
            self.schedule(sa)

    def _on_request(
        self, sa: IkeSa, header: Header, data: bytes, local: Endpoint, remote: Endpoint,
        now: float,
    ) -> None:
        """Window 1 responder (§2.1, §2.3): the next ID is processed, the previous one is
        answered from the cache if it is the same request, anything else is dropped."""
        message_id = header.message_id
        request_hash = hash(data)
        if message_id != sa.next_id_in:
            last = sa.last_response
            # a retransmission: the same datagram, or (RFC 7383 §2.6.1) fragment 1 of it,
            # perhaps re-fragmented; other fragments of it trigger nothing (7383-08)
            if last is not None and last[0] == message_id and (
                request_hash == sa.last_request_hash
                or fragments.is_first_fragment_of(sa, header, data)
            ):
                for d in last[1]:
                    self.send(d, local, remote)
                return
            raise DropMessage(
                f"request with message ID {message_id}, expected {sa.next_id_in}"
            )
        handler = REQUEST_HANDLERS.get(header.exchange)
        if handler is None:
            raise DropMessage(f"unsupported exchange type {header.exchange}")
        error: IkeError | None = None
        try:
            if fragments.is_fragment(header):  # RFC 7383 §2.6
                if not fragments.may_receive(sa):
                    raise DropMessage("SKF, but we did not announce fragmentation (RFC 7383 §2.3)")
                whole = fragments.add_fragment(sa, "request", header, data)
                if whole is None:
                    return  # more fragments to come
                payloads, request_hash = whole
            else:
                payloads = unprotect(data, header, sa.crypter_in)
        except IntegrityError as e:
            raise DropMessage(f"integrity check failed: {e}") from e
        except DropMessage:
            raise
        except IkeError as e:  # authenticated but malformed: answer it (7296-84/88)
            payloads = None
            error = e
        sa.next_id_in = message_id + 1
        sa.last_in = now
        if remote != sa.remote and sa.nat_remote and not sa.mobike and error is None:
            mobike.follow_rebinding(self, sa, local, remote)
        fatal = False
        if error is None:
            try:
                response = handler(self, sa, header, payloads, local, remote, now)
            except IkeError as e:
                error = e
        if error is not None:
            log.info(
                "IKE_SA %s[%d] %s request failed: %s", sa.name, sa.ike_id,
                _exchange_name(header.exchange), error,
            )
            response = (
                [Notify(ProtocolId.NONE, error.notify, b"", error.data)] if error.notify else []
            )
            fatal = header.exchange == _AUTH or isinstance(error, InvalidSyntax)
        data_out = self._protect(sa, header.exchange, _R, message_id, response)
        sa.last_response = (message_id, data_out)
        sa.last_request_hash = request_hash
        for d in data_out:
            self.send(d, local, remote)
        if fatal:
            self.remove(sa, str(error), notify=error.notify.name if error.notify else None)
        elif sa.state == IkeState.DELETED:
            informational.finish_delete(self, sa)
        else:
            self.send_next(sa, now)

    def _on_sa_timer(self, sa: IkeSa, now: float) -> None:
        pending = sa.pending
        if pending is not None and pending.deadline <= now:
            self._retransmit(sa, pending, now)
            if sa.state == IkeState.DELETED:
                return
        if sa.due:
            for name in [n for n, t in sa.due.items() if t <= now]:
                del sa.due[name]
                lifetimes.fire(self, sa, name, now)
                if sa.state == IkeState.DELETED:
                    return
        for c in list(sa.children.values()):
            if c.expire_at is not None and c.expire_at <= now:
                c.expire_at = c.rekey_at = None
                lifetimes.child_expired(self, sa, c, now, hard=True, why="time")
            elif c.rekey_at is not None and c.rekey_at <= now:
                c.rekey_at = None
                lifetimes.child_expired(self, sa, c, now, hard=False, why="time")
            if sa.state == IkeState.DELETED:
                return

    def _retransmit(self, sa: IkeSa, pending: Pending, now: float) -> None:
        """Resend with exponential back-off; give up after `tries` (RFC 7296 §2.4, 7296-41)."""
        rt = sa.conn.retransmit if sa.conn else None
        tries = rt.tries if rt else 5
        if pending.sent > tries:
            what = _exchange_name(pending.exchange)
            sa.pending = None
            if sa.state == IkeState.DELETING:
                self.remove(sa, "peer did not answer our delete")
                return
            established = sa.established_at is not None
            self.remove(sa, f"peer not responding ({what}, {pending.sent} sends)")
            conn = sa.conn
            if (established and conn is not None and conn.dpd_action == DpdAction.HOLD
                    and conn.name in self.connections):
                n = traps.install(self, conn, every_child=True)
                log.info("IKE_SA %s[%d]: dpd_action = hold, %d child(ren) trapped until "
                         "traffic needs them", sa.name, sa.ike_id, n)
            if (established and conn is not None and conn.dpd_action == DpdAction.RESTART
                    and conn.name in self.connections):
                log.info("IKE_SA %s[%d]: dpd_action = restart, re-initiating",
                         sa.name, sa.ike_id)
                self.initiate(conn.name, now)
            return
        timeout = rt.timeout if rt else 4.0
        base = rt.base if rt else 1.8
        cap = rt.max_interval if rt else 60.0
        for d in pending.datagrams:
            self.send(d, sa.local, sa.remote)
        pending.deadline = now + min(timeout * base**pending.sent, cap)
        pending.sent += 1
        log.debug(
            "IKE_SA %s[%d] retransmit %d of %s", sa.name, sa.ike_id, pending.sent - 1,
            _exchange_name(pending.exchange),
        )

    def _may_answer(self, now: float) -> bool:
        self._err_tokens = min(20.0, self._err_tokens + (now - self._err_time) * 10.0)
        self._err_time = now
        if self._err_tokens < 1.0:
            return False
        self._err_tokens -= 1.0
        return True

    def _answer_bad_version(
        self, data: bytes, local: Endpoint, remote: Endpoint, now: float
    ) -> None:
        """INVALID_MAJOR_VERSION, unprotected, with version 2 in our header (7296-81)."""
        if len(data) < HEADER_LEN or data[19] & _R or not self._may_answer(now):
            return
        msg = build_message(
            bytes(data[0:8]), bytes(data[8:16]), data[18], _R, int.from_bytes(data[20:24], "big"),
            [Notify(ProtocolId.NONE, NotifyType.INVALID_MAJOR_VERSION, b"", b"")],
        )
        self.send(msg, local, remote)


def _exchange_name(exchange: int) -> str:
    try:
        return ExchangeType(exchange).name
    except ValueError:
        return f"exchange {exchange}"
