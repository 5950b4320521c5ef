"""The SPD part of the XFRM backend: which policies a CHILD_SA needs, and a table that
shares a policy between CHILD_SAs with identical selectors.

A policy (direction + selector + mark + if_id) can be wanted by several CHILD_SAs at once:
during a CHILD_SA rekey the new SA pair and the old one cover the same selectors. The table
keeps the owners in install order; the newest owner's template is the one in the kernel.
Removing an owner deletes the policy only when no owner is left, and otherwise puts the
newest remaining owner's template back (REQUIREMENTS X-03, X-13, X-15, X-16).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from ikev2.errors import KernelError
from ikev2.kernel.base import ChildSaSpec, ip_protocol
from ikev2.kernel.xfrm.consts import XFRM_INF, PolicyAction, PolicyDir, XfrmMode, XfrmMsg
from ikev2.kernel.xfrm.cstruct import family_of, pack_addr
from ikev2.kernel.xfrm.netlink import NetlinkError, XfrmSocket
from ikev2.kernel.xfrm.ownership import Ownership
from ikev2.kernel.xfrm.selectors import XfrmSelector, policy_priority, policy_selectors

PolicyKey = tuple[PolicyDir, XfrmSelector, int, int, int]  # dir, selector, mark, mask, if_id

_NO_LIMITS = {
    "soft_byte_limit": XFRM_INF, "hard_byte_limit": XFRM_INF,
    "soft_packet_limit": XFRM_INF, "hard_packet_limit": XFRM_INF,
}
_ALL_ALGS = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class PolicyWant:
    key: PolicyKey
    tmpl: tuple[tuple[str, Any], ...]  # the xfrm_user_tmpl as sorted items (hashable)
    priority: int


@dataclass(slots=True)
class _Owner:
    owner: int  # the owning CHILD_SA's token
    want: PolicyWant


def mode_of(spec: ChildSaSpec) -> XfrmMode:
    return XfrmMode.TUNNEL if spec.mode == "tunnel" else XfrmMode.TRANSPORT


def template(spec: ChildSaSpec, kreqid: int, direction: PolicyDir) -> dict[str, Any]:
    """xfrm_user_tmpl: tunnel templates carry the outer endpoints, transport ones none
    (REQUIREMENTS X-15); any algorithm (the SA decides)."""
    mode = mode_of(spec)
    src, dst = ((spec.local, spec.remote) if direction == PolicyDir.OUT
                else (spec.remote, spec.local))
    tunnel = mode == XfrmMode.TUNNEL
    return {
        "id": {"daddr": pack_addr(dst if tunnel else None), "spi": 0,
               "proto": ip_protocol(spec.protocol)},
        "family": family_of(spec.local),
        "saddr": pack_addr(src if tunnel else None),
        "reqid": kreqid, "mode": int(mode), "share": 0, "optional": 0,
        "aalgos": _ALL_ALGS, "ealgos": _ALL_ALGS, "calgos": _ALL_ALGS,
    }


def _freeze(d: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, _freeze(v) if isinstance(v, dict) else v) for k, v in d.items()))


def _thaw(t: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return {k: _thaw(v) if isinstance(v, tuple) and v and isinstance(v[0], tuple) else v
            for k, v in t}


def wanted_policies(spec: ChildSaSpec, kreqid: int, own: Ownership) -> list[PolicyWant]:
    """OUT and IN policies, plus FWD for tunnel mode (REQUIREMENTS X-03)."""
    if not spec.install_policies:
        return []
    dirs = [PolicyDir.OUT, PolicyDir.IN]
    if spec.mode == "tunnel":
        dirs.append(PolicyDir.FWD)
    out: list[PolicyWant] = []
    for d in dirs:
        tmpl = _freeze(template(spec, kreqid, d))
        for sel in policy_selectors(spec.local_ts, spec.remote_ts, d):
            prio = spec.priority or policy_priority(sel, own.priority_base)
            key: PolicyKey = (d, sel, spec.mark, spec.mark_mask, spec.if_id)
            out.append(PolicyWant(key, tmpl, prio))
    return out


def _extra_attrs(key: PolicyKey) -> list[tuple[str, Any]]:
    _d, _sel, mark, mask, if_id = key
    attrs: list[tuple[str, Any]] = []
    if mask:
        attrs.append(("XFRMA_MARK", {"v": mark, "m": mask}))
    if if_id:
        attrs.append(("XFRMA_IF_ID", if_id))
    return attrs


@dataclass(slots=True)
class PolicyTable:
    nl: XfrmSocket
    own: Ownership
    entries: dict[PolicyKey, list[_Owner]] = field(default_factory=dict)

    # --- kernel operations ---------------------------------------------------------------
    def _put(self, want: PolicyWant, msg_type: XfrmMsg) -> None:
        d, sel = want.key[0], want.key[1]
        body = {"sel": sel.to_struct(), "lft": _NO_LIMITS, "priority": want.priority,
                "index": 0, "dir": int(d), "action": int(PolicyAction.ALLOW), "flags": 0,
                "share": 0}
        attrs = [("XFRMA_TMPL", [_thaw(want.tmpl)]), *_extra_attrs(want.key)]
        self.nl.request(msg_type, body, attrs,
                        what=f"installing policy {d.name.lower()} {sel}")

    def _delete(self, key: PolicyKey) -> None:
        d, sel = key[0], key[1]
        try:
            self.nl.request(XfrmMsg.DELPOLICY, {"sel": sel.to_struct(), "dir": int(d)},
                            _extra_attrs(key), what=f"deleting policy {d.name.lower()} {sel}")
        except NetlinkError as e:
            if e.errno != errno.ENOENT:
                raise

    def _existing_is_ours(self, key: PolicyKey) -> bool:
        d, sel = key[0], key[1]
        try:
            got = self.nl.request(XfrmMsg.GETPOLICY, {"sel": sel.to_struct(), "dir": int(d)},
                                  _extra_attrs(key))
        except NetlinkError:
            return False
        return any(self.own.owns(t["reqid"])
                   for m in got for t in (m.get_attr("XFRMA_TMPL") or []))

    # --- ownership -----------------------------------------------------------------------
    def add(self, owner: int, want: PolicyWant) -> None:
        owners = self.entries.get(want.key)
        if owners:
            active = owners[-1].want
            if (active.tmpl, active.priority) != (want.tmpl, want.priority):
                self._put(want, XfrmMsg.UPDPOLICY)
            owners.append(_Owner(owner, want))
            return
        try:
            self._put(want, XfrmMsg.NEWPOLICY)
        except NetlinkError as e:
            if e.errno != errno.EEXIST:
                raise
            if not self._existing_is_ours(want.key):
                raise KernelError(
                    f"an XFRM policy {want.key[0].name.lower()} {want.key[1]} already "
                    "exists and is not ikev2d's; remove it or narrow the traffic selectors",
                    errno.EEXIST,
                ) from None
            self._put(want, XfrmMsg.UPDPOLICY)
        self.entries[want.key] = [_Owner(owner, want)]

    def remove(self, owner: int, key: PolicyKey) -> None:
        owners = self.entries.get(key)
        if not owners:
            return
        was_active = owners[-1].owner == owner
        owners[:] = [o for o in owners if o.owner != owner]
        if not owners:
            del self.entries[key]
            self._delete(key)
        elif was_active:
            self._put(owners[-1].want, XfrmMsg.UPDPOLICY)

    def shared(self, owner: int, key: PolicyKey) -> bool:
        return any(o.owner != owner for o in self.entries.get(key, ()))

    def rename(self, owner: int, key: PolicyKey, want: PolicyWant) -> None:
        """After the kernel updated a policy's template itself (XFRM_MSG_MIGRATE)."""
        for o in self.entries.get(key, ()):
            if o.owner == owner:
                o.want = want


def migrate_entry(old: ChildSaSpec, new: ChildSaSpec, kreqid: int,
                  direction: PolicyDir) -> dict[str, Any]:
    """xfrm_user_migrate for one policy direction (REQUIREMENTS X-06)."""
    if direction == PolicyDir.OUT:
        od, os_, nd, ns = old.remote, old.local, new.remote, new.local
    else:
        od, os_, nd, ns = old.local, old.remote, new.local, new.remote
    return {
        "old_daddr": pack_addr(od), "old_saddr": pack_addr(os_),
        "new_daddr": pack_addr(nd), "new_saddr": pack_addr(ns),
        "proto": ip_protocol(old.protocol), "mode": int(mode_of(old)), "reserved": 0,
        "reqid": kreqid, "old_family": family_of(od), "new_family": family_of(nd),
    }
