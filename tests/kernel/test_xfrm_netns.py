"""The xfrm backend against this machine's kernel, each test in a fresh network namespace
(the host's XFRM tables are never touched). This kernel has XFRM netlink but no ESP, so
SAs cannot be installed here: what runs is SPI allocation, policies (incl. MH-type
selectors) read back by `ip -d xfrm policy` and by our own decoder, the ESP-state error
path, events (ACQUIRE, MIGRATE), per-socket bypass, stale-state cleanup after kill -9.
tests/kernel/test_real_kernel.py covers SAs and traffic in a qemu guest."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from ikev2.errors import KernelError
from ikev2.kernel.base import AcquireRequest, ChildSaSpec, SaMigrated
from ikev2.kernel.xfrm import SPI_MAX, SPI_MIN, XfrmKernel
from ikev2.kernel.xfrm.backend import _Child
from ikev2.kernel.xfrm.consts import PolicyDir, XfrmMsg
from ikev2.kernel.xfrm.cstruct import pack_addr, unpack_addr
from ikev2.kernel.xfrm.netlink import XfrmSocket
from ikev2.kernel.xfrm.policies import migrate_entry, wanted_policies
from ikev2.kernel.xfrm.selectors import XfrmSelector
from ikev2.protocol.enums import EncrId, IntegId
from ikev2.protocol.ts import TrafficSelector as TS
from tests.kernel.netns import fresh_netns, ip

pytestmark = pytest.mark.root

A, B = "2001:db8:1::1", "2001:db8:1::2"
HOA, HA = "2001:db8:a::1", "2001:db8:b::1"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def netns() -> Iterator[None]:
    with fresh_netns():
        yield


@pytest.fixture
def kernel(netns: None) -> Iterator[XfrmKernel]:
    k = XfrmKernel()
    yield k
    k.close()


def spec(**kw: object) -> ChildSaSpec:
    args: dict = dict(
        reqid=1, protocol=3, mode="tunnel", local=A, remote=B, spi_in=0xC0000001,
        spi_out=0xC1000001, encr_id=EncrId.AES_GCM_16, encr_key_bits=128, integ_id=0,
        esn=False, encr_key_in=bytes(range(20)), encr_key_out=bytes(range(1, 21)),
        integ_key_in=b"", integ_key_out=b"",
        local_ts=(TS.from_network("2001:db8:a::/64"), TS.mh_type(HOA, 5)),
        remote_ts=(TS.from_network("2001:db8:b::/64"), TS.mh_type(HA, 6)),
    )
    args.update(kw)
    return ChildSaSpec(**args)


def parse_ip_policies(text: str) -> list[dict[str, str]]:
    """`ip -d xfrm policy` → one dict per policy (the fields these tests compare)."""
    out: list[dict[str, str]] = []
    for block in re.split(r"\n(?=src )", text.strip()):
        if not block.strip():
            continue
        d: dict[str, str] = {}
        head = block.splitlines()[0].split()
        for i in range(0, len(head) - 1, 2):
            d["sel_" + head[i]] = head[i + 1]
        for key, pat in (("dir", r"dir (\w+)"), ("priority", r"priority (\d+)"),
                         ("tmpl_src", r"tmpl src (\S+)"), ("tmpl_dst", r"tmpl src \S+ dst (\S+)"),
                         ("reqid", r"reqid (\d+)"), ("mode", r"mode (\w+)"),
                         ("mark", r"mark (\S+)")):
            m = re.search(pat, block)
            if m:
                d[key] = m.group(1)
        out.append(d)
    return out


def test_allocspi_reserves_an_owned_larval_sa(kernel: XfrmKernel) -> None:
    """REQUIREMENTS X-12: XFRM_MSG_ALLOCSPI works without the ESP module; the larval SA
    carries ikev2d's larval reqid; release_spi deletes it."""
    spi = kernel.alloc_spi(A, B, 3)
    assert SPI_MIN <= spi <= SPI_MAX
    state = ip("-d", "xfrm", "state")
    assert f"spi {spi:#010x} reqid {kernel.own.larval_reqid}" in state
    assert f"src {B} dst {A}" in state
    spi2 = kernel.alloc_spi(A, B, 3)
    assert spi2 != spi
    kernel.release_spi(A, spi, 3)
    kernel.release_spi(A, spi2, 3)
    assert ip("xfrm", "state").strip() == ""


def _has_esp() -> bool:
    """Whether this kernel can hold an ESP SA at all (ecb(cipher_null), no integrity)."""
    r = subprocess.run(["ip", "xfrm", "state", "add", "src", A, "dst", B, "proto", "esp",
                        "spi", "0x100", "enc", "ecb(cipher_null)", ""],
                       capture_output=True, text=True, check=False)
    subprocess.run(["ip", "xfrm", "state", "flush"], check=False)
    return r.returncode == 0


@pytest.mark.parametrize(("encr", "integ", "ekey", "ikey"), [
    (EncrId.AES_GCM_16, 0, 20, 0),
    (EncrId.NULL, IntegId.HMAC_SHA2_256_128, 0, 32),
])
def test_install_without_esp_is_a_clear_kernel_error(
    kernel: XfrmKernel, encr: int, integ: int, ekey: int, ikey: int,
) -> None:
    """A kernel without the ESP module (or the algorithm) refuses the SA: KernelError with
    a message saying so, and nothing left behind (the core then fails the CHILD_SA)."""
    spi = kernel.alloc_spi(A, B, 3)
    s = spec(spi_in=spi, encr_id=encr, encr_key_bits=None if encr == EncrId.NULL else 128,
             integ_id=integ, encr_key_in=bytes(ekey), encr_key_out=bytes(ekey),
             integ_key_in=bytes(ikey), integ_key_out=bytes(ikey))
    if _has_esp():
        kernel.install_child(s)  # a kernel with ESP: then it simply works
        kernel.remove_child(s)
    else:
        with pytest.raises(KernelError) as info:
            kernel.install_child(s)
        err = info.value
        if err.errno == errno.EPROTONOSUPPORT:
            assert "no ESP/AH support" in str(err) and "Requested type not found" in str(err)
        else:
            assert err.errno == errno.ENOSYS and "crypto algorithm" in str(err)
        kernel.release_spi(A, spi, 3)
    assert ip("xfrm", "policy").strip() == ""
    assert ip("xfrm", "state").strip() == ""
    assert not kernel.children


def test_policies_with_mh_selectors_read_back(kernel: XfrmKernel) -> None:
    """REQUIREMENTS X-01/X-02/X-03/X-15/X-16: what we install is what `ip -d xfrm policy`
    shows (MH type in the selector, per direction; tunnel endpoints in the template;
    priorities), and our own dump decoder reads the same."""
    kernel.start()
    s = spec()
    kreqid = kernel.reqids.ref(s.reqid)
    wants = wanted_policies(s, kreqid, kernel.own)
    for w in wants:
        kernel.policies.add(1, w)
    shown = parse_ip_policies(ip("-d", "xfrm", "policy"))
    assert len(shown) == len(wants) == 12  # 2 x 2 selector pairs x (out, in, fwd)
    for w in wants:
        d, sel = w.key[0], w.key[1]
        match = [p for p in shown
                 if p["sel_src"] == f"{sel.saddr}/{sel.prefixlen_s}"
                 and p["sel_dst"] == f"{sel.daddr}/{sel.prefixlen_d}"
                 and p["dir"] == d.name.lower()]
        assert len(match) == 1, (d, sel)
        p = match[0]
        assert int(p["priority"]) == w.priority and int(p["reqid"]) == kreqid
        assert p["mode"] == "tunnel"
        src, dst = (A, B) if d == PolicyDir.OUT else (B, A)
        assert (p["tmpl_src"], p["tmpl_dst"]) == (src, dst)
        if sel.proto == 135:
            assert p["sel_proto"] == "mobility-header"
            assert p.get("sel_type") == (str(sel.sport) if sel.sport_mask else None)
    mh = {(p["dir"], p["sel_type"]) for p in shown
          if p["sel_src"] in (f"{HOA}/128", f"{HA}/128") and "sel_type" in p
          and p["sel_dst"] in (f"{HOA}/128", f"{HA}/128")}
    assert mh == {("out", "5"), ("in", "6"), ("fwd", "6")}  # BU out, BA in
    # the same through our decoder
    dumped = kernel.nl.dump(XfrmMsg.GETPOLICY)
    got = {(m["dir"], XfrmSelector.from_struct(m["sel"]), m["priority"],
            m.get_attr("XFRMA_TMPL")[0]["reqid"]) for m in dumped}
    assert got == {(int(w.key[0]), w.key[1], w.priority, kreqid) for w in wants}


def test_policies_made_by_ip_decode(kernel: XfrmKernel) -> None:
    """Decoding a policy `ip xfrm` installed: ICMPv6 type/code in sport/dport, mark, tmpl."""
    ip("xfrm", "policy", "add", "src", "2001:db8:a::/64", "dst", "2001:db8:b::/64", "proto",
       "ipv6-icmp", "type", "128", "code", "3", "dir", "out", "priority", "100", "mark", "5",
       "mask", "0xff", "tmpl", "src", A, "dst", B, "proto", "esp", "reqid", "7", "mode",
       "tunnel")
    (m,) = kernel.nl.dump(XfrmMsg.GETPOLICY)
    sel = XfrmSelector.from_struct(m["sel"])
    assert sel == XfrmSelector(socket.AF_INET6, "2001:db8:a::", 64, "2001:db8:b::", 64, 58,
                               128, 0xFFFF, 3, 0xFFFF)
    assert m.get_attr("XFRMA_MARK") == {"v": 5, "m": 0xFF}
    (t,) = m.get_attr("XFRMA_TMPL")
    assert (t["reqid"], t["mode"], t["id"]["proto"]) == (7, 1, 50)
    assert unpack_addr(t["saddr"], t["family"]) == A
    assert unpack_addr(t["id"]["daddr"], t["family"]) == B


def test_shared_policy_survives_the_older_owner(kernel: XfrmKernel) -> None:
    """A rekeyed CHILD_SA with the same selectors shares the policies; removing the old
    one keeps them, removing the last one deletes them."""
    kernel.start()
    s = spec(local_ts=(TS.from_network(HOA),), remote_ts=(TS.from_network(HA),))
    wants = wanted_policies(s, kernel.reqids.ref(1), kernel.own)
    for w in wants:
        kernel.policies.add(1, w)
        kernel.policies.add(2, w)
    for w in wants:
        kernel.policies.remove(1, w.key)
    assert len(parse_ip_policies(ip("xfrm", "policy"))) == 3
    for w in wants:
        kernel.policies.remove(2, w.key)
    assert ip("xfrm", "policy").strip() == ""


def test_foreign_policy_is_never_replaced(kernel: XfrmKernel) -> None:
    kernel.start()
    ip("xfrm", "policy", "add", "src", f"{HOA}/128", "dst", f"{HA}/128", "dir", "out",
       "tmpl", "proto", "esp", "reqid", "7", "mode", "transport")
    s = spec(mode="transport", local_ts=(TS.from_network(HOA),),
             remote_ts=(TS.from_network(HA),))
    out = next(w for w in wanted_policies(s, kernel.reqids.ref(1), kernel.own)
               if w.key[0] == PolicyDir.OUT)
    with pytest.raises(KernelError, match="not ikev2d's"):
        kernel.policies.add(1, out)
    assert "reqid 7" in ip("xfrm", "policy")


def test_acquire_event(kernel: XfrmKernel) -> None:
    """REQUIREMENTS X-12: a packet hitting our policy without SAs → AcquireRequest with
    the core's reqid."""
    ip("addr", "add", f"{HOA}/128", "dev", "lo")
    ip("-6", "route", "add", "2001:db8:b::/64", "dev", "lo")
    kernel.event_fileno()
    s = spec(local_ts=(TS.from_network(HOA),), remote_ts=(TS.from_network(HA),))
    for w in wanted_policies(s, kernel.reqids.ref(9), kernel.own):
        kernel.policies.add(1, w)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u:
        u.bind((HOA, 0))
        with contextlib.suppress(OSError):  # larval drop: no SA will ever come
            u.sendto(b"x", (HA, 9))
    events = []
    for _ in range(50):
        events += kernel.read_events()
        if events:
            break
        time.sleep(0.02)
    acq = [e for e in events if isinstance(e, AcquireRequest)]
    assert acq and acq[0].reqid == 9 and acq[0].kernel_reqid == kernel.reqids.ref(9)
    assert (acq[0].local, acq[0].remote, acq[0].src, acq[0].dst) == (A, B, HOA, HA)
    assert acq[0].proto == socket.IPPROTO_UDP


def test_migrate_message_moves_policy_templates(kernel: XfrmKernel) -> None:
    """REQUIREMENTS X-06/X-07: our XFRM_MSG_MIGRATE is accepted by the kernel (tunnel
    template endpoints move), the kernel multicasts the migration, and the event is marked
    as our own while the backend remembers causing it."""
    kernel.event_fileno()
    s = spec(local_ts=(TS.from_network(HOA),), remote_ts=(TS.from_network(HA),))
    kreqid = kernel.reqids.ref(1)
    wants = wanted_policies(s, kreqid, kernel.own)
    for w in wants:
        kernel.policies.add(1, w)
    new = spec(local="2001:db8:1::11", local_ts=s.local_ts, remote_ts=s.remote_ts)
    out = next(w for w in wants if w.key[0] == PolicyDir.OUT)
    kernel._own_migrations[kreqid] = kernel.clock()
    kernel.nl.request(XfrmMsg.MIGRATE, {"sel": out.key[1].to_struct(), "dir": 1}, [
        ("XFRMA_MIGRATE", [migrate_entry(s, new, kreqid, PolicyDir.OUT)]),
        ("XFRMA_KMADDRESS", {"local": bytes.fromhex("20010db8000100000000000000000011"),
                             "remote": bytes.fromhex("20010db8000100000000000000000002"),
                             "family": 10}),
    ])
    shown = [p for p in parse_ip_policies(ip("-d", "xfrm", "policy")) if p["dir"] == "out"]
    assert (shown[0]["tmpl_src"], shown[0]["tmpl_dst"]) == ("2001:db8:1::11", B)
    events = []
    for _ in range(50):
        events += kernel.read_events()
        if events:
            break
        time.sleep(0.02)
    (ev,) = [e for e in events if isinstance(e, SaMigrated)]
    assert ev.own and ev.direction == PolicyDir.OUT and ev.km_local == "2001:db8:1::11"
    assert ev.moves[0].reqid == 1 and ev.moves[0].new_local == "2001:db8:1::11"
    # a selector without a policy: ENOENT (the kernel looks the policy up first)
    other = XfrmSelector.host_pair("2001:db8:e::1", "2001:db8:e::2")
    with pytest.raises(KernelError) as info:
        kernel.nl.request(XfrmMsg.MIGRATE, {"sel": other.to_struct(), "dir": 1},
                          [("XFRMA_MIGRATE", [migrate_entry(s, new, kreqid, PolicyDir.OUT)])])
    assert info.value.errno == errno.ENOENT


def test_foreign_migrate_moves_the_backend_records(
        kernel: XfrmKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUIREMENTS X-07: UMIP's mip6d migrates a CHILD_SA of ours itself (its own netlink
    socket, one MIGRATE per policy with KMADDRESS): the notifications are not ours, and the
    backend's records follow them (the CHILD_SA found at the new address, the SA index for
    expiries, the policy owners' templates), so remove_child later deletes the SAs where
    the kernel now has them (the qemu check daemons_foreign_migrate_kmaddress found them
    left behind after a CHILD_SA rekey). No ESP here: the CHILD_SA is its policies."""
    kernel.event_fileno()
    new_a = "2001:db8:1::11"
    s = spec(local_ts=(TS.from_network(HOA),), remote_ts=(TS.from_network(HA),))
    kreqid = kernel.reqids.ref(s.reqid)
    child = _Child(s, kreqid)
    for w in wanted_policies(s, kreqid, kernel.own):
        kernel.policies.add(child.token, w)
        child.policies.append(w)
    kernel._register((s.local, s.spi_in), child)
    moved = replace(s, local=new_a)
    mip6d = XfrmSocket()
    try:
        for w in child.policies:
            mip6d.request(XfrmMsg.MIGRATE, {"sel": w.key[1].to_struct(), "dir": int(w.key[0])}, [
                ("XFRMA_MIGRATE", [migrate_entry(s, moved, kreqid, w.key[0])]),
                ("XFRMA_KMADDRESS", {"local": pack_addr(new_a), "remote": pack_addr(B),
                                     "family": socket.AF_INET6}),
            ])
    finally:
        mip6d.close()
    events: list = []
    for _ in range(50):
        events += kernel.read_events()
        if len(events) >= 3:
            break
        time.sleep(0.02)
    migrated = [e for e in events if isinstance(e, SaMigrated)]
    assert len(migrated) == 3 and not any(e.own for e in migrated)
    assert {(e.km_local, e.km_remote) for e in migrated} == {(new_a, B)}
    assert set(kernel.children) == {(new_a, s.spi_in)}
    assert kernel.children[(new_a, s.spi_in)].spec == moved
    assert kernel.lookup_sa(new_a, s.spi_in) == (s.reqid, s.spi_in, True)
    assert kernel.lookup_sa(B, s.spi_out) == (s.reqid, s.spi_in, False)
    assert kernel.lookup_sa(A, s.spi_in) is None
    wants = wanted_policies(moved, kreqid, kernel.own)
    assert [o.want for w in wants for o in kernel.policies.entries[w.key]] == wants
    shown = parse_ip_policies(ip("-d", "xfrm", "policy"))
    assert {(p["tmpl_src"], p["tmpl_dst"]) for p in shown} == {(new_a, B), (B, new_a)}
    deleted: list[tuple[str, int]] = []
    monkeypatch.setattr(kernel, "_delete_sa",
                        lambda daddr, spi, *a, **kw: deleted.append((daddr, spi)))
    kernel.remove_child(moved)  # the core's spec once on_kernel_migrate followed
    assert sorted(deleted) == sorted([(B, s.spi_out), (new_a, s.spi_in)])
    assert ip("xfrm", "policy").strip() == ""


def test_ike_sockets_bypass_the_spd(kernel: XfrmKernel) -> None:
    """REQUIREMENTS X-11: with a block-everything policy, a plain socket cannot send but a
    socket with the per-socket bypass can; the NAT-T socket also takes UDP_ENCAP. (On a
    veth: loopback traffic skips XFRM altogether.)"""
    ip("link", "add", "va", "type", "veth", "peer", "name", "vb")
    for dev in ("va", "vb"):
        ip("link", "set", dev, "up")
    ip("addr", "add", f"{A}/64", "dev", "va", "nodad")
    ip("addr", "add", "192.0.2.1/24", "dev", "va")
    for args in (("src", "::/0", "dst", "::/0"), ("src", "0.0.0.0/0", "dst", "0.0.0.0/0")):
        ip("xfrm", "policy", "add", *args, "dir", "out", "action", "block")
    for fam, local, peer in ((socket.AF_INET6, A, B), (socket.AF_INET, "192.0.2.1",
                                                        "192.0.2.2")):
        with socket.socket(fam, socket.SOCK_DGRAM) as plain, \
             socket.socket(fam, socket.SOCK_DGRAM) as ike:
            ike.bind((local, 4500))
            kernel.prepare_ike_socket(ike, natt=True)
            with pytest.raises(PermissionError):
                plain.sendto(b"x", (peer, 4500))
            ike.sendto(b"\0\0\0\0x", (peer, 4500))


_HOLDER = textwrap.dedent("""
    import sys, time
    from ikev2.kernel.xfrm import XfrmKernel
    from tests.kernel.test_xfrm_netns import spec
    from ikev2.kernel.xfrm.policies import wanted_policies
    k = XfrmKernel()
    k.alloc_spi("2001:db8:1::1", "2001:db8:1::2", 3)
    s = spec()
    for w in wanted_policies(s, k.reqids.ref(s.reqid), k.own):
        k.policies.add(1, w)
    print("ready", flush=True)
    time.sleep(60)
""")


def test_stale_state_is_removed_after_kill_9(netns: None) -> None:
    """Ownership: an ikev2d killed with SIGKILL leaves policies and SAs behind; the next
    one removes exactly those (reqid range) on start, and nothing of anyone else's."""
    ip("xfrm", "policy", "add", "src", "2001:db8:f::/64", "dst", "2001:db8:e::/64", "dir",
       "out", "tmpl", "src", A, "dst", B, "proto", "esp", "reqid", "7", "mode", "tunnel")
    ip("xfrm", "state", "allocspi", "src", B, "dst", A, "proto", "esp", "reqid", "7",
       "mode", "tunnel")
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert len(parse_ip_policies(ip("xfrm", "policy"))) == 13
    k = XfrmKernel()
    try:
        k.start()
        assert k.stale_removed == (12, 1)
        assert parse_ip_policies(ip("xfrm", "policy"))[0]["reqid"] == "7"
        assert len(parse_ip_policies(ip("xfrm", "policy"))) == 1
        assert ip("xfrm", "state").count("reqid 7") == 1
        assert ip("xfrm", "state").count("proto esp") == 1
    finally:
        k.close()


def test_close_removes_all_and_only_ours(netns: None) -> None:
    ip("xfrm", "policy", "add", "src", "2001:db8:f::/64", "dst", "2001:db8:e::/64", "dir",
       "out", "tmpl", "proto", "esp", "reqid", "7", "mode", "transport")
    k = XfrmKernel()
    k.alloc_spi(A, B, 3)
    s = spec()
    for w in wanted_policies(s, k.reqids.ref(1), k.own):
        k.policies.add(1, w)
    k.close()
    assert len(parse_ip_policies(ip("xfrm", "policy"))) == 1
    assert ip("xfrm", "state").strip() == ""


def test_check_config_leaves_the_kernel_alone(netns: None, tmp_path: Path) -> None:
    """`ikev2d --check` with kernel = "xfrm" validates access but removes nothing (a running
    ikev2d's state is safe); make_kernel builds the xfrm backend."""
    from ikev2.config.loader import load_config_text
    from ikev2.daemon.main import make_kernel

    conf = tmp_path / "x.toml"
    conf.write_text('[daemon]\nlisten = ["::1"]\nike_port = 15500\nnatt_port = 15501\n'
                    'kernel = "xfrm"\n')
    holder = XfrmKernel()
    holder.start()
    s = spec()
    for w in wanted_policies(s, holder.reqids.ref(1), holder.own):
        holder.policies.add(1, w)
    before = ip("xfrm", "policy")
    r = subprocess.run([sys.executable, "-m", "ikev2.daemon.main", "--check", "--config",
                        str(conf)], cwd=REPO, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert ip("xfrm", "policy") == before
    k = make_kernel(load_config_text(conf.read_text()))
    assert isinstance(k, XfrmKernel) and not k.started
    k.close()
    assert ip("xfrm", "policy") == before
    holder.close()
    assert ip("xfrm", "policy").strip() == ""


def test_trap_policies_and_their_acquire(kernel: XfrmKernel) -> None:
    """start_action = "trap": install_trap puts policies with the reqid in the kernel,
    traffic gives an ACQUIRE naming it, and remove_trap takes exactly them away."""
    ip("addr", "add", f"{HOA}/128", "dev", "lo")
    ip("-6", "route", "add", "2001:db8:b::/64", "dev", "lo")
    kernel.event_fileno()
    trap = spec(reqid=21, spi_in=0, spi_out=0, encr_key_in=b"", encr_key_out=b"",
                local_ts=(TS.from_network(HOA),), remote_ts=(TS.from_network(HA),))
    kernel.install_trap(trap)
    listed = parse_ip_policies(ip("-d", "xfrm", "policy"))
    kernel_reqid = kernel.reqids.ref(21)
    kernel.reqids.unref(21)
    assert len(listed) == 3 and {p["reqid"] for p in listed} == {str(kernel_reqid)}
    with pytest.raises(KernelError):
        kernel.install_trap(trap)
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u:
        u.bind((HOA, 0))
        with contextlib.suppress(OSError):
            u.sendto(b"x", (HA, 9))
    events = []
    for _ in range(50):
        events += kernel.read_events()
        if events:
            break
        time.sleep(0.02)
    acq = [e for e in events if isinstance(e, AcquireRequest)]
    assert acq and acq[0].reqid == 21
    kernel.remove_trap(trap)
    assert parse_ip_policies(ip("-d", "xfrm", "policy")) == []
