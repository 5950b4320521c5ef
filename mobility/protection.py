"""The agents' ESP on the MH-over-UDP path (RFC 5555 §4.1; REQUIREMENTS 4877-01/05,
5555-02): inner IPv6 header (HoA <-> HA) | ESP | Mobility Header, with the BU/BA CHILD_SA
ikev2d negotiated, applied here because a UDP socket cannot make the kernel apply it
(mobility/esp.py is the codec, mobility/transport.py the datagram).

Which SA (`SaBook.refresh`): the transport-mode CHILD_SAs with a Mobility Header selector
that `GET /child-sas/lookup?src=HoA&dst=HA&protocol=mh&mh_type=5` names, i.e. the SPD
entry a BU from the HoA matches (4877-01/03/04/18, and the one-[mh] fallback of 4877-19),
not the payload tunnel behind it: direction "out" on the MN, "in" on the HA. Their
keys come from `GET /child-sas/{id}/keys` (UNIX socket, api.child_sa_keys; docs/api.md),
once per CHILD_SA. After decryption a packet must fit its SA's selectors (RFC 4301 §5.2):
on the HA a BU from the HoA the SA is bound to, on the MN a BA to it; the HA then takes the
identity from the SA's IKE SA (4877-05/16).

Rekeys (RFC 7296 §2.8): for a while the old and the new CHILD_SA are both installed. Both
stay in the book for receiving, by inbound SPI, each with its own anti-replay window;
sending uses the newest one whose outbound SA is in use (7296-64). The book asks ikev2d
again when a packet comes with an SPI it does not know (at most once a second per home
address, so unauthenticated packets cannot make the agent hammer its daemon), after a
child-up, child-rekey or child-down event (`watch`), and on the MN before retransmitting a
BU that got no BA. CHILD_SAs ikev2d deleted leave the book then; the HA asks for every
protected BU before it acts on it (this lookup replaces the "who sent it" lookups of the
unprotected path), so a deleted CHILD_SA authorises nothing.

CHILD_SAs whose keys were handed out before this process fetched them (`handed-out` > 0:
normally this agent before a restart) have sequence numbers and a replay window this
process does not know: sending on one could repeat a sequence number (an AES-GCM nonce, and
the peer would drop it as a replay), receiving on one would take replays. Such a CHILD_SA
is rekeyed (`POST /child-sas/{id}/rekey`) and the new one used: by the MN before its BU, by
the HA when a BU comes on it (that BU is dropped; the retransmission uses the new SA).

Drops (truncated, unknown SPI, bad ICV, replay, bad padding, an SA that may not carry the
packet, an inherited SA) are silent on the wire, logged (at WARNING once a second per
reason, the rest at DEBUG) and counted (`EspStats`, in the status files).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal

from api.selectors import Packet, match, parse_selector
from mobility.errors import (
    EspError,
    EspInherited,
    EspNoKeys,
    EspPolicyError,
    EspSequenceExhausted,
    EspUnknownSpi,
    EspUnsupported,
)
from mobility.esp import (
    DEFAULT_REPLAY_WINDOW,
    MAX_REPLAY_WINDOW,
    NEXT_HEADER_NONE,
    EspKeys,
    EspReceiver,
    EspSender,
    EspTransform,
    Opened,
    spi_of,
)
from mobility.ike_api import IkeApi
from mobility.registry import IPPROTO_MH, MhType

log = logging.getLogger("ikev2-mip6")
REFRESH_INTERVAL = 1.0  # seconds between lookups for unknown SPIs, per home address
USABLE = frozenset({"INSTALLED", "REKEYING", "REKEYED"})
EVENTS = ["child-up", "child-rekey", "child-down", "ike-down", "ike-rekey"]
WATCH_RETRY = (1.0, 30.0)  # seconds before re-opening a broken event stream: first, most


@dataclass(frozen=True, slots=True)
class BuSa:
    """A BU/BA CHILD_SA as ikev2d hands it out (`GET /child-sas/{id}/keys`)."""

    child_id: int
    ike_id: int
    name: str
    local_id: str
    remote_id: str
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    transform: EspTransform
    inbound: EspKeys
    outbound: EspKeys
    replay_window: int
    outbound_active: bool
    handed_out: int

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> BuSa:
        """EspNoKeys for an answer without the fields, EspUnsupported for algorithms
        mobility/esp.py cannot apply."""
        try:
            transform = EspTransform(int(doc["encr-id"]), doc["encr-keysize"],
                                     int(doc["integ-id"]), bool(doc["esn"]))
            window = int(doc["replay-window"])
            return cls(
                child_id=int(doc["uniqueid"]), ike_id=int(doc["ike-sa"]), name=doc["name"],
                local_id=doc["local-id"], remote_id=doc["remote-id"],
                local_ts=tuple(doc["local-ts"]), remote_ts=tuple(doc["remote-ts"]),
                transform=transform, inbound=_keys(doc["in"]), outbound=_keys(doc["out"]),
                # RFC 4303 §3.4.3: 32 at least, 64 SHOULD; the kernel's 0 (off) is not ours
                replay_window=min(max(window, DEFAULT_REPLAY_WINDOW), MAX_REPLAY_WINDOW),
                outbound_active=bool(doc["outbound"]), handed_out=int(doc["handed-out"]))
        except EspUnsupported:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise EspNoKeys(f"ikev2d's CHILD_SA keys answer is not usable: {exc!r}") from None

    def carries(self, src: str, dst: str, mh_type: int) -> list[str]:
        """The directions ("out", "in") in which this SA's selectors take an MH message of
        `mh_type` from `src` to `dst` (api.selectors: the type on the source's side)."""
        pkt = Packet(ipaddress.ip_address(src), ipaddress.ip_address(dst), IPPROTO_MH,
                     mh_type << 8, None)
        view = SimpleNamespace(local_ts=self.local_ts, remote_ts=self.remote_ts)
        return match(view, pkt)  # type: ignore[arg-type]

    def describe(self) -> str:
        return (f"CHILD_SA {self.name}[{self.child_id}] of {self.remote_id or '?'} (SPIs "
                f"{self.inbound.spi:08x}_i {self.outbound.spi:08x}_o)")


def _bu_ba(view: dict[str, Any]) -> bool:
    """A usable transport-mode CHILD_SA selecting the Mobility Header (the BU/BA SA of the
    layout, mobility/layout.py), not a tunnel or an any-protocol SA a BU also matches."""
    if view.get("mode") != "TRANSPORT" or view.get("state") not in USABLE:
        return False
    try:
        return any(parse_selector(t).proto == IPPROTO_MH
                   for t in (*view.get("local-ts", ()), *view.get("remote-ts", ())))
    except ValueError:
        return False


def _keys(side: dict[str, Any]) -> EspKeys:
    return EspKeys(int(side["spi"], 16), bytes.fromhex(side["encr-key"]),
                   bytes.fromhex(side["integ-key"]))


@dataclass(frozen=True, slots=True)
class Unprotected:
    """A Mobility Header that arrived ESP-protected: the SA, the verified ESP packet (its
    sequence number goes into the window at `SaBook.commit`) and the home address."""

    sa: BuSa
    opened: Opened
    hoa: str

    @property
    def mh(self) -> bytes:
        return self.opened.payload


@dataclass
class EspStats:
    """Counters for the status files; `drop` logs, once a second per reason at WARNING."""

    sent: int = 0
    received: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic
    on_drop: Callable[[], None] | None = None  # e.g. rewrite the status file (soon)
    _logged: dict[str, float] = field(default_factory=dict)

    def drop(self, exc: EspError, where: str) -> None:
        self.dropped[exc.reason] = self.dropped.get(exc.reason, 0) + 1
        if self.on_drop is not None:
            self.on_drop()
        now = self.clock()
        loud = now - self._logged.get(exc.reason, -REFRESH_INTERVAL) >= REFRESH_INTERVAL
        if loud:
            self._logged[exc.reason] = now
        log.log(logging.WARNING if loud else logging.DEBUG, "dropped a packet %s (%s): %s",
                where, exc.reason, exc)

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "received": self.received, "dropped": dict(self.dropped)}


class _Live:
    """This process's ESP state on one BU/BA CHILD_SA."""

    __slots__ = ("hoa", "inherited", "receiver", "sa", "sender", "state")

    def __init__(self, sa: BuSa, hoa: str, inherited: bool, state: str) -> None:
        self.sa = sa
        self.hoa = hoa
        self.inherited = inherited
        self.state = state
        self.receiver = EspReceiver(sa.transform, sa.inbound, window=sa.replay_window)
        self.sender = EspSender(sa.transform, sa.outbound)


class SaBook:
    """The BU/BA CHILD_SAs of some home addresses, as this agent uses them (module
    docstring). `direction`: "out" on the MN (a BU leaves by it), "in" on the HA."""

    def __init__(self, api: IkeApi, *, ha_address: str, direction: Literal["out", "in"],
                 clock: Callable[[], float] = time.monotonic,
                 stats: EspStats | None = None) -> None:
        self.api = api
        self.ha = str(ipaddress.IPv6Address(ha_address))
        self.direction = direction
        self.clock = clock
        self.stats = stats or EspStats(clock=clock)
        self.by_spi: dict[int, _Live] = {}  # inbound SPI
        self.by_hoa: dict[str, dict[int, _Live]] = {}  # HoA -> CHILD_SA id -> state
        self.fetched: set[int] = set()  # CHILD_SAs whose keys this process fetched
        self._asked: dict[str, float] = {}  # last lookup per HoA
        self._stale: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._rekeying: dict[int, asyncio.Task[None]] = {}

    # -- asking ikev2d ------------------------------------------------------------------------
    async def refresh(self, hoa: str, *, force: bool = False) -> bool:
        """Look the HoA's BU/BA CHILD_SAs up again (keys for new ones, forget the gone);
        False when skipped: asked less than REFRESH_INTERVAL ago and neither `force`d nor
        marked stale. EspNoKeys when ikev2d cannot be asked or hands out no keys."""
        if not force and hoa not in self._stale and \
                self.clock() - self._asked.get(hoa, -REFRESH_INTERVAL) < REFRESH_INTERVAL:
            return False
        async with self._locks.setdefault(hoa, asyncio.Lock()):
            self._asked[hoa] = self.clock()
            self._stale.discard(hoa)
            try:
                found = await self.api.lookup(src=hoa, dst=self.ha, protocol="mh",
                                              mh_type=int(MhType.BU))
                views = {e["child-sa"]["uniqueid"]: e["child-sa"] for e in found
                         if e["direction"] == self.direction and _bu_ba(e["child-sa"])}
                current = self.by_hoa.setdefault(hoa, {})
                for child_id in [c for c in current if c not in views]:
                    self._forget(hoa, child_id)
                for child_id, view in views.items():
                    if child_id in current:
                        current[child_id].state = view["state"]
                        continue
                    doc = await self.api.child_keys(child_id)
                    # handed out before, or by this process to a _Live since forgotten: its
                    # sequence numbers and window are lost either way
                    inherited = child_id in self.fetched or doc.get("handed-out") != 0
                    self.fetched.add(child_id)
                    sa = BuSa.from_api(doc)
                    live = _Live(sa, hoa, inherited, view["state"])
                    current[child_id] = live
                    self.by_spi[sa.inbound.spi] = live
                    log.info("%s for %s: %s%s", sa.describe(), hoa, sa.transform.name,
                             ", handed out before (it is rekeyed before use)"
                             if live.inherited else "")
            except EspError:
                raise
            except Exception as exc:  # the API: down, 403 (keys off), 404 (just deleted)
                self._stale.add(hoa)
                raise EspNoKeys(f"cannot get the BU/BA SA of {hoa} from ikev2d: {exc}") \
                    from None
        return True

    def _forget(self, hoa: str, child_id: int) -> None:
        live = self.by_hoa.get(hoa, {}).pop(child_id, None)
        if live is not None and self.by_spi.get(live.sa.inbound.spi) is live:
            del self.by_spi[live.sa.inbound.spi]

    def mark_stale(self, hoa: str | None = None) -> None:
        """Ask ikev2d at the next use (one HoA, or all)."""
        self._stale.update([hoa] if hoa is not None else self.by_hoa)

    def note_event(self, event: dict[str, Any]) -> None:
        """An event of ikev2d's stream: a child-down forgets that CHILD_SA at once; any
        of EVENTS makes the next use ask ikev2d."""
        if event.get("type") == "child-down":
            for hoa, lives in self.by_hoa.items():
                if event.get("uniqueid") in lives:
                    self._forget(hoa, event["uniqueid"])
        self.mark_stale()

    def start_rekey(self, live: _Live) -> asyncio.Task[None]:
        """Rekey an inherited CHILD_SA (module docstring); one request per CHILD_SA at a
        time (a failed one may be asked again)."""
        task = self._rekeying.get(live.sa.child_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._rekey(live))
            self._rekeying[live.sa.child_id] = task
        return task

    async def _rekey(self, live: _Live) -> None:
        log.info("rekeying %s: its keys were handed out before this agent had them (a "
                 "restart?), so its sequence numbers start afresh on a new SA",
                 live.sa.describe())
        try:
            answer = await self.api.rekey_child(live.sa.child_id)
        except Exception as exc:
            log.error("rekeying %s failed: %s", live.sa.describe(), exc)
            self._rekeying.pop(live.sa.child_id, None)
            return
        finally:
            self._stale.add(live.hoa)
        log.info("%s rekeyed: %s", live.sa.describe(), answer.get("outcome"))

    # -- sending ------------------------------------------------------------------------------
    async def sender(self, hoa: str) -> _Live | None:
        """The SA a packet from `hoa` (MN) leaves by: the newest usable one whose outbound
        SA is in use; an inherited one is rekeyed first. None: the HoA has no BU/BA SA."""
        if hoa in self._stale or hoa not in self.by_hoa:
            await self.refresh(hoa, force=True)
        for _ in range(2):
            lives = list(self.by_hoa.get(hoa, {}).values())
            if not lives:
                return None
            best = max(lives, key=lambda x: (not x.inherited, x.sa.outbound_active,
                                             x.state != "REKEYED", x.sa.child_id))
            if not best.inherited:
                return best
            await asyncio.shield(self.start_rekey(best))
            await self.refresh(hoa, force=True)
        raise EspInherited(f"{best.sa.describe()} was handed out before and could not be "
                           "rekeyed")

    def seal(self, live: _Live, mh: bytes) -> bytes:
        """The ESP packet carrying `mh` on `live`'s outbound SA."""
        try:
            packet = live.sender.seal(mh, IPPROTO_MH)
        except EspSequenceExhausted:
            live.inherited = True  # no number left: only a new SA will do
            raise
        self.stats.sent += 1
        return packet

    def seal_reply(self, via: Unprotected, mh: bytes) -> bytes:
        """The answer to `via` on the same CHILD_SA's outbound SA (the HA's BA)."""
        live = self.by_hoa.get(via.hoa, {}).get(via.sa.child_id)
        if live is None:
            raise EspPolicyError(f"{via.sa.describe()} is gone; no BA on it")
        return self.seal(live, mh)

    # -- receiving ----------------------------------------------------------------------------
    async def open(self, packet: bytes, *, src: str, dst: str, hoa: str,
                   may_ask: bool = True, rekey_inherited: bool = False) -> Unprotected:
        """Verify and decrypt an ESP packet that came from `src` to `dst` (inner addresses;
        `hoa` is the MN's); an unknown SPI makes the book ask ikev2d (when `may_ask`, at
        most once a second per HoA). A packet on an inherited SA is dropped (and, with
        `rekey_inherited`, the SA rekeyed). The window is not advanced: `commit` does."""
        spi = spi_of(packet)
        live = self.by_spi.get(spi)
        if live is None and may_ask and await self.refresh(hoa):
            live = self.by_spi.get(spi)
        if live is None:
            raise EspUnknownSpi(f"SPI {spi:08x}: no BU/BA SA of this agent")
        if live.inherited:
            if rekey_inherited:
                self.start_rekey(live)
            raise EspInherited(f"{live.sa.describe()} was handed out before this agent had "
                               "it; rekeying it")
        opened = live.receiver.open(packet, commit=False)
        if opened.next_header == NEXT_HEADER_NONE:
            raise EspPolicyError(f"SPI {spi:08x}: a dummy packet (Next Header 59)")
        if opened.next_header != IPPROTO_MH or len(opened.payload) < 3:
            raise EspPolicyError(f"SPI {spi:08x} carries Next Header {opened.next_header}, "
                                 "not a Mobility Header")
        if "in" not in live.sa.carries(src, dst, opened.payload[2]):
            raise EspPolicyError(f"{live.sa.describe()} may not carry MH type "
                                 f"{opened.payload[2]} from {src} to {dst} (its selectors: "
                                 f"{', '.join(live.sa.remote_ts)} <-> "
                                 f"{', '.join(live.sa.local_ts)})")
        return Unprotected(live.sa, opened, hoa)

    async def validate(self, via: Unprotected) -> None:
        """Ask ikev2d whether `via`'s CHILD_SA still protects its HoA (the HA, before it
        acts on a BU); EspPolicyError if not, EspNoKeys if ikev2d cannot say."""
        await self.refresh(via.hoa, force=True)
        if via.sa.child_id not in self.by_hoa.get(via.hoa, {}):
            raise EspPolicyError(f"{via.sa.describe()} no longer protects {via.hoa} in "
                                 "ikev2d (deleted or rekeyed away)")

    def commit(self, via: Unprotected) -> None:
        """Advance the window past `via` (EspReplay if its number was taken meanwhile)."""
        live = self.by_spi.get(via.opened.spi)
        if live is None or live.sa.child_id != via.sa.child_id:
            raise EspPolicyError(f"{via.sa.describe()} left the book meanwhile")
        live.receiver.commit(via.opened)
        self.stats.received += 1

    # -- status -------------------------------------------------------------------------------
    def snapshot(self, hoa: str) -> list[dict[str, Any]]:
        return [{"child_sa": x.sa.child_id, "name": x.sa.name, "state": x.state,
                 "spi_in": f"{x.sa.inbound.spi:08x}", "spi_out": f"{x.sa.outbound.spi:08x}",
                 "algorithms": x.sa.transform.name, "seq_out": x.sender.seq,
                 "seq_in": x.receiver.window.top, "inherited": x.inherited}
                for x in self.by_hoa.get(hoa, {}).values()]

    # -- ikev2d's events ----------------------------------------------------------------------
    async def watch(self) -> None:
        """Follow ikev2d's child events until cancelled (re-opened when the stream breaks;
        the book is then marked stale, as events may have been missed)."""
        wait = WATCH_RETRY[0]
        while True:
            try:
                async for event in self.api.events(EVENTS):
                    wait = WATCH_RETRY[0]
                    self.note_event(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("ikev2d event stream: %s; again in %.0f s", exc, wait)
            self.mark_stale()
            await asyncio.sleep(wait)
            wait = min(wait * 2, WATCH_RETRY[1])


class MnProtection:
    """The MN's side (mobility.transport.ClientProtection): BUs leave ESP-protected when
    the BU/BA SA of the HoA exists and `enabled` (config `protect`); BAs must then come
    protected too."""

    def __init__(self, book: SaBook, hoa: str, *, enabled: bool = True) -> None:
        self.book = book
        self.hoa = str(ipaddress.IPv6Address(hoa))
        self.enabled = enabled
        self._said: str | None = None

    async def seal(self, mh: bytes) -> bytes | None:
        """The ESP packet for a BU, or None: send it unprotected (logged once per cause)."""
        if not self.enabled:
            return None
        try:
            live = await self.book.sender(self.hoa)
            if live is None:
                raise EspNoKeys(f"ikev2d has no BU/BA CHILD_SA for {self.hoa} -> "
                                f"{self.book.ha}")
            packet = self.book.seal(live, mh)
        except EspError as exc:
            if self._said != str(exc):
                log.error("BU sent without ESP: %s (a home agent that requires ESP drops "
                          "it)", exc)
                self._said = str(exc)
            self.book.mark_stale(self.hoa)
            return None
        self._said = None
        return packet

    async def open(self, packet: bytes, *, src: str) -> bytes:
        """The MH of a protected BA from `src` (the HA); raises EspError."""
        via = await self.book.open(packet, src=src, dst=self.hoa, hoa=self.hoa)
        self.book.commit(via)
        return via.mh

    def stale(self) -> None:
        self.book.mark_stale(self.hoa)

    def dropped(self, exc: EspError, where: str) -> None:
        self.book.stats.drop(exc, where)


class HaProtection:
    """The HA's side (mobility.transport.ServerProtection). `known(hoa)`: whether an
    unknown SPI from that HoA may make the book ask ikev2d (a HoA of a configured MN)."""

    def __init__(self, book: SaBook, known: Callable[[str], bool], *,
                 require: bool = True) -> None:
        self.book = book
        self.known = known
        self.require = require

    async def open(self, packet: bytes, *, src: str, dst: str) -> Unprotected:
        if dst != self.book.ha:
            raise EspPolicyError(f"inner destination {dst} is not this home agent "
                                 f"({self.book.ha})")
        return await self.book.open(packet, src=src, dst=dst, hoa=src,
                                    may_ask=self.known(src), rekey_inherited=True)

    def seal_reply(self, via: Unprotected, mh: bytes) -> bytes:
        return self.book.seal_reply(via, mh)

    def dropped(self, exc: EspError, where: str) -> None:
        self.book.stats.drop(exc, where)


async def cancel(task: asyncio.Task[Any] | None) -> None:
    """Stop a background task (the event watcher) and wait for it."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
