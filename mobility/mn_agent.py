"""The mobile node: watch this node's addresses, pick the primary care-of address, register
it with the home agent (BU/BA over MH-over-UDP) and keep the IKE SA on it through the local
ikev2d's REST API.

    ikev2-mip6 mn --config mn.toml        (mobility/cli.py; docs/mobility.md "Agents")

Addresses come from rtnetlink through ikev2d's own watcher (ikev2/daemon/addresses.py: one
NETLINK_ROUTE socket read from the asyncio loop, no settling delay; scope global, not
tentative/deprecated/dadfailed, on an up link, not on lo). Among them the **primary CoA**
(`choose_coa`): the home address itself when it is on a link (the MN is at home: return
home, RFC 6275 §11.5.4); else addresses of the HA endpoint's family, outside the home
prefix, not on `exclude_interfaces`, ranked by `prefer_interfaces`, then
`prefer_prefixes` (earlier is better; unlisted after the listed), then newest first. The
current CoA is kept while nothing strictly better exists (no flapping between equals).

On a change of the primary CoA (REQUIREMENTS 4877-08/12/13/15, RFC 6275 §11.7):

1. *Before the BU*, only when asked: `prefer_mobike = true` and the IKE SA negotiated
   MOBIKE (and this side initiated it) → `handover mode=mobike` (UPDATE_SA_ADDRESSES), and
   the BU then goes without K (one mechanism per SA, 4877-13 D). `ike_move = "before-bu"`
   and the last BA had K → `handover mode=kbit` right away (no IKE message is sent: the
   IKE SA just stops using the address that is gone); not the RFC 4877 §4.4 order.
2. The BU (A, H, K unless MOBIKE moved the SA, lifetime; lifetime 0 from the HoA when at
   home) leaves from the new CoA to the HA, retransmitted per RFC 6275 §11.8 (1 s, 1.5 s
   for a first registration, doubling to 32 s; every try a new sequence number; a 135
   answer resynchronises once: mobility/transport.py). With `protect` (the default) and a
   BU/BA CHILD_SA in ikev2d it is ESP-protected with that SA, and only a BA protected by
   it is taken (mobility/protection.py: keys over the API, rekeys followed through the
   event stream; 4877-01, 5555-02).
3. On the BA (default `ike_move = "after-ba"`, the order of 4877-15):
   - accepted with K in the BU and the BA → `handover local=<CoA> mode=kbit` when the IKE
     SA is not there yet (no IKE exchange, same SPIs: 4877-11/13);
   - accepted without K (the HA cleared it: it could not move its side) → the IKE SA is
     re-established from the new CoA (4877-08/12): the old one is deleted, the connection
     initiated again from the CoA (`initiate local=<CoA>`, not the routed source);
   - rejected → logged with the status; the IKE SA is left alone.
4. Re-registration after `refresh` times the granted lifetime (or at the Binding Refresh Advice).

A newer change cancels a registration in flight (its CoA may be gone); the REST calls of
one registration never overlap those of the next.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from mobility.agent_config import MnAgentConfig
from mobility.errors import BindingAckTimeout
from mobility.ike_api import IkeApi, IkeView, established
from mobility.mh import BindingAck, BindingUpdate, lifetime_units
from mobility.options import BindingRefreshAdvice
from mobility.protection import MnProtection, SaBook, cancel
from mobility.registry import LIFETIME_UNIT, BuFlags
from mobility.status import Debounced, EventLog, status_name, write_json_atomic
from mobility.transport import BindingUpdateClient

log = logging.getLogger("ikev2-mip6")
RECENT = 32
IKE_POLL = 0.1


@dataclass(frozen=True, slots=True)
class Candidate:
    """One usable address of this node. `order`: when it appeared (larger = newer)."""

    address: str
    interface: str = ""
    order: int = 0


def _rank(c: Candidate, cfg: MnAgentConfig) -> tuple[int, int]:
    ifs = cfg.prefer_interfaces
    i = ifs.index(c.interface) if c.interface in ifs else len(ifs)
    addr = ipaddress.ip_address(c.address)
    p = next((n for n, net in enumerate(cfg.prefer_prefixes)
              if addr in ipaddress.ip_network(net)), len(cfg.prefer_prefixes))
    return i, p


def care_of_candidates(cands: Iterable[Candidate], cfg: MnAgentConfig) -> list[Candidate]:
    """Addresses that can be a CoA: the HA endpoint's family, not the HoA or in the home
    prefix, not on an excluded interface."""
    family = ipaddress.ip_address(cfg.ha_endpoint).version
    home_net = ipaddress.ip_network(cfg.home_prefix) if cfg.home_prefix else None
    out = []
    for c in cands:
        addr = ipaddress.ip_address(c.address)
        if addr.version != family or c.interface in cfg.exclude_interfaces:
            continue
        if c.address == cfg.home_address or (home_net is not None and addr in home_net):
            continue
        out.append(c)
    return out


def choose_coa(cands: Iterable[Candidate], current: str | None,
               cfg: MnAgentConfig) -> str | None:
    """The primary CoA (module docstring); the HoA when it is on a link (at home)."""
    cands = list(cands)
    if any(c.address == cfg.home_address for c in cands):
        return cfg.home_address
    usable = care_of_candidates(cands, cfg)
    if not usable:
        return None
    best = min(_rank(c, cfg) for c in usable)
    tops = [c for c in usable if _rank(c, cfg) == best]
    if current is not None and any(c.address == current for c in tops):
        return current
    return max(tops, key=lambda c: c.order).address


class AddressSource(Protocol):
    def open(self, on_change: Callable[[list[Candidate]], None]) -> list[Candidate]: ...
    def close(self) -> None: ...


class NetlinkAddresses:
    """This namespace's addresses over rtnetlink (ikev2d's AddressWatcher, wildcard policy
    so every global address counts)."""

    def __init__(self) -> None:
        self.watcher: Any = None

    def open(self, on_change: Callable[[list[Candidate]], None]) -> list[Candidate]:
        from ikev2.daemon.addresses import AddressWatcher

        self.watcher = AddressWatcher(["::", "0.0.0.0"], lambda _usable: on_change(self.now()))
        self.watcher.open()
        self.watcher.attach(asyncio.get_running_loop())
        return self.now()

    def now(self) -> list[Candidate]:
        w = self.watcher
        return [Candidate(a.address, w.table.link_name(a.index), a.seq)
                for a in w.table.candidates(w.policy)]

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()


class MobileNode:
    def __init__(self, cfg: MnAgentConfig, api: IkeApi, *,
                 addresses: AddressSource | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.api = api
        self.addresses: AddressSource = addresses or NetlinkAddresses()
        self.clock = clock
        self.book = SaBook(api, ha_address=cfg.ha_address, direction="out", clock=clock)
        self.protection = MnProtection(self.book, cfg.home_address) if cfg.protect else None
        self.client = BindingUpdateClient(hoa=cfg.home_address, ha_address=cfg.ha_address,
                                          ha_endpoint=(cfg.ha_endpoint, cfg.port),
                                          policy=cfg.retransmit, protection=self.protection)
        self.candidates: list[Candidate] = []
        self.coa: str | None = None  # registered (the HoA when at home)
        self.want: str | None = None  # chosen; registration may be under way
        self.state = "starting"
        self.k_agreed = False
        self.last_ba: dict[str, Any] | None = None
        self.expires_at: float | None = None
        self.ike: IkeView | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.events = EventLog(cfg.events_file)
        self._task: asyncio.Task[None] | None = None
        self._refresh: asyncio.TimerHandle | None = None
        self._watch: asyncio.Task[None] | None = None
        self._status_soon = Debounced(self.write_status)
        self.book.stats.on_drop = self._status_soon
        self._started = False
        self._unix_offset = time.time() - clock()

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self.candidates = self.addresses.open(self._on_addresses)
        log.info("mobile node %s, home agent %s (UDP [%s]:%d), connection %s; BUs %s; "
                 "addresses: %s", self.cfg.home_address, self.cfg.ha_address,
                 self.cfg.ha_endpoint, self.cfg.port, self.cfg.connection,
                 "ESP-protected with the BU/BA SA" if self.cfg.protect else "unprotected",
                 ", ".join(f"{c.address}%{c.interface}" for c in self.candidates) or "none")
        if self.protection is not None:
            self._watch = asyncio.get_running_loop().create_task(self.book.watch())
        ike = await self._wait_ike()
        self._started = True
        self._update(hint=ike["local-host"] if ike else None)
        self.write_status()

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        await cancel(self._watch)
        self._status_soon.cancel()
        self.addresses.close()
        self.client.close()
        self.state = "stopped"
        self.write_status()
        self.events.close()
        await self.api.close()

    async def _wait_ike(self) -> IkeView | None:
        deadline = self.clock() + self.cfg.ike_wait
        said = False
        while True:
            try:
                ike = await self._ike_sa()
            except Exception as exc:
                ike = None
                if not said:
                    log.warning("ikev2d API: %s", exc)
            if ike is not None or self.clock() >= deadline:
                if ike is None:
                    log.warning("no established IKE SA of connection %s after %.0f s; "
                                "registering anyway", self.cfg.connection, self.cfg.ike_wait)
                return ike
            if not said:
                log.info("waiting for the IKE SA of connection %s", self.cfg.connection)
                said = True
            await asyncio.sleep(IKE_POLL)

    # -- addresses ----------------------------------------------------------------------------
    def _on_addresses(self, cands: list[Candidate]) -> None:
        self.candidates = cands
        self.events("addresses", addresses=[c.address for c in cands])
        if self._started:
            self._update()

    def _update(self, hint: str | None = None) -> None:
        want = choose_coa(self.candidates, self.want or hint, self.cfg)
        if want == self.want:
            return
        old, self.want = self.want, want
        self.events("coa-change", old=old, new=want)
        prev = self._task
        if prev is not None and not prev.done():
            prev.cancel()
        if want is None:
            log.warning("no usable care-of address (had %s); waiting for one", old or "none")
            self.state = "no-coa"
            self.write_status()
            return
        log.info("primary care-of address %s -> %s%s", old or "none", want,
                 " (at home)" if want == self.cfg.home_address else "")
        self._task = asyncio.get_running_loop().create_task(self._register(want, prev))

    # -- registration -------------------------------------------------------------------------
    async def _register(self, coa: str, prev: asyncio.Task[None] | None,
                        refresh: bool = False) -> None:
        if prev is not None and not prev.done():
            await asyncio.wait({prev})  # its REST calls are over before ours start
        cfg = self.cfg
        home = coa == cfg.home_address
        old = self.coa
        mobike_used = moved_early = False
        if not refresh and (cfg.prefer_mobike or (cfg.ike_move == "before-bu" and cfg.k_bit
                                                  and self.k_agreed)):
            ike = await self._ike_sa_logged()
            if ike is not None and ike["local-host"] != coa:
                if cfg.prefer_mobike and ike.get("mobike") and ike.get("initiator"):
                    mobike_used = await self._move_ike(ike, coa, "mobike")
                elif cfg.ike_move == "before-bu" and cfg.k_bit and self.k_agreed:
                    moved_early = await self._move_ike(ike, coa, "kbit")
        k = cfg.k_bit and not mobike_used
        flags = BuFlags.A | BuFlags.H | (BuFlags.K if k else BuFlags(0))
        bu = BindingUpdate(0, flags, 0 if home else lifetime_units(cfg.lifetime))
        self.state = "refreshing" if refresh else "registering"
        try:
            await self.client.rebind((coa, 0))
        except OSError as exc:
            log.error("cannot send from %s: %s", coa, exc)
            self.state = "no-coa"
            self.write_status()
            return
        first = old is None or old == cfg.home_address
        self.events("bu-sent", coa=coa, seq=(self.client.seq + 1) & 0xFFFF, k=k,
                    refresh=refresh)
        try:
            ba = await self.client.register(bu, first_registration=first and not home)
        except BindingAckTimeout as exc:
            log.error("%s; trying again in %.0f s", exc, cfg.retransmit.maximum)
            self.state = "no-ba"
            self._note(coa, None, f"no BA: {exc}")
            self._schedule_refresh(cfg.retransmit.maximum)
            return
        esp = self.client.protected
        t_ba = self.events("ba", coa=coa, seq=ba.seq, status=int(ba.status), k=ba.key_mgmt,
                           lifetime=ba.lifetime_seconds, esp=esp)
        self.last_ba = {"status": int(ba.status), "status_name": status_name(int(ba.status)),
                        "seq": ba.seq, "k": ba.key_mgmt, "lifetime": ba.lifetime_seconds,
                        "esp": esp, "time": round(t_ba + self._unix_offset, 3)}
        if not ba.accepted:
            log.error("home agent refused the BU from %s (seq %d): %s (%d)", coa, ba.seq,
                      status_name(int(ba.status)), int(ba.status))
            self.state = "rejected"
            self._note(coa, ba, "refused")
            self._schedule_refresh(cfg.retransmit.maximum)  # try again, slowly
            return
        self.coa = coa
        self.k_agreed = k and ba.key_mgmt
        self.expires_at = t_ba + ba.lifetime_seconds if not home else None
        self.state = "home" if home else "registered"
        log.info("%s %s at %s: BA seq %d, lifetime %d s%s%s", "deregistered" if home else
                 "registered", cfg.home_address, coa, ba.seq, ba.lifetime_seconds,
                 ", K" if ba.key_mgmt else (", K cleared by the HA" if k else ""),
                 ", ESP" if esp else ", no ESP")
        if not home and ba.lifetime_seconds > 0:
            self._schedule_refresh(_refresh_after(ba, cfg.refresh))
        if mobike_used:
            note = "IKE SA moved by MOBIKE"
        elif self.k_agreed:
            note = "K bit"
            if not moved_early and not await self._follow(coa):
                note = "K bit, but no IKE SA to move"
                await self._renegotiate(None, coa)
        else:
            note = "no K bit"
            ike = await self._ike_sa_logged()
            if ike is None or ike["local-host"] != coa:
                await self._renegotiate(ike, coa)
        self._note(coa, ba, note)

    def _note(self, coa: str, ba: BindingAck | None, what: str) -> None:
        entry: dict[str, Any] = {"time": round(time.time(), 3), "coa": coa}
        if ba is not None:
            entry.update(seq=ba.seq, status=int(ba.status),
                         status_name=status_name(int(ba.status)), k=ba.key_mgmt)
        entry["summary"] = (f"BU from {coa}: " + (f"{entry['status_name']} seq {ba.seq}"
                            if ba is not None else "no answer") + f" ({what})")
        self.recent.append(entry)
        self.write_status()

    def _schedule_refresh(self, after: float) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        self._refresh = asyncio.get_running_loop().call_later(after, self._refresh_now)

    def _refresh_now(self) -> None:
        self._refresh = None
        if self.want is None or (self._task is not None and not self._task.done()):
            return
        log.info("re-registering %s at %s", self.cfg.home_address, self.want)
        self._task = asyncio.get_running_loop().create_task(
            self._register(self.want, None, refresh=self.want == self.coa))

    # -- the IKE SA ---------------------------------------------------------------------------
    async def _ike_sa(self) -> IkeView | None:
        sas = established(await self.api.ike_sas(connection=self.cfg.connection,
                                                 state="ESTABLISHED"))
        self.ike = max(sas, key=lambda s: s["uniqueid"]) if sas else None
        return self.ike

    async def _ike_sa_logged(self) -> IkeView | None:
        try:
            return await self._ike_sa()
        except Exception as exc:
            log.error("ikev2d API: cannot list the IKE SAs of %s: %s", self.cfg.connection, exc)
            return None

    async def _follow(self, coa: str) -> bool:
        """K agreed: move the IKE SA to `coa`. The last known view saves a listing (it
        carries the id); a stale one (the SA was rekeyed or deleted) makes us list."""
        ike = self.ike
        if ike is not None:
            if ike["local-host"] == coa:
                ike = await self._ike_sa_logged()  # check: others may have moved it
                if ike is None or ike["local-host"] == coa:
                    return ike is not None
            if await self._move_ike(ike, coa, "kbit", quiet_404=True):
                return True
        ike = await self._ike_sa_logged()
        if ike is None:
            return False
        return ike["local-host"] == coa or await self._move_ike(ike, coa, "kbit")

    async def _move_ike(self, ike: IkeView, coa: str, mode: str,
                        quiet_404: bool = False) -> bool:
        t0 = self.clock()
        try:
            answer = await asyncio.shield(self.api.handover(ike["uniqueid"], local=coa,
                                                            mode=mode))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if quiet_404 and getattr(exc, "status", None) == 404:
                return False  # a stale id; the caller lists the SAs
            log.error("handover of IKE SA #%d to %s (%s) failed: %s", ike["uniqueid"], coa,
                      mode, exc)
            self.events("ike-move-failed", ike_sa=ike["uniqueid"], local=coa, mode=mode,
                        error=str(exc))
            return False
        t1 = self.events("ike-moved", ike_sa=ike["uniqueid"], local=coa, mode=mode,
                         moved=bool(answer.get("moved")), old=ike["local-host"])
        view = answer.get("ike-sa")
        if isinstance(view, dict):
            self.ike = view
        log.info("IKE SA #%d moved (%s): %s -> %s, same SPIs, in %.1f ms", ike["uniqueid"],
                 mode, ike["local-host"], coa, (t1 - t0) * 1000)
        return True

    async def _renegotiate(self, ike: IkeView | None, coa: str) -> None:
        """K not agreed: a new IKE SA from the new CoA (RFC 4877 §4.4, 4877-08/12)."""
        log.info("re-establishing the IKE SA of %s from %s (no K bit)%s",
                 self.cfg.connection, coa, f"; deleting IKE SA #{ike['uniqueid']}" if ike else "")
        try:
            if ike is not None:
                await self.api.terminate(ike["uniqueid"])
            await self.api.initiate(self.cfg.connection, local=coa,
                                    timeout=self.cfg.api.timeout)
        except Exception as exc:
            log.error("re-establishing the IKE SA of %s from %s failed: %s",
                      self.cfg.connection, coa, exc)
            self.events("ike-renegotiate-failed", local=coa, error=str(exc))
            return
        new = await self._ike_sa_logged()
        self.events("ike-renegotiated", ike_sa=new["uniqueid"] if new else None,
                    local=new["local-host"] if new else None)
        if new is not None and new["local-host"] != coa:  # moved on meanwhile (MOBIKE?)
            log.warning("the new IKE SA #%d runs from %s, no longer from the CoA %s",
                        new["uniqueid"], new["local-host"], coa)

    # -- status -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        off = self._unix_offset
        ike = self.ike
        return {
            "version": 1, "role": "mn", "pid": os.getpid(),
            "running": self.state != "stopped", "written_at": round(time.time(), 3),
            "hoa": self.cfg.home_address, "ha": self.cfg.ha_address,
            "ha_endpoint": [self.cfg.ha_endpoint, self.cfg.port],
            "connection": self.cfg.connection, "state": self.state, "coa": self.coa,
            "wanted_coa": self.want, "seq": self.client.seq, "k_agreed": self.k_agreed,
            "last_ba": self.last_ba,
            "expires_at": round(self.expires_at + off, 3) if self.expires_at else None,
            "candidates": [{"address": c.address, "interface": c.interface}
                           for c in self.candidates],
            "ike_sa": {k: ike.get(k) for k in ("uniqueid", "local-host", "remote-host",
                                                "initiator-spi", "responder-spi", "mobike")}
            if ike else None,
            "esp": {"protect": self.cfg.protect, "last_bu": self.client.protected,
                    **self.book.stats.as_dict(),
                    "sas": self.book.snapshot(str(self.client.hoa))},
            "recent": list(self.recent),
        }

    def write_status(self) -> None:
        if not self.cfg.status_file:
            return
        try:
            write_json_atomic(self.cfg.status_file, self.snapshot())
        except OSError as exc:
            log.warning("cannot write the status file %s: %s", self.cfg.status_file, exc)


def _refresh_after(ba: BindingAck, fraction: float) -> float:
    """When to re-register: `fraction` of the granted lifetime, or the Binding Refresh
    Advice if the HA sent an earlier one (RFC 6275 §6.2.4)."""
    after = ba.lifetime_seconds * fraction
    for opt in ba.options:
        if isinstance(opt, BindingRefreshAdvice):
            after = min(after, opt.refresh_interval * LIFETIME_UNIT)
    return max(after, 1.0)
