"""BU/BA signalling over UDP, for kernels without Mobile IPv6 (no Home Address option, no
type 2 routing header): the DSMIPv6 encapsulation of RFC 5555 §4.1, used for every CoA.

Wire format (docs/mobility.md "Transports"): one UDP datagram, CoA → HA port 4191 (IANA
"dsmipv6", RFC 5555 §4.1 [M: port number not re-read in the RFC]; configurable), whose
payload is an IPv6 header followed by ESP (RFC 4303, transport mode) protecting the
Mobility Header with the BU/BA CHILD_SA (REQUIREMENTS 4877-01, 5555-02):

    UDP payload = IPv6 header (40 octets: version 6, payload length = ESP length,
                  next header 50, hop limit 64, src = HoA, dst = HA address)
                  | ESP: SPI | sequence number | IV | encrypted (Mobility Header
                  | padding | pad length | next header 135) | ICV
    Mobility Header: checksum over that inner src/dst (RFC 6275 §6.1.1)

So the home address is the inner IPv6 source (where RFC 6275 puts it in the Home Address
option), and the care-of address is the outer UDP source (or an Alternate CoA option).
The BA comes back the same way: HA → the BU's outer source address and port, inner src =
HA, inner dst = HoA, on the outbound SA of the CHILD_SA the BU came on. The kernel cannot
apply the SA to a UDP payload, so the agents apply ESP themselves (`ClientProtection`,
`ServerProtection`: mobility/protection.py over mobility/esp.py). Without protection the
MH follows the IPv6 header directly (next header 135): what a home agent with
`require_esp = false` takes, or an MN sends when it has no BU/BA SA.

Retransmission (RFC 6275 §11.8, §12-§13): first wait INITIAL_BINDACK_TIMEOUT (1 s;
InitialBindackTimeoutFirstReg, 1.5 s, for a first registration), doubled after each try up
to MAX_BINDACK_TIMEOUT (32 s); then give up (or, `keep_at_maximum`, go on at 32 s). Every
transmission carries a new sequence number (RFC 6275 §11.7.1: each BU to a destination has
a greater number than the previous one), and a BA matches any number sent for this
registration; a BA with status 135 resynchronises the counter (RFC 6275 §11.7.3).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ikev2.kernel.base import IPPROTO_ESP
from mobility.errors import (
    BindingAckTimeout,
    EspError,
    EspMissing,
    MhChecksumError,
    MhParseError,
    TransportError,
    UnknownMhType,
)
from mobility.mh import (
    BindingAck,
    BindingUpdate,
    Message,
    binding_error_for,
    build_mh,
    parse_mh,
)
from mobility.options import v6
from mobility.registry import IPPROTO_MH, BaStatus

if TYPE_CHECKING:
    from mobility.protection import Unprotected

log = logging.getLogger(__name__)

DSMIPV6_UDP_PORT = 4191
INITIAL_BINDACK_TIMEOUT = 1.0  # RFC 6275 §12
MAX_BINDACK_TIMEOUT = 32.0  # RFC 6275 §12
INITIAL_BINDACK_TIMEOUT_FIRST_REG = 1.5  # RFC 6275 §13 InitialBindackTimeoutFirstReg
IPV6_HEADER = struct.Struct("!IHBB16s16s")
HOP_LIMIT = 64
IPv6 = ipaddress.IPv6Address
Endpoint = tuple[str, int]


# --- encapsulation ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InnerPacket:
    src: IPv6
    dst: IPv6
    msg: Message


def inner_packet(next_header: int, payload: bytes, *, src: IPv6, dst: IPv6) -> bytes:
    """The UDP payload: the inner IPv6 header, then `payload` (ESP or MH)."""
    return IPV6_HEADER.pack(6 << 28, len(payload), next_header, HOP_LIMIT, src.packed,
                            dst.packed) + payload


def encapsulate(msg: Message, *, src: str | IPv6, dst: str | IPv6) -> bytes:
    """The UDP payload carrying `msg` unprotected from inner `src` (HoA for a BU) to
    `dst`."""
    s, d = v6(src), v6(dst)
    return inner_packet(IPPROTO_MH, build_mh(msg, src=s, dst=d), src=s, dst=d)


def inner_header(payload: bytes) -> tuple[IPv6, IPv6, int, bytes]:
    """(src, dst, next header, what follows) of a UDP payload; TransportError unless it is
    IPv6 followed by ESP or a Mobility Header."""
    if len(payload) < IPV6_HEADER.size:
        raise TransportError(f"{len(payload)} octets: too short for an IPv6 header")
    vtf, plen, nxt, _hops, src, dst = IPV6_HEADER.unpack_from(payload)
    if vtf >> 28 != 6:
        raise TransportError(f"inner header version {vtf >> 28}, not 6")
    if plen != len(payload) - IPV6_HEADER.size:
        raise TransportError(
            f"inner payload length {plen}, but {len(payload) - IPV6_HEADER.size} octets follow"
        )
    if nxt not in (IPPROTO_MH, IPPROTO_ESP):
        raise TransportError(f"inner next header {nxt}, neither {IPPROTO_MH} (MH) nor "
                             f"{IPPROTO_ESP} (ESP)")
    return IPv6(src), IPv6(dst), nxt, payload[IPV6_HEADER.size:]


def decapsulate(payload: bytes, *, strict: bool = False) -> InnerPacket:
    """Inverse of `encapsulate` (unprotected only); verifies the MH checksum against the
    inner addresses. `strict=False` by default: RFC 6275 §6.1 tells receivers to ignore
    Reserved fields."""
    src, dst, nxt, mh = inner_header(payload)
    if nxt != IPPROTO_MH:
        raise TransportError("ESP-protected: open it with the BU/BA SA "
                             "(mobility/protection.py)")
    return InnerPacket(src, dst, parse_mh(mh, src=src, dst=dst, strict=strict))


class ClientProtection(Protocol):
    """The MN's ESP (mobility.protection.MnProtection)."""

    async def seal(self, mh: bytes) -> bytes | None:
        """The ESP packet for a BU's MH; None: send it unprotected."""
        ...

    async def open(self, packet: bytes, *, src: str) -> bytes:
        """The MH of a protected BA from `src`; raises EspError."""
        ...

    def stale(self) -> None:
        """No BA in time: ask ikev2d for the SA again before the next try."""
        ...

    def dropped(self, exc: EspError, where: str) -> None: ...


class ServerProtection(Protocol):
    """The HA's ESP (mobility.protection.HaProtection); `require`: drop unprotected BUs."""

    require: bool

    async def open(self, packet: bytes, *, src: str, dst: str) -> Unprotected:
        """A protected BU's SA and MH; raises EspError (the window is advanced later)."""
        ...

    def seal_reply(self, via: Unprotected, mh: bytes) -> bytes: ...

    def dropped(self, exc: EspError, where: str) -> None: ...


# --- retransmission --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetransmitPolicy:
    """RFC 6275 §11.8 back-off. Tests shrink the numbers; the defaults are the RFC's."""

    initial: float = INITIAL_BINDACK_TIMEOUT
    maximum: float = MAX_BINDACK_TIMEOUT
    initial_first_registration: float = INITIAL_BINDACK_TIMEOUT_FIRST_REG
    keep_at_maximum: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.initial_first_registration <= 0:
            raise ValueError("need 0 < initial <= maximum and a positive first-reg timeout")

    def delays(self, first_registration: bool = False) -> Iterator[float]:
        """The wait after each transmission: 1, 2, 4, 8, 16, 32 (then stop, or 32 forever)."""
        wait = self.initial_first_registration if first_registration else self.initial
        while True:
            wait = min(wait, self.maximum)
            yield wait
            if wait >= self.maximum and not self.keep_at_maximum:
                return
            wait *= 2


# --- mobile node side ------------------------------------------------------------------------
class _ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: BindingUpdateClient) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner._received(data)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable etc.
        log.debug("BU socket error: %s", exc)


class BindingUpdateClient:
    """Sends Binding Updates from the CoA to the HA and waits for the matching BA."""

    def __init__(self, *, hoa: str, ha_address: str, ha_endpoint: Endpoint,
                 policy: RetransmitPolicy | None = None, last_seq: int = 0,
                 protection: ClientProtection | None = None) -> None:
        self.hoa = v6(hoa)
        self.ha_address = v6(ha_address)
        self.ha_endpoint = ha_endpoint
        self.policy = policy or RetransmitPolicy()
        self.seq = last_seq & 0xFFFF  # the last sequence number used
        self.sent: list[BindingUpdate] = []  # every BU transmitted (for logs and tests)
        self.protection = protection
        self.protected = False  # the last BU went ESP-protected: so must its BA come
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, asyncio.Future[BindingAck]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, *, hoa: str, ha_address: str, ha_endpoint: Endpoint,
                   local: Endpoint | None = None, policy: RetransmitPolicy | None = None,
                   last_seq: int = 0, protection: ClientProtection | None = None
                   ) -> BindingUpdateClient:
        self = cls(hoa=hoa, ha_address=ha_address, ha_endpoint=ha_endpoint, policy=policy,
                   last_seq=last_seq, protection=protection)
        await self.rebind(local)
        return self

    async def rebind(self, local: Endpoint | None) -> None:
        """(Re)open the socket from a new CoA (the HA endpoint stays)."""
        self.close()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ClientProtocol(self), local_addr=local, remote_addr=self.ha_endpoint
        )
        self._transport = transport

    @property
    def local(self) -> Endpoint:
        if self._transport is None:
            raise TransportError("the client is closed")
        sock = self._transport.get_extra_info("sockname")
        return sock[0], sock[1]

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def _send_bu(self, bu: BindingUpdate) -> None:
        mh = build_mh(bu, src=self.hoa, dst=self.ha_address)
        esp = await self.protection.seal(mh) if self.protection is not None else None
        if self._transport is None:
            raise TransportError("the client is closed")
        self.protected = esp is not None
        payload = inner_packet(IPPROTO_MH, mh, src=self.hoa, dst=self.ha_address) \
            if esp is None else inner_packet(IPPROTO_ESP, esp, src=self.hoa,
                                             dst=self.ha_address)
        self._transport.sendto(payload)

    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    async def register(self, template: BindingUpdate, *,
                       first_registration: bool = False) -> BindingAck:
        """Send `template` (its seq is replaced) until a BA for one of the sequence
        numbers sent arrives; raise BindingAckTimeout when the back-off runs out."""
        if self._transport is None:
            raise TransportError("the client is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[BindingAck] = loop.create_future()
        used: list[int] = []
        resynced = False
        try:
            for wait in self.policy.delays(first_registration):
                bu = dataclasses.replace(template, seq=self._next_seq())
                used.append(bu.seq)
                self._pending[bu.seq] = fut
                self.sent.append(bu)
                await self._send_bu(bu)
                try:
                    ba = await asyncio.wait_for(asyncio.shield(fut), wait)
                except TimeoutError:
                    if self.protection is not None:
                        self.protection.stale()  # a rekey, a restarted HA: ask again
                    continue
                if ba.status == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW and not resynced:
                    resynced = True  # RFC 6275 §11.7.3: continue after the HA's number
                    self.seq = ba.seq
                    fut = loop.create_future()
                    for s in used:
                        self._pending[s] = fut
                    continue
                return ba
            raise BindingAckTimeout(
                f"no Binding Acknowledgement from {self.ha_endpoint[0]} after {len(used)} "
                f"Binding Updates (seq {used[0]}..{used[-1]})", sent=len(used),
            )
        finally:
            for s in used:
                self._pending.pop(s, None)
            if not fut.done():
                fut.cancel()

    def _received(self, data: bytes) -> None:
        try:
            src, dst, nxt, rest = inner_header(data)
        except TransportError as exc:
            log.debug("dropped a datagram from the HA: %s", exc)
            return
        if src != self.ha_address or dst != self.hoa:
            log.debug("dropped a datagram %s -> %s", src, dst)
            return
        if nxt == IPPROTO_ESP and self.protection is not None:
            task = asyncio.get_running_loop().create_task(self._open(src, dst, rest))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        if nxt == IPPROTO_ESP or self.protected:
            exc = EspMissing("a BA without ESP answering an ESP-protected BU" if
                             self.protected else "an ESP-protected BA, but no BU/BA SA here")
            if self.protection is not None:
                self.protection.dropped(exc, f"from {src}")
            else:
                log.debug("dropped a datagram from the HA: %s", exc)
            return
        self._deliver(src, dst, rest)

    async def _open(self, src: IPv6, dst: IPv6, packet: bytes) -> None:
        assert self.protection is not None
        try:
            mh = await self.protection.open(packet, src=str(src))
        except EspError as exc:
            self.protection.dropped(exc, f"from {src}")
            return
        self._deliver(src, dst, mh)

    def _deliver(self, src: IPv6, dst: IPv6, mh: bytes) -> None:
        try:
            ba = parse_mh(mh, src=src, dst=dst, strict=False)
        except MhParseError as exc:
            log.debug("dropped an MH from the HA: %s", exc)
            return
        if not isinstance(ba, BindingAck):
            log.debug("dropped %s %s -> %s", type(ba).__name__, src, dst)
            return
        fut = self._pending.get(ba.seq)
        if fut is None and ba.status == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW:
            fut = next(iter(self._pending.values()), None)  # carries the HA's last seq
        if fut is not None and not fut.done():
            fut.set_result(ba)


# --- home agent side -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReceivedBu:
    """A Binding Update as the HA got it: `source` is the outer (CoA) endpoint, `esp` the
    SA that protected it (None: it came unprotected)."""

    bu: BindingUpdate
    hoa: IPv6
    ha_address: IPv6
    source: Endpoint
    esp: Unprotected | None = None


BuHandler = Callable[[ReceivedBu], Awaitable[BindingAck | None]]


class _ServerProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: BindingUpdateServer) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.owner._received(data, (addr[0], addr[1]))


@dataclass
class ServerStats:
    received: int = 0
    answered: int = 0
    dropped: int = 0
    binding_errors: int = 0
    protected: int = 0  # BUs whose ESP verified (the drops' reasons: the agent's EspStats)


class BindingUpdateServer:
    """The HA's UDP endpoint: opens ESP with `protection` (and, when it `require`s ESP,
    drops unprotected BUs), hands each BU to `handler`, sends back the BA it returns (on
    the SA the BU came on), answers an unknown MH type with a Binding Error (status 2,
    RFC 6275 §9.2) and drops everything else (bad checksum: silently, RFC 6275 §9.2)."""

    def __init__(self, handler: BuHandler, protection: ServerProtection | None = None) -> None:
        self.handler = handler
        self.protection = protection
        self.stats = ServerStats()
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, local: Endpoint, handler: BuHandler,
                   protection: ServerProtection | None = None) -> BindingUpdateServer:
        self = cls(handler, protection)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ServerProtocol(self), local_addr=local
        )
        self._transport = transport
        return self

    @property
    def local(self) -> Endpoint:
        if self._transport is None:
            raise TransportError("the server is closed")
        sock = self._transport.get_extra_info("sockname")
        return sock[0], sock[1]

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _send(self, msg: Message, src: IPv6, dst: IPv6, to: Endpoint,
              via: Unprotected | None = None) -> None:
        if self._transport is None:
            return
        mh = build_mh(msg, src=src, dst=dst)
        if via is None:
            self._transport.sendto(inner_packet(IPPROTO_MH, mh, src=src, dst=dst), to)
            return
        assert self.protection is not None
        try:
            esp = self.protection.seal_reply(via, mh)
        except EspError as exc:
            self.protection.dropped(exc, f"answering {to[0]}")
            return
        self._transport.sendto(inner_packet(IPPROTO_ESP, esp, src=src, dst=dst), to)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _received(self, data: bytes, source: Endpoint) -> None:
        self.stats.received += 1
        try:
            src, dst, nxt, rest = inner_header(data)
        except TransportError as exc:
            log.debug("dropped a datagram from %s: %s", source[0], exc)
            self.stats.dropped += 1
            return
        protection = self.protection
        if nxt == IPPROTO_ESP and protection is not None:
            self._spawn(self._open(src, dst, rest, source))
            return
        if nxt == IPPROTO_ESP or (protection is not None and protection.require):
            self.stats.dropped += 1
            exc = EspMissing(f"a BU for {src} without ESP (require_esp)" if nxt != IPPROTO_ESP
                             else "ESP, but no BU/BA SAs here")
            if protection is not None:
                protection.dropped(exc, f"from {source[0]}")
            else:
                log.debug("dropped a datagram from %s: %s", source[0], exc)
            return
        rx = self._parse(src, dst, rest, source, None)
        if rx is not None:
            self._spawn(self._answer(rx))

    async def _open(self, src: IPv6, dst: IPv6, packet: bytes, source: Endpoint) -> None:
        assert self.protection is not None
        try:
            via = await self.protection.open(packet, src=str(src), dst=str(dst))
        except EspError as exc:
            self.stats.dropped += 1
            self.protection.dropped(exc, f"from {source[0]} (inner source {src})")
            return
        self.stats.protected += 1
        rx = self._parse(src, dst, via.mh, source, via)
        if rx is not None:
            await self._answer(rx)

    def _parse(self, src: IPv6, dst: IPv6, mh: bytes, source: Endpoint,
               via: Unprotected | None) -> ReceivedBu | None:
        """The BU in `mh`, or None (answered with a Binding Error, or dropped)."""
        try:
            msg = parse_mh(mh, src=src, dst=dst, strict=False)
        except UnknownMhType as exc:
            self.stats.binding_errors += 1
            self._send(binding_error_for(exc, src), dst, src, source, via)
            return None
        except MhChecksumError:
            self.stats.dropped += 1
            return None
        except MhParseError as exc:
            log.debug("dropped a datagram from %s: %s", source[0], exc)
            self.stats.dropped += 1
            return None
        if not isinstance(msg, BindingUpdate):
            self.stats.dropped += 1
            return None
        return ReceivedBu(msg, src, dst, source, via)

    async def _answer(self, rx: ReceivedBu) -> None:
        try:
            ba = await self.handler(rx)
        except Exception:  # a handler bug must not kill the socket
            log.exception("Binding Update handler failed")
            self.stats.dropped += 1
            return
        if ba is not None:
            self.stats.answered += 1
            self._send(ba, rx.ha_address, rx.hoa, rx.source, rx.esp)
