"""Which XFRM entries are ikev2d's, and the mapping of the core's reqids into that range.

Tag: every SA ikev2d installs (including the larval SAs ALLOCSPI creates) carries a reqid
in [reqid_base, reqid_base + reqid_span), and every policy it installs has a template with
such a reqid. Nothing else is ever touched: stale-state cleanup after a crash and the
shutdown flush delete exactly the SAs whose reqid, and the policies one of whose template
reqids, is in the range. Policies also get priorities in their own band (selectors.py),
which makes them easy to spot in `ip xfrm policy` but is not used to decide ownership.

Several ikev2d instances in one network namespace need disjoint ranges (`reqid_base`).
Offset 0 of the range tags larval SAs; the core's reqid r maps to base + 1 + (r - 1) mod
(span - 1), probing onward if that kernel reqid is still used by another core reqid.
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass, field
from typing import Any

from ikev2.errors import KernelError
from ikev2.kernel.xfrm.consts import IPPROTO_AH, IPPROTO_COMP, IPPROTO_ESP, XfrmMsg
from ikev2.kernel.xfrm.netlink import NetlinkError, XfrmSocket
from ikev2.kernel.xfrm.selectors import PRIORITY_BASE

log = logging.getLogger("ikev2.kernel")

REQID_BASE = 0x1CE00000
REQID_SPAN = 0x00100000


@dataclass(frozen=True, slots=True)
class Ownership:
    reqid_base: int = REQID_BASE
    reqid_span: int = REQID_SPAN
    priority_base: int = PRIORITY_BASE

    def __post_init__(self) -> None:
        if self.reqid_span < 2 or not 0 < self.reqid_base <= 0xFFFFFFFF - self.reqid_span:
            raise ValueError("reqid range must be non-empty and lie inside 1..2^32-1")

    @property
    def larval_reqid(self) -> int:
        return self.reqid_base

    def owns(self, reqid: int) -> bool:
        return self.reqid_base <= reqid < self.reqid_base + self.reqid_span

    def describe(self) -> str:
        last = self.reqid_base + self.reqid_span - 1
        return f"reqid {self.reqid_base:#010x}-{last:#010x}"


@dataclass(slots=True)
class ReqidMap:
    """Core reqid ↔ kernel reqid, reference-counted (a rekeyed CHILD_SA keeps its reqid and
    briefly coexists with the one it replaces)."""

    own: Ownership
    to_kernel: dict[int, list[int]] = field(default_factory=dict)  # reqid -> [kreqid, refs]
    to_core: dict[int, int] = field(default_factory=dict)

    def ref(self, reqid: int) -> int:
        entry = self.to_kernel.get(reqid)
        if entry is not None:
            entry[1] += 1
            return entry[0]
        slots = self.own.reqid_span - 1
        offset = (reqid - 1) % slots
        for _ in range(slots):
            kreqid = self.own.reqid_base + 1 + offset
            if kreqid not in self.to_core:
                self.to_kernel[reqid] = [kreqid, 1]
                self.to_core[kreqid] = reqid
                return kreqid
            offset = (offset + 1) % slots
        raise KernelError(f"all {slots} kernel reqids of {self.own.describe()} are in use")

    def unref(self, reqid: int) -> None:
        entry = self.to_kernel.get(reqid)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self.to_kernel[reqid]
            self.to_core.pop(entry[0], None)

    def core_reqid(self, kreqid: int) -> int:
        return self.to_core.get(kreqid, 0)


def _mark_attrs(msg: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    mark = msg.get_attr("XFRMA_MARK")
    if mark:
        out.append(("XFRMA_MARK", mark))
    if_id = msg.get_attr("XFRMA_IF_ID")
    if if_id:
        out.append(("XFRMA_IF_ID", if_id))
    return out


def flush_owned(nl: XfrmSocket, own: Ownership) -> tuple[int, int]:
    """Delete every policy and SA carrying our tag. Returns (policies, SAs) deleted."""
    policies = 0
    for msg in nl.dump(XfrmMsg.GETPOLICY, what="listing XFRM policies"):
        tmpls = msg.get_attr("XFRMA_TMPL") or []
        if not any(own.owns(t["reqid"]) for t in tmpls):
            continue
        attrs = _mark_attrs(msg)
        ptype = msg.get_attr("XFRMA_POLICY_TYPE")
        if ptype:
            attrs.append(("XFRMA_POLICY_TYPE", ptype))
        try:
            nl.request(XfrmMsg.DELPOLICY,
                       {"sel": msg["sel"], "index": msg["index"], "dir": msg["dir"]},
                       attrs, what="deleting a stale policy")
            policies += 1
        except NetlinkError as e:
            if e.errno != errno.ENOENT:
                raise
    sas = 0
    for msg in nl.dump(XfrmMsg.GETSA, what="listing XFRM SAs"):
        if not own.owns(msg["reqid"]) or not msg["id"]["spi"]:
            continue  # not ours, or a spi-0 acquire placeholder the kernel expires itself
        if msg["id"]["proto"] not in (IPPROTO_ESP, IPPROTO_AH, IPPROTO_COMP):
            continue
        body = {"daddr": msg["id"]["daddr"], "spi": msg["id"]["spi"],
                "family": msg["family"] or socket.AF_INET6, "proto": msg["id"]["proto"]}
        try:
            nl.request(XfrmMsg.DELSA, body, _mark_attrs(msg), what="deleting a stale SA")
            sas += 1
        except NetlinkError as e:
            if e.errno not in (errno.ESRCH, errno.ENOENT):
                raise
    return policies, sas


def list_owned(nl: XfrmSocket, own: Ownership) -> tuple[list[Any], list[Any]]:
    """(policies, SAs) carrying our tag, as decoded dump messages."""
    pols = [m for m in nl.dump(XfrmMsg.GETPOLICY)
            if any(own.owns(t["reqid"]) for t in m.get_attr("XFRMA_TMPL") or [])]
    sas = [m for m in nl.dump(XfrmMsg.GETSA) if own.owns(m["reqid"])]
    return pols, sas
