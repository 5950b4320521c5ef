"""Kernel notifications on NETLINK_XFRM multicast groups → KernelEvents (REQUIREMENTS X-07,
X-12, X-18): XFRMNLGRP_ACQUIRE, _EXPIRE, _MIGRATE and _MAPPING on a socket of their own,
non-blocking, for an event loop to watch."""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any, Protocol

from ikev2.kernel.base import (
    AcquireRequest,
    ChildSaExpired,
    KernelEvent,
    KernelEventsLost,
    NatMappingChanged,
    SaMigrated,
    SaMove,
    ike_protocol,
)
from ikev2.kernel.xfrm import messages
from ikev2.kernel.xfrm.consts import (
    NETLINK_ADD_MEMBERSHIP,
    SOL_NETLINK,
    PolicyDir,
    XfrmGroup,
    XfrmMode,
    XfrmMsg,
)
from ikev2.kernel.xfrm.cstruct import unpack_addr
from ikev2.kernel.xfrm.netlink import RECV_SIZE, iter_messages, open_xfrm_socket

log = logging.getLogger("ikev2.kernel")

DEFAULT_GROUPS = (XfrmGroup.ACQUIRE, XfrmGroup.EXPIRE, XfrmGroup.MIGRATE, XfrmGroup.MAPPING)


class Resolver(Protocol):
    """What the backend knows that a raw notification does not say."""

    def lookup_sa(self, daddr: str, spi: int) -> tuple[int, int, bool] | None:
        """(core reqid, spi_in, inbound) of an installed SA, or None."""
        ...

    def core_reqid(self, kreqid: int) -> int: ...

    def larval_expired(self, daddr: str, spi: int) -> bool: ...

    def own_migration(self, kreqid: int) -> bool: ...


class XfrmEventSocket:
    """A non-blocking multicast listener. `read()` drains it and returns raw messages."""

    def __init__(self, groups: tuple[int, ...] = DEFAULT_GROUPS, rcvbuf: int = 4 << 20) -> None:
        self.sock = open_xfrm_socket(timeout=None, rcvbuf=rcvbuf)
        for g in groups:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, int(g))
        self.sock.setblocking(False)
        self.lost = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self) -> tuple[list[Any], bool]:
        """(decoded messages, overflowed?) without blocking."""
        out: list[Any] = []
        overflow = False
        while True:
            try:
                buf = self.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    overflow = True
                    self.lost += 1
                    continue
                raise
            for off, _length, mtype, _flags, _seq in iter_messages(buf):
                if mtype in (XfrmMsg.ACQUIRE, XfrmMsg.EXPIRE, XfrmMsg.MIGRATE,
                             XfrmMsg.MAPPING):
                    msg = messages.decode(buf, off, reply=False)
                    if msg is not None:
                        out.append(msg)
        return out, overflow

    def close(self) -> None:
        self.sock.close()


def _fam(family: int) -> int:
    return family or socket.AF_INET6


def translate(msg: Any, resolver: Resolver) -> KernelEvent | None:
    """One decoded kernel notification → a KernelEvent, or None (not ours / not useful)."""
    mtype = msg["header"]["type"]
    if mtype == XfrmMsg.EXPIRE:
        return _expire(msg, resolver)
    if mtype == XfrmMsg.ACQUIRE:
        return _acquire(msg, resolver)
    if mtype == XfrmMsg.MIGRATE:
        return _migrate(msg, resolver)
    if mtype == XfrmMsg.MAPPING:
        return _mapping(msg, resolver)
    return None


def _expire(msg: Any, r: Resolver) -> KernelEvent | None:
    state = msg["state"]
    fam = _fam(state["family"])
    daddr = unpack_addr(state["id"]["daddr"], fam)
    spi = state["id"]["spi"]
    hard = bool(msg["hard"])
    found = r.lookup_sa(daddr, spi)
    if found is None:
        if r.larval_expired(daddr, spi):
            log.debug("larval SA %s spi %08x expired before it was installed", daddr, spi)
        return None
    reqid, spi_in, inbound = found
    return ChildSaExpired(reqid, spi_in, spi, inbound, hard, ike_protocol(state["id"]["proto"]))


def _acquire(msg: Any, r: Resolver) -> KernelEvent | None:
    proto = msg["id"]["proto"]
    tmpls = msg.get_attr("XFRMA_TMPL") or []
    kreqid = next((t["reqid"] for t in tmpls if t["id"]["proto"] == proto),
                  tmpls[0]["reqid"] if tmpls else 0)
    sel = msg["sel"]
    fam = _fam(msg["policy"]["sel"]["family"] or sel["family"])
    sfam = _fam(sel["family"])
    return AcquireRequest(
        reqid=r.core_reqid(kreqid), kernel_reqid=kreqid,
        local=unpack_addr(msg["saddr"], fam), remote=unpack_addr(msg["id"]["daddr"], fam),
        src=unpack_addr(sel["saddr"], sfam), dst=unpack_addr(sel["daddr"], sfam),
        proto=sel["proto"], seq=msg["seq"],
    )


def _migrate(msg: Any, r: Resolver) -> KernelEvent | None:
    direction = msg["dir"]
    moves = []
    own = False
    for m in msg.get_attr("XFRMA_MIGRATE") or []:
        of, nf = _fam(m["old_family"]), _fam(m["new_family"])
        od, os_ = unpack_addr(m["old_daddr"], of), unpack_addr(m["old_saddr"], of)
        nd, ns = unpack_addr(m["new_daddr"], nf), unpack_addr(m["new_saddr"], nf)
        if direction == PolicyDir.OUT:
            old_local, old_remote, new_local, new_remote = os_, od, ns, nd
        else:
            old_local, old_remote, new_local, new_remote = od, os_, nd, ns
        try:
            mode = XfrmMode(m["mode"]).name.lower()
        except ValueError:
            mode = str(m["mode"])
        moves.append(SaMove(r.core_reqid(m["reqid"]), m["reqid"], mode, old_local,
                            old_remote, new_local, new_remote))
        own = own or r.own_migration(m["reqid"])
    km = msg.get_attr("XFRMA_KMADDRESS")
    km_local = km_remote = None
    if km:
        kf = _fam(km["family"])
        km_local, km_remote = unpack_addr(km["local"], kf), unpack_addr(km["remote"], kf)
    return SaMigrated(direction, tuple(moves), km_local, km_remote, own)


def _mapping(msg: Any, r: Resolver) -> KernelEvent | None:
    sid = msg["id"]
    fam = _fam(sid["family"])
    daddr = unpack_addr(sid["daddr"], fam)
    found = r.lookup_sa(daddr, sid["spi"])
    reqid, spi_in = (found[0], found[1]) if found else (r.core_reqid(msg["reqid"]), sid["spi"])
    return NatMappingChanged(
        reqid, spi_in,
        (unpack_addr(msg["old_saddr"], fam), msg["old_sport"]),
        (unpack_addr(msg["new_saddr"], fam), msg["new_sport"]),
    )


def drain(listener: XfrmEventSocket, resolver: Resolver) -> list[KernelEvent]:
    raw, overflow = listener.read()
    events: list[KernelEvent] = [KernelEventsLost()] if overflow else []
    for msg in raw:
        try:
            ev = translate(msg, resolver)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("undecodable XFRM notification type %s: %s",
                        msg["header"]["type"], e)
            continue
        if ev is not None:
            events.append(ev)
    return events
