"""`XfrmKernel`: the kernel port over NETLINK_XFRM (REQUIREMENTS X-01..X-18).

One CHILD_SA = an inbound SA (dst = local, the SPI we allocated with XFRM_MSG_ALLOCSPI), an
outbound SA (dst = remote, the peer's SPI) and the policies of its traffic selectors
(policies.py). Everything is tagged with a reqid from the ownership range (ownership.py).

Construction only opens the netlink socket and checks permission; the first real use (or
`start()`) removes what a previous ikev2d left behind, and `close()` removes everything
ikev2d installed. So `ikev2d --check` never changes the kernel's tables.
"""

from __future__ import annotations

import errno
import itertools
import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from ikev2.errors import KernelError
from ikev2.kernel.base import (
    IPPROTO_AH,
    IPPROTO_ESP,
    ChildSaSpec,
    ChildSaStats,
    KernelEvent,
    SaMigrated,
    ip_protocol,
    moved_selectors,
)
from ikev2.kernel.xfrm import events as xevents
from ikev2.kernel.xfrm.consts import (
    PolicyDir,
    PolicyType,
    UdpEncap,
    XfrmMode,
    XfrmMsg,
)
from ikev2.kernel.xfrm.cstruct import family_of, pack_addr
from ikev2.kernel.xfrm.netlink import DEFAULT_TIMEOUT, NetlinkError, XfrmSocket
from ikev2.kernel.xfrm.ownership import Ownership, ReqidMap, flush_owned, list_owned
from ikev2.kernel.xfrm.policies import (
    PolicyTable,
    PolicyWant,
    migrate_entry,
    wanted_policies,
)
from ikev2.kernel.xfrm.sas import sa_attrs_common, sa_message
from ikev2.kernel.xfrm.sockopt import prepare_ike_socket

log = logging.getLogger("ikev2.kernel")

SPI_MIN = 0xC0000000
SPI_MAX = 0xCFFFFFFF
OWN_MIGRATION_WINDOW = 10.0  # seconds during which a MIGRATE notification is "ours"
_GONE = (errno.ESRCH, errno.ENOENT)

ChildKey = tuple[str, int]  # (local address, inbound SPI)


def _each(steps: Iterable[Callable[[], None]], warn: str | None = None) -> list[str]:
    """Run every step although some fail (rollbacks, teardowns): the failures' messages,
    each logged as a warning after `warn` when given."""
    errors: list[str] = []
    for step in steps:
        try:
            step()
        except KernelError as e:
            errors.append(str(e))
            if warn is not None:
                log.warning("%s: %s", warn, e)
    return errors


def _raise_any(errors: list[str]) -> None:
    if errors:
        raise KernelError("; ".join(errors))


_tokens = itertools.count(1)


@dataclass(slots=True)
class _Child:
    spec: ChildSaSpec
    kreqid: int
    policies: list[PolicyWant] = field(default_factory=list)
    token: int = field(default_factory=lambda: next(_tokens))  # policy owner identity
    outbound: bool = True  # the outbound SA is installed (see install_outbound)


class XfrmKernel:
    """Implements ikev2.kernel.base.KernelPort and KernelEventSource over NETLINK_XFRM."""

    def __init__(
        self,
        *,
        ownership: Ownership | None = None,
        spi_range: tuple[int, int] = (SPI_MIN, SPI_MAX),
        use_migrate: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.own = ownership or Ownership()
        self.spi_range = spi_range
        self.use_migrate = use_migrate
        self.clock = clock
        self.nl = XfrmSocket(timeout=timeout)
        self._probe()
        self.reqids = ReqidMap(self.own)
        self.policies = PolicyTable(self.nl, self.own)
        self.children: dict[ChildKey, _Child] = {}
        self.traps: dict[int, _Child] = {}  # trap policies by core reqid
        self._sa_index: dict[tuple[str, int], tuple[_Child, bool]] = {}
        self._larval: dict[tuple[str, int], int] = {}  # (local, spi) -> IP protocol
        self._own_migrations: dict[int, float] = {}
        self._listener: xevents.XfrmEventSocket | None = None
        self.started = False
        self.stale_removed = (0, 0)
        self.migrations = {"native": 0, "readd": 0}  # how CHILD_SAs were moved

    # --- lifecycle -----------------------------------------------------------------------
    def _probe(self) -> None:
        """Fail early with a clear message when we may not use XFRM (EPERM)."""
        self.nl.request(XfrmMsg.GETSADINFO, {"flags": 0}, what="probing XFRM access")

    def start(self) -> None:
        """Remove SAs and policies a previous ikev2d left behind (crash, kill -9)."""
        if self.started:
            return
        self.started = True
        self.stale_removed = flush_owned(self.nl, self.own)
        if any(self.stale_removed):
            log.warning("removed %d stale XFRM policies and %d stale SAs (%s) left by a "
                        "previous ikev2d", *self.stale_removed, self.own.describe())

    def close(self) -> None:
        """Remove every SA and policy this backend installed, then close the sockets."""
        if self.started:
            _each([partial(self.remove_trap, t.spec) for t in list(self.traps.values())]
                  + [partial(self.remove_child, c.spec) for c in list(self.children.values())],
                  "shutdown")
            for (local, spi), proto in list(self._larval.items()):
                self.release_spi(local, spi, proto)
            _each([partial(flush_owned, self.nl, self.own)],
                  "shutdown: flushing ikev2d's XFRM entries failed")
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.nl.close()

    def prepare_ike_socket(self, sock: socket.socket, natt: bool) -> None:
        """Bypass the SPD on an IKE socket; on the NAT-T socket also decapsulate ESP-in-UDP
        (REQUIREMENTS X-08, X-11). The daemon calls this for each socket it opens."""
        prepare_ike_socket(sock, natt)

    def list_owned(self) -> tuple[list[Any], list[Any]]:
        """(policies, SAs) in the kernel carrying ikev2d's tag (decoded dump messages)."""
        return list_owned(self.nl, self.own)

    # --- SPIs ----------------------------------------------------------------------------
    def alloc_spi(self, local: str, remote: str, protocol: int) -> int:
        """XFRM_MSG_ALLOCSPI: the kernel reserves a random SPI in a larval SA (X-12). The
        larval SA lives for net.core.xfrm_acq_expires seconds (default 30)."""
        self.start()
        proto = ip_protocol(protocol)
        fam = family_of(local)
        info = {"id": {"daddr": pack_addr(local), "proto": proto}, "saddr": pack_addr(remote),
                "family": fam, "mode": int(XfrmMode.TUNNEL), "reqid": self.own.larval_reqid}
        got = self.nl.request(XfrmMsg.ALLOCSPI,
                              {"info": info, "min": self.spi_range[0], "max": self.spi_range[1]},
                              what=f"allocating an SPI for {remote} -> {local}")
        spi = next((m["id"]["spi"] for m in got if m["header"]["type"] == XfrmMsg.NEWSA), 0)
        if not spi:
            raise KernelError("ALLOCSPI: the kernel returned no SPI")
        self._larval[(local, spi)] = proto
        return spi

    def release_spi(self, local: str, spi: int, protocol: int) -> None:
        key = (local, spi)
        if key in self.children:
            return  # an installed CHILD_SA's SA: remove_child's business
        self._larval.pop(key, None)
        self._delete_sa(local, spi, ip_protocol(protocol), quiet=True)

    # --- SAs -------------------------------------------------------------------------------
    def _add_sa(self, spec: ChildSaSpec, kreqid: int, inbound: bool,
                carry: dict[str, Any] | None = None) -> None:
        body, attrs = sa_message(spec, kreqid, inbound, carry)
        spi = spec.spi_in if inbound else spec.spi_out
        what = (f"installing {'inbound' if inbound else 'outbound'} SA {spi:08x} "
                f"({spec.remote if inbound else spec.local} -> "
                f"{spec.local if inbound else spec.remote})")
        if inbound and (spec.local, spi) in self._larval:
            # replace the larval SA ALLOCSPI made; it may have expired meanwhile (ESRCH)
            try:
                self.nl.request(XfrmMsg.UPDSA, body, attrs, what=what)
                return
            except NetlinkError as e:
                if e.errno not in _GONE:
                    raise
        self.nl.request(XfrmMsg.NEWSA, body, attrs, what=what)

    def _sa_id(self, daddr: str, spi: int, proto: int) -> dict[str, Any]:
        return {"daddr": pack_addr(daddr), "spi": spi, "family": family_of(daddr),
                "proto": proto}

    def _delete_sa(self, daddr: str, spi: int, proto: int,
                   attrs: list[tuple[str, Any]] | None = None, *, quiet: bool = False) -> None:
        try:
            self.nl.request(XfrmMsg.DELSA, self._sa_id(daddr, spi, proto), attrs or [],
                            what=f"deleting SA {spi:08x} to {daddr}")
        except NetlinkError as e:
            if e.errno not in _GONE and not quiet:
                raise

    def _get_sa(self, daddr: str, spi: int, proto: int, attrs: list) -> Any:
        got = self.nl.request(XfrmMsg.GETSA, self._sa_id(daddr, spi, proto), attrs,
                              what=f"reading SA {spi:08x} to {daddr}")
        for m in got:
            if m["header"]["type"] == XfrmMsg.NEWSA:
                return m
        raise KernelError(f"GETSA {spi:08x} to {daddr}: no answer")

    def _carry(self, msg: Any) -> dict[str, Any]:
        """Replay state and current lifetime of a live SA, to re-add it elsewhere."""
        carry: dict[str, Any] = {"curlft": dict(msg["curlft"])}
        esn = msg.get_attr("XFRMA_REPLAY_ESN_VAL")
        if esn:
            carry["esn"] = dict(esn)
        replay = msg.get_attr("XFRMA_REPLAY_VAL")
        if replay:
            carry["replay"] = dict(replay)
        return carry

    # --- CHILD_SAs ---------------------------------------------------------------------------
    def install_child(self, spec: ChildSaSpec, *, outbound: bool = True) -> None:
        self.start()
        key = (spec.local, spec.spi_in)
        if key in self.children:
            raise KernelError(f"a CHILD_SA with inbound SPI {spec.spi_in:08x} is installed")
        proto = ip_protocol(spec.protocol)
        if proto not in (IPPROTO_ESP, IPPROTO_AH):
            raise KernelError(f"unsupported IPsec protocol {spec.protocol}")
        kreqid = self.reqids.ref(spec.reqid)
        child = _Child(spec, kreqid, outbound=outbound)
        undo: list[Callable[[], None]] = []
        common = sa_attrs_common(spec)
        try:
            self._add_sa(spec, kreqid, inbound=True)
            undo.append(lambda: self._delete_sa(spec.local, spec.spi_in, proto, common))
            if outbound:
                self._add_sa(spec, kreqid, inbound=False)
                undo.append(lambda: self._delete_sa(spec.remote, spec.spi_out, proto, common))
            for want in wanted_policies(spec, kreqid, self.own):
                self.policies.add(child.token, want)
                child.policies.append(want)
                undo.append(lambda k=want.key: self.policies.remove(child.token, k))
        except KernelError:
            _each(reversed(undo), "rolling back a failed install")
            self.reqids.unref(spec.reqid)
            raise
        self._larval.pop(key, None)
        self._register(key, child)

    def install_outbound(self, spec: ChildSaSpec) -> None:
        found = self._find(spec)
        if found is None:
            raise KernelError(f"no installed CHILD_SA with inbound SPI {spec.spi_in:08x}")
        child = found[1]
        if not child.outbound:
            self._add_sa(child.spec, child.kreqid, inbound=False)
            child.outbound = True

    def _register(self, key: ChildKey, child: _Child) -> None:
        spec = child.spec
        self.children[key] = child
        self._sa_index[(spec.local, spec.spi_in)] = (child, True)
        self._sa_index[(spec.remote, spec.spi_out)] = (child, False)

    def _unregister(self, key: ChildKey) -> _Child | None:
        child = self.children.pop(key, None)
        if child is not None:
            spec = child.spec
            self._sa_index.pop((spec.local, spec.spi_in), None)
            self._sa_index.pop((spec.remote, spec.spi_out), None)
        return child

    def _find(self, spec: ChildSaSpec) -> tuple[ChildKey, _Child] | None:
        key = (spec.local, spec.spi_in)
        child = self.children.get(key)
        if child is not None:
            return key, child
        for k, c in self.children.items():  # an old spec of a migrated CHILD_SA
            if c.spec.spi_in == spec.spi_in and c.spec.spi_out == spec.spi_out:
                return k, c
        return None

    def install_trap(self, spec: ChildSaSpec) -> None:
        """Trap policies (templates with the reqid, no SA): traffic triggers ACQUIRE; a
        CHILD_SA with the same reqid later shares them (PolicyTable owners)."""
        self.start()
        if spec.reqid in self.traps:
            raise KernelError(f"trap policies for reqid {spec.reqid} are installed")
        kreqid = self.reqids.ref(spec.reqid)
        trap = _Child(spec, kreqid)
        try:
            for want in wanted_policies(spec, kreqid, self.own):
                self.policies.add(trap.token, want)
                trap.policies.append(want)
        except KernelError:
            _each(self._policy_removals(trap), "rolling back a failed trap install")
            self.reqids.unref(spec.reqid)
            raise
        self.traps[spec.reqid] = trap

    def remove_trap(self, spec: ChildSaSpec) -> None:
        trap = self.traps.pop(spec.reqid, None)
        if trap is None:
            return
        self.reqids.unref(spec.reqid)
        _raise_any(_each(self._policy_removals(trap)))

    def _policy_removals(self, owner: _Child) -> list[Callable[[], None]]:
        return [partial(self.policies.remove, owner.token, w.key) for w in owner.policies]

    def remove_child(self, spec: ChildSaSpec) -> None:
        found = self._find(spec)
        proto = ip_protocol(spec.protocol)
        if found is None:
            # not installed by this instance: delete what the spec names, quietly
            self._delete_sa(spec.local, spec.spi_in, proto, sa_attrs_common(spec), quiet=True)
            self._delete_sa(spec.remote, spec.spi_out, proto, sa_attrs_common(spec),
                            quiet=True)
            return
        key, child = found
        self._unregister(key)
        self.reqids.unref(child.spec.reqid)
        spec = child.spec
        common = sa_attrs_common(spec)
        sas = ((spec.remote, spec.spi_out), (spec.local, spec.spi_in))
        _raise_any(_each(self._policy_removals(child) + [
            partial(self._delete_sa, daddr, spi, proto, common)
            for daddr, spi in (sas if child.outbound else sas[1:])]))

    def child_stats(self, spec: ChildSaSpec) -> ChildSaStats:
        """The SAs' current lifetime counters (bytes/packets; XFRM counts ESP payload
        octets before encryption / after decryption)."""
        found = self._find(spec)
        outbound = True
        if found is not None:
            spec, outbound = found[1].spec, found[1].outbound
        proto = ip_protocol(spec.protocol)
        common = sa_attrs_common(spec)
        try:
            cin = self._get_sa(spec.local, spec.spi_in, proto, common)["curlft"]
            cout = (self._get_sa(spec.remote, spec.spi_out, proto, common)["curlft"]
                    if outbound else {"bytes": 0, "packets": 0})
        except NetlinkError as e:
            if e.errno in _GONE:
                return ChildSaStats()
            raise
        return ChildSaStats(cin["bytes"], cout["bytes"], cin["packets"], cout["packets"])

    # --- migration (RFC 4555, RFC 4877; REQUIREMENTS) --------------------------------
    def migrate_child(self, spec: ChildSaSpec, local: str, remote: str,
                      encap: tuple[int, int] | None) -> ChildSaSpec:
        found = self._find(spec)
        if found is None:
            raise KernelError(f"no installed CHILD_SA with inbound SPI {spec.spi_in:08x}")
        key, child = found
        old = child.spec
        new = replace(
            old, local=local, remote=remote, encap=encap,
            local_ts=moved_selectors(old.local_ts, old.local, local),
            remote_ts=moved_selectors(old.remote_ts, old.remote, remote),
        )
        if new == old:
            return new
        new_key = (local, old.spi_in)
        if new_key != key and new_key in self.children:
            raise KernelError(f"a CHILD_SA with inbound SPI {old.spi_in:08x} is already "
                              f"installed at {local}")
        if self._native_possible(key, child, new):
            try:
                self._migrate_native(key, child, new)
                self.migrations["native"] += 1
                return new
            except NetlinkError as e:
                if e.errno not in (errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                log.info("XFRM_MSG_MIGRATE unavailable (%s); moving SAs by re-adding them",
                         e)
                self.use_migrate = False
        self._migrate_readd(key, child, new)
        self.migrations["readd"] += 1
        return new

    def _native_possible(self, key: ChildKey, child: _Child, new: ChildSaSpec) -> bool:
        old = child.spec
        return (
            self.use_migrate
            and bool(child.policies)
            and (new.local_ts, new.remote_ts) == (old.local_ts, old.remote_ts)
            and not (old.encap is not None and new.encap is None)  # MIGRATE cannot drop it
            and not any(self.policies.shared(child.token, w.key) for w in child.policies)
        )

    def _migrate_call(self, want: PolicyWant, frm: ChildSaSpec, to: ChildSaSpec,
                      kreqid: int) -> None:
        d, sel = want.key[0], want.key[1]
        attrs: list[tuple[str, Any]] = [
            ("XFRMA_MIGRATE", [migrate_entry(frm, to, kreqid, d)]),
            ("XFRMA_POLICY_TYPE", {"type": int(PolicyType.MAIN)}),
            ("XFRMA_KMADDRESS", {"local": pack_addr(to.local), "remote": pack_addr(to.remote),
                                 "family": family_of(to.local)}),
        ]
        if to.encap is not None:
            lport, rport = to.encap
            sport, dport = (lport, rport) if d == PolicyDir.OUT else (rport, lport)
            attrs.append(("XFRMA_ENCAP", {"encap_type": int(UdpEncap.ESPINUDP),
                                          "encap_sport": sport, "encap_dport": dport}))
        if to.if_id:
            attrs.append(("XFRMA_IF_ID", to.if_id))
        self.nl.request(XfrmMsg.MIGRATE, {"sel": sel.to_struct(), "dir": int(d)}, attrs,
                        what=f"migrating policy {d.name.lower()} {sel}")

    def _migrate_native(self, key: ChildKey, child: _Child, new: ChildSaSpec) -> None:
        """XFRM_MSG_MIGRATE once per policy: the first call of a direction moves that
        direction's SA (the kernel clones it with its replay state), every call moves the
        policy's template endpoints. A failure part-way migrates the done ones back."""
        old = child.spec
        self._own_migrations[child.kreqid] = self.clock()
        done: list[PolicyWant] = []
        try:
            for want in child.policies:
                self._migrate_call(want, old, new, child.kreqid)
                done.append(want)
        except KernelError:
            _each([partial(self._migrate_call, w, new, old, child.kreqid)
                   for w in reversed(done)], "moving a policy back failed")
            raise
        new_key = (new.local, new.spi_in)
        self._unregister(key)
        child.spec = new
        renamed = wanted_policies(new, child.kreqid, self.own)
        for old_want, new_want in zip(child.policies, renamed, strict=True):
            self.policies.rename(child.token, old_want.key, new_want)
        child.policies = renamed
        self._register(new_key, child)

    def _migrate_readd(self, key: ChildKey, child: _Child, new: ChildSaSpec) -> None:
        """Without CONFIG_XFRM_MIGRATE: read each SA's replay state and lifetime, add it
        at the new addresses with them (sequence numbers continue), move the policies,
        delete the old SAs. An SA whose (daddr, SPI) does not change is deleted first.
        A failure part-way undoes the steps done (best effort) and raises."""
        old = child.spec
        proto = ip_protocol(old.protocol)
        common_old, common_new = sa_attrs_common(old), sa_attrs_common(new)
        kreqid = child.kreqid
        undo: list[Callable[[], None]] = []

        def step(do: Callable[[], None], undo_it: Callable[[], None] | None) -> None:
            do()
            if undo_it is not None:
                undo.append(undo_it)

        def move_sa(inbound: bool) -> None:
            o_dst, n_dst = (old.local, new.local) if inbound else (old.remote, new.remote)
            spi = old.spi_in if inbound else old.spi_out
            carry = self._carry(self._get_sa(o_dst, spi, proto, common_old))
            add_new = (lambda: self._add_sa(new, kreqid, inbound, carry),
                       lambda: self._delete_sa(n_dst, spi, proto, common_new))
            del_old = (lambda: self._delete_sa(o_dst, spi, proto, common_old),
                       lambda: self._add_sa(old, kreqid, inbound, carry))
            if o_dst == n_dst:  # same (daddr, SPI): make room first
                step(*del_old)
                step(*add_new)
            else:
                step(*add_new)
                finals.append(del_old[0])

        finals: list[Callable[[], None]] = []
        wants = wanted_policies(new, kreqid, self.own)
        token = next(_tokens)
        try:
            # inbound first: traffic from the peer may already use the new addresses
            move_sa(inbound=True)
            # policies: the newest owner's template moves, selectors may change
            for want in wants:
                step(lambda w=want: self.policies.add(token, w),
                     lambda w=want: self.policies.remove(token, w.key))
            for want in child.policies:
                step(lambda w=want: self.policies.remove(child.token, w.key),
                     lambda w=want: self.policies.add(child.token, w))
            # outbound last: its sequence number is read once no new packet can pick it
            if child.outbound:
                move_sa(inbound=False)
        except KernelError:
            _each(reversed(undo), "undoing a failed SA move")
            raise
        _each(finals, "deleting a moved SA's old copy failed")
        self._unregister(key)
        child.spec = new
        child.policies = wants
        child.token = token
        self._register((new.local, new.spi_in), child)

    # --- events (KernelEventSource) ----------------------------------------------------------
    def event_fileno(self) -> int | None:
        self.start()
        if self._listener is None:
            self._listener = xevents.XfrmEventSocket()
        return self._listener.fileno()

    def read_events(self) -> list[KernelEvent]:
        if self._listener is None:
            return []
        events = xevents.drain(self._listener, self)
        for ev in events:
            if isinstance(ev, SaMigrated) and not ev.own:
                self._follow_kernel_migrate(ev)
        return events

    def _follow_kernel_migrate(self, ev: SaMigrated) -> None:
        """Another daemon moved SAs of ours (XFRM_MSG_MIGRATE, e.g. UMIP's mip6d on a K-bit
        binding; REQUIREMENTS X-07). The kernel already holds them at the new addresses and
        has moved the templates of the policies of `ev.direction`: only our records follow,
        nothing is migrated again. A record left at the old addresses would make
        remove_child delete nothing (the moved SAs would stay after a rekey), child_stats
        read zeros, expiries of the moved SAs go unrecognised, and a policy owner's stale
        template come back."""
        for move in ev.moves:
            if not self.own.owns(move.kernel_reqid):
                continue
            for key, child in list(self.children.items()):
                spec = child.spec
                if child.kreqid != move.kernel_reqid or spec.mode != move.mode:
                    continue
                if (spec.local, spec.remote) == (move.old_local, move.old_remote):
                    new = replace(spec, local=move.new_local, remote=move.new_remote)
                    new_key = (new.local, new.spi_in)
                    if new_key != key and new_key in self.children:
                        log.warning("kernel migrate of SA %08x to %s: a CHILD_SA with that "
                                    "inbound SPI is already there; record not moved",
                                    spec.spi_in, new.local)
                        continue
                    self._unregister(key)
                    child.spec = new
                    self._register(new_key, child)
                    log.info("SAs %08x/%08x (reqid %#x) moved by another daemon: %s-%s -> "
                             "%s-%s; the kernel already did it", spec.spi_in, spec.spi_out,
                             child.kreqid, spec.local, spec.remote, new.local, new.remote)
                elif (spec.local, spec.remote) != (move.new_local, move.new_remote):
                    continue
                # this direction's policy templates now carry the new addresses
                moved = {w.key: w for w in wanted_policies(child.spec, child.kreqid, self.own)}
                for i, want in enumerate(child.policies):
                    if want.key[0] == ev.direction and want.key in moved:
                        child.policies[i] = moved[want.key]
                        self.policies.rename(child.token, want.key, moved[want.key])

    # Resolver for events.translate
    def lookup_sa(self, daddr: str, spi: int) -> tuple[int, int, bool] | None:
        hit = self._sa_index.get((daddr, spi))
        if hit is None:
            return None
        child, inbound = hit
        return child.spec.reqid, child.spec.spi_in, inbound

    def core_reqid(self, kreqid: int) -> int:
        return self.reqids.core_reqid(kreqid)

    def larval_expired(self, daddr: str, spi: int) -> bool:
        return self._larval.pop((daddr, spi), None) is not None

    def own_migration(self, kreqid: int) -> bool:
        at = self._own_migrations.get(kreqid)
        return at is not None and self.clock() - at < OWN_MIGRATION_WINDOW
