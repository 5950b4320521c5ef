"""Watch this host's addresses over rtnetlink and tell the engine (RFC 4555 §3.5, §3.6).

One NETLINK_ROUTE socket, subscribed to RTMGRP_LINK | RTMGRP_IPV4_IFADDR |
RTMGRP_IPV6_IFADDR, read from the daemon's asyncio loop through `loop.add_reader` on its
fileno: an address event is handled in the same loop iteration it arrives in, with no
settling delay (strongSwan's kernel-netlink waits a fixed 100 ms, `roam_events`). pyroute2
decodes the messages (`MarshalRtnl`) and encodes the two dump requests; the socket itself
is a plain `socket.socket`, so nothing of pyroute2's own event loop runs here.

Usable addresses (what `Engine.set_local_addresses` gets):
  * scope global (RT_SCOPE_UNIVERSE): no link-local, no host-scope addresses;
  * not tentative, not dadfailed, not deprecated (IFA_F_* / IFA_FLAGS);
  * on a link that is IFF_UP and IFF_RUNNING (a link going down drops its addresses,
    IPv4 ones included, which the kernel keeps on a down link);
  * not on a loopback link and not 127/8 or ::1, unless every `daemon.listen` address is
    a loopback address (loopback-only test setups);
  * one the daemon can send from: any address of a family whose wildcard ("::",
    "0.0.0.0") is in `daemon.listen` (sockets send with IP_PKTINFO / IPV6_PKTINFO), else
    only the listed addresses. No socket is bound on the fly: an address outside
    `daemon.listen` is logged once and never used (docs/mobike.md).

Order matters: an initiator whose address went takes the first address of the same family
(ikev2/core/mobike.py `choose_path`), so the list puts the most recently appeared address
first (a new network usually brings a new address), then the kernel's order.

The engine is told at start (which only records) and on every change of that set; an
empty set is not passed on (the SAs wait for an address to come back, logged), so the
next address that appears is a change the engine acts on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ikev2.daemon.runner import Daemon

log = logging.getLogger("ikev2d")

# linux/rtnetlink.h, linux/if_addr.h, linux/if.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x1, 0x10, 0x100
NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 2, 3, 4
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RT_SCOPE_UNIVERSE, RT_SCOPE_HOST = 0, 254
IFA_F_DADFAILED, IFA_F_DEPRECATED, IFA_F_TENTATIVE = 0x08, 0x20, 0x40
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40
UNUSABLE_FLAGS = IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR
RCVBUF = 1 << 20  # an address storm must not overflow the socket (ENOBUFS → full resync)
RECV_SIZE = 1 << 17
DUMP_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class ListenPolicy:
    """Which host addresses the daemon can use, from `daemon.listen`."""

    any4: bool
    any6: bool
    specific: frozenset[str]
    loopback_ok: bool

    @classmethod
    def from_listen(cls, listen: Iterable[str]) -> ListenPolicy:
        addrs = [ipaddress.ip_address(a) for a in listen]
        return cls(
            any4=ipaddress.ip_address("0.0.0.0") in addrs,
            any6=ipaddress.ip_address("::") in addrs,
            specific=frozenset(str(a) for a in addrs if not a.is_unspecified),
            loopback_ok=bool(addrs) and all(a.is_loopback for a in addrs),
        )

    def covers(self, address: str) -> bool:
        """The daemon has a socket that can send from `address`."""
        ip = ipaddress.ip_address(address)
        if (ip.version == 4 and self.any4) or (ip.version == 6 and self.any6):
            return True
        return str(ip) in self.specific


@dataclass(slots=True)
class Link:
    flags: int
    name: str

    @property
    def up(self) -> bool:
        return self.flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING

    @property
    def loopback(self) -> bool:
        return bool(self.flags & IFF_LOOPBACK)


@dataclass(slots=True)
class Address:
    index: int
    address: str
    scope: int
    flags: int
    seq: int = 0  # 0: seen in a dump; then 1, 2, … in the order addresses appeared


@dataclass(slots=True)
class AddressTable:
    """Links and addresses as rtnetlink reports them; `usable()` applies the policy.
    No I/O: `apply` takes decoded pyroute2 messages (or anything with the same keys)."""

    links: dict[int, Link] = field(default_factory=dict)
    addrs: dict[tuple[int, str], Address] = field(default_factory=dict)
    appeared: int = 0

    def clear(self) -> None:
        self.links.clear()
        self.addrs.clear()

    def apply(self, msg: Any, *, dump: bool = False) -> None:
        kind = msg["header"]["type"]
        if kind in (RTM_NEWLINK, RTM_DELLINK):
            index = msg["index"]
            if kind == RTM_DELLINK:
                self.links.pop(index, None)
                for key in [k for k in self.addrs if k[0] == index]:
                    del self.addrs[key]
            else:
                self.links[index] = Link(msg["flags"], msg.get_attr("IFLA_IFNAME") or "?")
        elif kind in (RTM_NEWADDR, RTM_DELADDR):
            raw = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if not raw:
                return
            try:
                address = str(ipaddress.ip_address(raw.partition("%")[0]))
            except ValueError:
                return
            key = (msg["index"], address)
            if kind == RTM_DELADDR:
                self.addrs.pop(key, None)
                return
            flags = msg.get_attr("IFA_FLAGS")
            old = self.addrs.get(key)
            if old is not None:
                seq = old.seq
            elif dump:
                seq = 0
            else:
                self.appeared += 1
                seq = self.appeared
            self.addrs[key] = Address(
                msg["index"], address, msg["scope"], msg["flags"] if flags is None else flags,
                seq,
            )

    def link_name(self, index: int) -> str:
        link = self.links.get(index)
        return link.name if link is not None else f"if{index}"

    def candidates(self, policy: ListenPolicy) -> list[Address]:
        """Addresses that pass every rule except the listen coverage: the most recently
        appeared first, then those of the first dump in the kernel's order."""
        out = []
        for a in self.addrs.values():
            if a.flags & UNUSABLE_FLAGS:
                continue
            link = self.links.get(a.index)
            if link is not None and not link.up:
                continue
            loopback = ipaddress.ip_address(a.address).is_loopback or (
                link is not None and link.loopback
            )
            if loopback and not policy.loopback_ok:
                continue
            if a.scope != RT_SCOPE_UNIVERSE and not (
                policy.loopback_ok and a.scope == RT_SCOPE_HOST
            ):
                continue
            out.append(a)
        out.sort(key=lambda a: -a.seq)
        return out

    def usable(self, policy: ListenPolicy) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(a.address for a in self.candidates(policy) if policy.covers(a.address))
        )


class AddressWatcher:
    """The rtnetlink socket and the table. `open()` subscribes, dumps links and addresses
    (blocking, once) and returns the usable set; `attach(loop)` then calls
    `on_change(usable)` from the loop whenever the set changes."""

    def __init__(
        self, listen: Iterable[str], on_change: Callable[[tuple[str, ...]], None]
    ) -> None:
        from pyroute2.netlink.rtnl.marshal import MarshalRtnl

        self.policy = ListenPolicy.from_listen(listen)
        self.on_change = on_change
        self.table = AddressTable()
        self.usable: tuple[str, ...] = ()
        self.sock: socket.socket | None = None
        self._marshal = MarshalRtnl()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seq = 0
        self._ignored: set[str] = set()  # addresses outside daemon.listen, logged once

    # -- lifecycle ------------------------------------------------------------------------
    def open(self) -> tuple[str, ...]:
        """Raises OSError when rtnetlink cannot be used (then nothing is left open)."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                             socket.NETLINK_ROUTE)  # fmt: skip
        try:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, GROUPS))  # subscribe first: nothing between dump and events is lost
            self.sock = sock
            self._resync()
        except OSError:
            sock.close()
            self.sock = None
            raise
        return self.usable

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.sock is not None
        self.sock.setblocking(False)
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self.sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()
        self.sock = None

    # -- netlink ----------------------------------------------------------------------------
    def _request_dump(self, kind: int) -> int:
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

        assert self.sock is not None
        self._seq += 1
        msg = ifinfmsg() if kind == RTM_GETLINK else ifaddrmsg()
        msg["family"] = socket.AF_UNSPEC
        msg["header"]["type"] = kind
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP
        msg["header"]["sequence_number"] = self._seq
        msg.encode()
        self.sock.send(msg.data)
        return self._seq

    def _resync(self) -> None:
        """Rebuild the table from dumps of links, then addresses (blocking, bounded by
        DUMP_TIMEOUT). Events that arrive meanwhile are applied in order with the dump."""
        assert self.sock is not None
        blocking_before = self.sock.gettimeout()
        self.sock.settimeout(DUMP_TIMEOUT)
        try:
            self.table.clear()
            for kind in (RTM_GETLINK, RTM_GETADDR):
                seq = self._request_dump(kind)
                done = False
                while not done:
                    data = self.sock.recv(RECV_SIZE)
                    for msg in self._marshal.parse(data):
                        header = msg["header"]
                        if header["sequence_number"] == seq and header["type"] in (
                            NLMSG_DONE, NLMSG_ERROR
                        ):
                            if header.get("error") is not None:
                                raise OSError(errno.EIO, f"rtnetlink dump: {header['error']}")
                            done = True
                        else:
                            self.table.apply(msg, dump=header["sequence_number"] == seq)
        except TimeoutError:
            raise OSError(errno.ETIMEDOUT, "rtnetlink dump did not finish") from None
        finally:
            self.sock.settimeout(blocking_before)
        self.usable = self._compute()

    def _on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        changed = False
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    log.warning("address watcher: netlink receive failed: %s", exc)
                    break
                log.warning("address watcher: netlink events lost (ENOBUFS); re-reading "
                            "all addresses")  # fmt: skip
                try:
                    self._resync()
                except OSError as exc2:
                    log.warning("address watcher: re-reading addresses failed: %s", exc2)
                changed = True
                continue
            if not data:
                break
            for msg in self._marshal.parse(data):
                if msg["header"]["type"] in (RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR):
                    self.table.apply(msg)
                    changed = True
        if not changed:
            return
        usable = self._compute()
        if usable != self.usable:
            old, self.usable = self.usable, usable
            gone = [a for a in old if a not in usable]
            new = [a for a in usable if a not in old]
            log.info("local addresses now %s%s%s", ", ".join(usable) or "none",
                     f"; gone {', '.join(gone)}" if gone else "",
                     f"; new {', '.join(new)}" if new else "")  # fmt: skip
            self.on_change(usable)

    def _compute(self) -> tuple[str, ...]:
        for a in self.table.candidates(self.policy):
            if a.address not in self._ignored and not self.policy.covers(a.address):
                self._ignored.add(a.address)
                log.info("address %s on %s is not in daemon.listen: MOBIKE will not use it "
                         "(listen on \"::\" / \"0.0.0.0\" to roam to any address)",
                         a.address, self.table.link_name(a.index))  # fmt: skip
        return self.table.usable(self.policy)


# -- the daemon's side ------------------------------------------------------------------------
def feed(daemon: Daemon, usable: tuple[str, ...]) -> None:
    """Hand the usable set to the engine (not an empty one), then flush (`_after`)."""
    if not usable:
        log.warning("no usable local address left; MOBIKE SAs keep their addresses until "
                    "one appears")  # fmt: skip
        return
    setter = getattr(daemon.engine, "set_local_addresses", None)
    if setter is None:
        return
    try:
        setter(usable, daemon.clock())
    except Exception:
        log.exception("engine.set_local_addresses(%s) raised", ", ".join(usable))
    daemon._after()


def start_watcher(daemon: Daemon) -> AddressWatcher | None:
    """Open the watcher for `daemon`, give the engine the first address set and read
    changes from the running loop. None (logged) when rtnetlink is unavailable."""
    try:
        watcher = AddressWatcher(daemon.config.listen, lambda usable: feed(daemon, usable))
        usable = watcher.open()
    except (OSError, ImportError) as exc:
        log.warning("cannot watch local addresses (%s): MOBIKE will not react to address "
                    "changes", exc)  # fmt: skip
        return None
    log.info("watching local addresses: %s", ", ".join(usable) or "none usable yet")
    if usable:
        feed(daemon, usable)
    watcher.attach(asyncio.get_running_loop())
    return watcher
