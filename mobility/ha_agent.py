"""The home agent: Binding Updates over MH-over-UDP → binding cache → K-bit move of the
IKE SA through the local ikev2d's REST API → Binding Acknowledgement.

    ikev2-mip6 ha --config ha.toml        (mobility/cli.py; docs/mobility.md "Agents")

Per BU (REQUIREMENTS 4877-01/05/11/14/15/16/25, RFC 6275 §10.3.1):

1. **Who sent it.** A BU comes ESP-protected with the BU/BA CHILD_SA of its home address
   (RFC 5555 §4.1 inside the UDP payload; mobility/protection.py). The transport already
   checked the SPI, the ICV, the replay window and that the SA's selectors cover the inner
   source (the HoA); here ikev2d is asked whether that CHILD_SA still protects the HoA
   (`GET /child-sas/lookup`), the window is advanced, and the identity is the SA's IKE
   SA's peer (4877-05/16). Anything wrong: dropped without an answer, logged, counted in
   the status file. Unprotected BUs are dropped (`require_esp`, the default); with
   `require_esp = false` the identity of an unprotected BU is guessed from the IKE SAs
   instead: an ESTABLISHED IKE SA whose peer is the BU's outer source address
   (`GET /ike-sas?peer_addr=`), preferring one of the HoA's owner, else the HoA's owner
   (authorisation map) provided it has an ESTABLISHED IKE SA holding a CHILD_SA bound to
   that HoA (`GET /ike-sas?peer_id=`). No such IKE SA: no identity, BA 129.
2. **The binding cache** (mobility/binding_cache.py) checks H, home prefix (132), HoA
   known (133), identity authorised for the HoA (129), sequence number (135, carrying the
   last accepted number), options, care-of address (174), lifetime (0: deregistration),
   and K (echoed when the HA supports it).
3. **The IKE SA follows the primary CoA** when K is echoed: every ESTABLISHED IKE SA of
   the identity whose peer is not the primary CoA (the HoA after a return home) is moved
   with `POST /ike-sas/{id}/handover {"remote": CoA, "mode": "kbit"}` (no IKE message,
   4877-13) — *before* the BA goes out (4877-15: "the HA after accepting the BU").
   A first registration from another address than the IKE SA's aligns it too. If the
   identity has no IKE SA left, or the move fails, the BA goes out **with K cleared**:
   the HA did not move its key management connection, so the MN must re-establish it
   (RFC 6275 §11.7.3, 4877-12). Without K (BU without K, or K cleared) and a changed
   primary CoA the IKE SAs of the identity still at the old CoA are deleted
   (`drop_without_k`, RFC 6275 §10.3.1).
4. **The BA** (status, K echo, granted lifetime) goes back to the BU's source, protected
   by the same CHILD_SA when the BU was; then the status file (`ikev2ctl bindings`) is
   rewritten.

Bindings expire on their lifetime (a timer on `BindingCache.next_expiry`); when the
primary CoA changes because its binding expired and K was agreed, the IKE SA follows the
new primary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from mobility.agent_config import HaAgentConfig
from mobility.authorization import identity_key
from mobility.binding_cache import BindingCache, BuOutcome
from mobility.errors import EspError
from mobility.handover import _coa_text, home_agent_decide
from mobility.ike_api import IkeApi, IkeView, established, holds_home_address
from mobility.mh import BindingAck
from mobility.protection import HaProtection, SaBook, Unprotected, cancel
from mobility.registry import BaFlags, BaStatus
from mobility.status import Debounced, EventLog, status_name, write_json_atomic
from mobility.transport import BindingUpdateServer, ReceivedBu

log = logging.getLogger("ikev2-mip6")
RECENT = 32


@dataclasses.dataclass(frozen=True, slots=True)
class Sender:
    """Who a BU is attributed to (step 1 of the module docstring)."""

    identity: str | None
    sas: list[IkeView] | None  # the identity's ESTABLISHED IKE SAs, when already fetched
    how: str


class HomeAgent:
    def __init__(self, cfg: HaAgentConfig, api: IkeApi, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.api = api
        self.clock = clock
        self.cache = BindingCache(cfg.policy(), cfg.authorization())
        self.book = SaBook(api, ha_address=cfg.address, direction="in", clock=clock)
        self.protection = HaProtection(
            self.book, lambda hoa: self.cache.authorization.owner_of(hoa) is not None,
            require=cfg.require_esp)
        self._status_soon = Debounced(lambda: self.write_status(running=True))
        self.book.stats.on_drop = self._status_soon
        self.server: BindingUpdateServer | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.events = EventLog(cfg.events_file)
        self._expiry: asyncio.TimerHandle | None = None
        self._watch: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._unix_offset = time.time() - clock()
        self._listen: list[Any] = [cfg.listen or cfg.address, cfg.port]
        self.write_status(running=True)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        listen = self.cfg.listen or self.cfg.address
        if ipaddress.ip_address(listen).is_unspecified:
            log.warning("listening on %s: BAs leave from whatever source address the route "
                        "to the MN picks; the MN drops those not from %s (listen on it)",
                        listen, self.cfg.address)
        self.server = await BindingUpdateServer.open((listen, self.cfg.port), self.handle,
                                                     self.protection)
        host, port = self.server.local
        self._listen = [host, port]
        self._watch = asyncio.get_running_loop().create_task(self.book.watch())
        log.info("home agent %s: Binding Updates over UDP on [%s]:%d; %d mobile node(s); "
                 "K bit %s; ESP %s", self.cfg.address, host, port, len(self.cfg.mobile_nodes),
                 "supported" if self.cfg.supports_k else "not supported",
                 "required" if self.cfg.require_esp else "optional (require_esp = false)")
        self.write_status(running=True)

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._status_soon.cancel()
        for t in list(self._tasks):
            t.cancel()
        await cancel(self._watch)
        if self.server is not None:
            self.server.close()
        self.write_status(running=False)
        self.events.close()
        await self.api.close()

    # -- one Binding Update -------------------------------------------------------------------
    async def handle(self, rx: ReceivedBu) -> BindingAck | None:
        """One BU, start to BA; BUs of one HoA are handled one after the other, so the IKE
        SA moves in the order the cache accepted them."""
        known = self.cache.authorization.owner_of(rx.hoa) is not None
        lock = self._locks.setdefault(str(rx.hoa) if known else "", asyncio.Lock())
        async with lock:
            return await self._handle(rx)

    async def _handle(self, rx: ReceivedBu) -> BindingAck | None:
        source = _coa_text(rx.source[0])
        hoa = str(rx.hoa)
        bu = rx.bu
        self.events("bu-received", hoa=hoa, source=source, seq=bu.seq, k=bu.key_mgmt,
                    lifetime=bu.lifetime_seconds, esp=rx.esp is not None)
        if rx.esp is not None:
            try:
                sender = await self.identify_protected(rx.esp)
            except EspError as exc:  # no answer, no state change
                if self.server is not None:
                    self.server.stats.dropped += 1
                self.book.stats.drop(exc, f"from {source} (BU {hoa} seq {bu.seq})")
                return None
        else:
            try:
                sender = await self.identify(hoa, source)
            except Exception as exc:  # the API is down: nobody can be authenticated
                log.error("cannot ask ikev2d who sent the BU from %s: %s", source, exc)
                sender = Sender(None, None, f"the IKE daemon's API failed: {exc}")
        outcome = self.cache.process_bu(bu, hoa=hoa, source=source, identity=sender.identity,
                                        now=self.clock())
        reason = outcome.reason
        if sender.identity is None and outcome.status == BaStatus.ADMINISTRATIVELY_PROHIBITED:
            reason = f"{reason}: {sender.how}"
        ba = outcome.ba
        moved: list[int] = []
        dropped: list[int] = []
        if outcome.accepted:
            if ba.key_mgmt:
                target = hoa if outcome.returned_home else outcome.primary_after
                if target is not None:
                    ok, moved, why = await self.align(sender, str(target))
                    if not ok:
                        ba = dataclasses.replace(ba, flags=BaFlags(ba.flags & ~BaFlags.K))
                        reason = f"{reason}; K cleared: {why}"
                        log.warning("BU %s from %s: the IKE SA cannot follow (%s); K cleared "
                                    "in the BA, the MN has to re-establish it", hoa, source,
                                    why)
            else:
                old = home_agent_decide(outcome).drop_ike_sa_to
                if old is not None and self.cfg.drop_without_k and sender.identity:
                    dropped = await self.drop(sender.identity, str(old))
        self._record(rx, source, outcome, ba, reason, moved, dropped)
        return ba if outcome.reply else None

    async def identify_protected(self, via: Unprotected) -> Sender:
        """Step 1 for an ESP-protected BU: its CHILD_SA must still protect the HoA in
        ikev2d (asked together with the identity's IKE SAs, which a K-bit move needs);
        then the window takes its sequence number. The identity is the SA's IKE peer."""
        identity = via.sa.remote_id
        checked, sas = await asyncio.gather(
            self.book.validate(via),
            self.api.ike_sas(peer_id=identity, state="ESTABLISHED"),
            return_exceptions=True)
        if isinstance(checked, BaseException):
            raise checked
        self.book.commit(via)
        return Sender(identity or None, None if isinstance(sas, BaseException)
                      else established(sas),
                      f"ESP {via.opened.spi:08x} seq {via.opened.seq}: {via.sa.describe()}")

    async def identify(self, hoa: str, source: str) -> Sender:
        """Step 1 of the module docstring. The two lookups run concurrently; an IKE SA at
        the source address wins, so an authenticated MN cannot register (and move) another
        MN's home address from its own address."""
        owner = self.cache.authorization.owner_of(hoa)
        if owner is not None:
            at, of_owner = await asyncio.gather(
                self.api.ike_sas(peer_addr=source, state="ESTABLISHED"),
                self.api.ike_sas(peer_id=str(owner), state="ESTABLISHED"))
            at_source, sas = established(at), established(of_owner)
        else:
            at_source = established(await self.api.ike_sas(peer_addr=source,
                                                           state="ESTABLISHED"))
            sas = []
        if at_source:
            if owner is not None:
                for sa in at_source:
                    if _same_identity(sa.get("remote-id", ""), owner):
                        return Sender(sa["remote-id"], sas,
                                      f"IKE SA #{sa['uniqueid']} at {source}")
            sa = at_source[0]
            return Sender(sa.get("remote-id") or None, None,
                          f"IKE SA #{sa['uniqueid']} at {source}")
        if owner is None:
            return Sender(None, None, f"no IKE SA at {source}")
        bound = [s for s in sas if holds_home_address(s, hoa)]
        if bound:
            return Sender(str(owner), sas, f"IKE SA #{bound[0]['uniqueid']} holds the SAs of "
                                           f"{hoa}")
        return Sender(None, None, f"no IKE SA of {owner} holds SAs for {hoa} (none at "
                                  f"{source} either)")

    async def align(self, sender: Sender, target: str) -> tuple[bool, list[int], str]:
        """Move the identity's IKE SAs to `target` (K bit). (ok, moved ids, why not)."""
        if sender.identity is None:
            return False, [], "no identity"
        sas = sender.sas
        if sas is None:
            sas = established(await self.api.ike_sas(peer_id=sender.identity,
                                                     state="ESTABLISHED"))
        if not sas:
            return False, [], f"no established IKE SA of {sender.identity}"
        moved = []
        for sa in sas:
            if sa["remote-host"] == target:
                continue
            t0 = self.clock()
            try:
                answer = await self.api.handover(sa["uniqueid"], remote=target, mode="kbit")
            except Exception as exc:
                return False, moved, f"handover of IKE SA #{sa['uniqueid']} failed: {exc}"
            t1 = self.events("ike-moved", ike_sa=sa["uniqueid"], remote=target,
                             old=sa["remote-host"], moved=bool(answer.get("moved")))
            log.info("IKE SA #%d of %s moved (K bit): peer %s -> %s in %.1f ms",
                     sa["uniqueid"], sender.identity, sa["remote-host"], target,
                     (t1 - t0) * 1000)
            moved.append(sa["uniqueid"])
        return True, moved, ""

    async def drop(self, identity: str, old: str) -> list[int]:
        """Without K: delete the identity's IKE SAs still at the old CoA (RFC 6275 §10.3.1)."""
        out = []
        try:
            sas = established(await self.api.ike_sas(peer_id=identity, state="ESTABLISHED"))
            for sa in sas:
                if sa["remote-host"] == old:
                    await self.api.terminate(sa["uniqueid"])
                    log.info("IKE SA #%d of %s at the old CoA %s deleted (no K bit)",
                             sa["uniqueid"], identity, old)
                    out.append(sa["uniqueid"])
        except Exception as exc:
            log.warning("deleting the IKE SAs of %s at %s failed: %s", identity, old, exc)
        return out

    def _record(self, rx: ReceivedBu, source: str, outcome: BuOutcome, ba: BindingAck,
                reason: str, moved: list[int], dropped: list[int]) -> None:
        entry = {
            "time": round(time.time(), 3), "hoa": str(rx.hoa), "source": source,
            "port": rx.source[1], "seq": rx.bu.seq, "k_requested": rx.bu.key_mgmt,
            "lifetime_requested": rx.bu.lifetime_seconds, "status": int(ba.status),
            "status_name": status_name(int(ba.status)), "reason": reason, "k": ba.key_mgmt,
            "lifetime": ba.lifetime_seconds, "ba_seq": ba.seq,
            "identity": str(outcome.identity) if outcome.identity else None,
            "primary": str(outcome.primary_after) if outcome.primary_after else None,
            "moved": moved, "dropped": dropped, "answered": outcome.reply,
            "esp": f"{rx.esp.opened.spi:08x}" if rx.esp is not None else None,
        }
        self.recent.append(entry)
        self.events("ba-sent", **{k: entry[k] for k in ("hoa", "source", "seq", "status",
                                                         "k", "moved")})
        level = logging.INFO if outcome.accepted else logging.WARNING
        log.log(level, "BU %s seq %d from %s%s%s: %s (%s)%s", rx.hoa, rx.bu.seq, source,
                " K" if rx.bu.key_mgmt else "", f" ESP {entry['esp']}" if entry["esp"] else
                " without ESP", entry["status_name"], reason,
                f"; BA K, lifetime {ba.lifetime_seconds}s" if ba.key_mgmt else
                f"; BA lifetime {ba.lifetime_seconds}s" if outcome.accepted else "")
        loop = asyncio.get_running_loop()
        loop.call_soon(self._after_ba)  # after the server sent the BA

    def _after_ba(self) -> None:
        self.write_status(running=True)
        self._arm_expiry()

    # -- expiry -------------------------------------------------------------------------------
    def _arm_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        nxt = self.cache.next_expiry()
        if nxt is None:
            return
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, nxt - self.clock()) + 0.001, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        report = self.cache.expire(self.clock())
        for b in report.removed:
            log.info("binding %s -> %s expired", b.hoa, b.coa)
        for change in report.primary_changes:
            ident = self.cache.identity_of(change.hoa)
            k = change.new is not None and any(
                b.key_mgmt for b in self.cache.bindings(change.hoa, self.clock())
                if b.coa == change.new)
            if k and ident is not None:
                task = asyncio.get_running_loop().create_task(
                    self.align(Sender(str(ident), None, "expiry"), str(change.new)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self.write_status(running=True)
        self._arm_expiry()

    # -- status -------------------------------------------------------------------------------
    def snapshot(self, *, running: bool = True) -> dict[str, Any]:
        now = self.clock()
        off = self._unix_offset
        entries = []
        for hoa in self.cache.home_addresses():
            prim = self.cache.primary(hoa, now)
            ident = self.cache.identity_of(hoa)
            entries.append({
                "hoa": str(hoa), "identity": str(ident) if ident else None,
                "last_seq": self.cache.last_seq(hoa),
                "primary": str(prim.coa) if prim else None,
                "coas": [{"coa": str(b.coa), "bid": b.bid, "priority": b.priority,
                          "seq": b.seq, "k": b.key_mgmt, "lifetime": b.lifetime,
                          "registered_at": round(b.registered_at + off, 3),
                          "expires_at": round(b.expires_at + off, 3)}
                         for b in self.cache.bindings(hoa, now)],
            })
        stats = dataclasses.asdict(self.server.stats) if self.server else {}
        listen = self._listen
        esp = {"require": self.cfg.require_esp, **self.book.stats.as_dict(),
               "sas": {hoa: self.book.snapshot(hoa) for hoa in sorted(self.book.by_hoa)}}
        return {"version": 1, "role": "ha", "pid": os.getpid(), "running": running,
                "written_at": round(time.time(), 3), "address": self.cfg.address,
                "listen": listen, "supports_k": self.cfg.supports_k, "stats": stats,
                "esp": esp, "bindings": entries, "recent": list(self.recent)}

    def write_status(self, *, running: bool) -> None:
        if not self.cfg.status_file:
            return
        try:
            write_json_atomic(self.cfg.status_file, self.snapshot(running=running))
        except OSError as exc:
            log.warning("cannot write the status file %s: %s", self.cfg.status_file, exc)


def _same_identity(text: str, owner: Any) -> bool:
    try:
        return identity_key(text) == owner
    except Exception:
        return False


def primary_of(doc: dict[str, Any], hoa: str) -> str | None:
    """The primary CoA of `hoa` in a HA status document (tests, benches)."""
    for entry in doc.get("bindings", []):
        if entry["hoa"] == hoa:
            return entry["primary"]  # type: ignore[no-any-return]
    return None
