"""BU/BA signalling over UDP, for kernels without Mobile IPv6 (no Home Address option, no
type 2 routing header): the DSMIPv6 encapsulation of RFC 5555 §4.1, used for every CoA.

Wire format (docs/mobility.md "Transports"): one UDP datagram, CoA → HA port 4191 (IANA
"dsmipv6", RFC 5555 §4.1 [M: port number not re-read in the RFC]; configurable), whose
payload is an IPv6 header followed by the Mobility Header:

    UDP payload = IPv6 header (40 octets: version 6, payload length = MH length,
                  next header 135, hop limit 64, src = HoA, dst = HA address)
                  | Mobility Header (checksum over that src/dst: RFC 6275 §6.1.1)

So the home address is the inner IPv6 source (where RFC 6275 puts it in the Home Address
option), and the care-of address is the outer UDP source (or an Alternate CoA option).
The BA comes back the same way: HA → the BU's outer source address and port, inner src =
HA, inner dst = HoA. Unlike RFC 5555 there is no ESP between the two headers: a userspace
socket cannot use the HoA-bound transport SA, so on this path BU/BA are not IPsec
protected (REQUIREMENTS 4877-01 holds only with the raw-MH transport of mobility/raw_mh.py
on a MIPv6 kernel). Testbeds only.

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
from typing import Any

from mobility.errors import (
    BindingAckTimeout,
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


def encapsulate(msg: Message, *, src: str | IPv6, dst: str | IPv6) -> bytes:
    """The UDP payload carrying `msg` from inner `src` (HoA for a BU) to `dst`."""
    s, d = v6(src), v6(dst)
    mh = build_mh(msg, src=s, dst=d)
    return IPV6_HEADER.pack(6 << 28, len(mh), IPPROTO_MH, HOP_LIMIT, s.packed, d.packed) + mh


def inner_addresses(payload: bytes) -> tuple[IPv6, IPv6, bytes]:
    """(src, dst, MH octets) from a UDP payload; TransportError if it is not IPv6 + MH."""
    if len(payload) < IPV6_HEADER.size:
        raise TransportError(f"{len(payload)} octets: too short for an IPv6 header")
    vtf, plen, nxt, _hops, src, dst = IPV6_HEADER.unpack_from(payload)
    if vtf >> 28 != 6:
        raise TransportError(f"inner header version {vtf >> 28}, not 6")
    if plen != len(payload) - IPV6_HEADER.size:
        raise TransportError(
            f"inner payload length {plen}, but {len(payload) - IPV6_HEADER.size} octets follow"
        )
    if nxt != IPPROTO_MH:
        hint = " (ESP-protected DSMIPv6 needs the kernel's IPsec)" if nxt == 50 else ""
        raise TransportError(f"inner next header {nxt}, not {IPPROTO_MH}{hint}")
    return IPv6(src), IPv6(dst), payload[IPV6_HEADER.size:]


def decapsulate(payload: bytes, *, strict: bool = False) -> InnerPacket:
    """Inverse of `encapsulate`; verifies the MH checksum against the inner addresses.
    `strict=False` by default: RFC 6275 §6.1 tells receivers to ignore Reserved fields."""
    src, dst, mh = inner_addresses(payload)
    return InnerPacket(src, dst, parse_mh(mh, src=src, dst=dst, strict=strict))


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
                 policy: RetransmitPolicy | None = None, last_seq: int = 0) -> None:
        self.hoa = v6(hoa)
        self.ha_address = v6(ha_address)
        self.ha_endpoint = ha_endpoint
        self.policy = policy or RetransmitPolicy()
        self.seq = last_seq & 0xFFFF  # the last sequence number used
        self.sent: list[BindingUpdate] = []  # every BU transmitted (for logs and tests)
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, asyncio.Future[BindingAck]] = {}

    @classmethod
    async def open(cls, *, hoa: str, ha_address: str, ha_endpoint: Endpoint,
                   local: Endpoint | None = None, policy: RetransmitPolicy | None = None,
                   last_seq: int = 0) -> BindingUpdateClient:
        self = cls(hoa=hoa, ha_address=ha_address, ha_endpoint=ha_endpoint, policy=policy,
                   last_seq=last_seq)
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
                self._transport.sendto(encapsulate(bu, src=self.hoa, dst=self.ha_address))
                try:
                    ba = await asyncio.wait_for(asyncio.shield(fut), wait)
                except TimeoutError:
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
            pkt = decapsulate(data)
        except (TransportError, MhParseError) as exc:
            log.debug("dropped a datagram from the HA: %s", exc)
            return
        ba = pkt.msg
        if not isinstance(ba, BindingAck) or pkt.src != self.ha_address or pkt.dst != self.hoa:
            log.debug("dropped %s %s -> %s", type(ba).__name__, pkt.src, pkt.dst)
            return
        fut = self._pending.get(ba.seq)
        if fut is None and ba.status == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW:
            fut = next(iter(self._pending.values()), None)  # carries the HA's last seq
        if fut is not None and not fut.done():
            fut.set_result(ba)


# --- home agent side -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReceivedBu:
    """A Binding Update as the HA got it: `source` is the outer (CoA) endpoint."""

    bu: BindingUpdate
    hoa: IPv6
    ha_address: IPv6
    source: Endpoint


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


class BindingUpdateServer:
    """The HA's UDP endpoint: hands each BU to `handler`, sends back the BA it returns,
    answers an unknown MH type with a Binding Error (status 2, RFC 6275 §9.2) and drops
    everything else (bad checksum: silently, RFC 6275 §9.2)."""

    def __init__(self, handler: BuHandler) -> None:
        self.handler = handler
        self.stats = ServerStats()
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, local: Endpoint, handler: BuHandler) -> BindingUpdateServer:
        self = cls(handler)
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

    def _send(self, msg: Message, src: IPv6, dst: IPv6, to: Endpoint) -> None:
        if self._transport is not None:
            self._transport.sendto(encapsulate(msg, src=src, dst=dst), to)

    def _received(self, data: bytes, source: Endpoint) -> None:
        self.stats.received += 1
        try:
            src, dst, mh = inner_addresses(data)
            msg = parse_mh(mh, src=src, dst=dst, strict=False)
        except UnknownMhType as exc:
            self.stats.binding_errors += 1
            self._send(binding_error_for(exc, src), dst, src, source)
            return
        except MhChecksumError:
            self.stats.dropped += 1
            return
        except (TransportError, MhParseError) as exc:
            log.debug("dropped a datagram from %s: %s", source[0], exc)
            self.stats.dropped += 1
            return
        if not isinstance(msg, BindingUpdate):
            self.stats.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(
            self._answer(ReceivedBu(msg, src, dst, source))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, rx: ReceivedBu) -> None:
        try:
            ba = await self.handler(rx)
        except Exception:  # a handler bug must not kill the socket
            log.exception("Binding Update handler failed")
            self.stats.dropped += 1
            return
        if ba is not None:
            self.stats.answered += 1
            self._send(ba, rx.ha_address, rx.hoa, rx.source)
