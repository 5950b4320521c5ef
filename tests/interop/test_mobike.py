"""MOBIKE (RFC 4555) against strongSwan charon, both roles, in peer.sh's namespaces.

(a) charon is the MOBIKE initiator (ss-a, peer.sh ONLY=a), ikev2d the responder (ss-b).
    As `peer.sh mobike` does, ss-a gets 2001:db8:1::11 and then loses 2001:db8:1::1:
    charon sends UPDATE_SA_ADDRESSES (~105 ms later) and, because libipsec cannot move an
    SA, then rekeys every CHILD_SA. ikev2d must follow the move and the rekey.
    `test_charon_roams_during_our_rekey` runs ikev2d in this process so that it can start
    its own CHILD_SA rekey the moment it has processed charon's UPDATE: both rekeys are
    then in flight together, a §2.8.1 collision when charon's crosses ours.
(b) ikev2d is the MOBIKE initiator (ss-a, watching its addresses), charon the responder
    (ss-b, peer.sh ONLY=b): ikev2d's address goes, it moves the SA and charon lists the new
    endpoint with the same IKE SPIs and the same unique id (moved, not re-created), and a
    DPD exchange works over the new path. ikev2d uses the memory kernel here (this host
    has no ESP), so no ping through ikev2d's side: that needs the xfrm backend (qemu guest).

On the dual-stack link charon may take IPv4 when it roams (it probes both families and
takes the first answer), so (a) accepts 2001:db8:1::11 or 192.0.2.1 as the new address.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from harness import (
    A4,
    A6,
    B6,
    ID_A,
    ID_B,
    IN_A4,
    IN_A6,
    IN_B4,
    IN_B6,
    CharonSa,
    Ikev2d,
    Ikev2dConn,
    Peer,
    compare_sa,
    swanctl_conf,
)  # fmt: skip

pytestmark = [pytest.mark.root, pytest.mark.interop]

IKE = "aes128gcm16-prfsha256-x25519"
ESP = "aes128gcm16"
A6_NEW = "2001:db8:1::11"
SETTLE = 15.0


# ------------------------------------------------------------------ helpers


def wait(what: str, predicate: Callable[[], Any], timeout: float = SETTLE,
         diag: Callable[[], str] = lambda: "") -> Any:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}\n{diag()}")
        time.sleep(0.05)


def ip(peer: Peer, ns: str, *args: str, check: bool = True) -> None:
    peer.sb.run(["ip", "-n", ns, *args], check=check)


@contextlib.contextmanager
def roamed_a(peer: Peer) -> Iterator[None]:
    """On exit ss-a has its peer.sh addresses back (A6, not A6_NEW) (peer.sh unroam)."""
    try:
        yield
    finally:
        ip(peer, "ss-a", "addr", "add", f"{A6}/64", "dev", "ss-a0", "nodad", check=False)
        ip(peer, "ss-a", "addr", "del", f"{A6_NEW}/64", "dev", "ss-a0", check=False)


def roam_a(peer: Peer, settle: float = 0.3) -> None:
    """peer.sh mobike: A6_NEW appears on ss-a0, then A6 goes."""
    ip(peer, "ss-a", "addr", "add", f"{A6_NEW}/64", "dev", "ss-a0", "nodad")
    time.sleep(settle)  # let the address-list INFORMATIONAL for the new address finish
    ip(peer, "ss-a", "addr", "del", f"{A6}/64", "dev", "ss-a0")


def only(sas: list[Any]) -> Any:
    return sas[0] if len(sas) == 1 else None


def agreement(ours: dict[str, Any], theirs: CharonSa, *, ikev2d_initiator: bool) -> list[str]:
    return compare_sa(ours, theirs, ike_proposal=IKE, esp_proposal=ESP,
                      ikev2d_initiator=ikev2d_initiator)  # fmt: skip


def settled(
    d_state: Callable[[], list[dict[str, Any]]], peer: Peer, inst: str, *,
    ikev2d_initiator: bool, moved_from: str,
) -> tuple[dict[str, Any], CharonSa] | None:  # fmt: skip
    """Both sides agree on one IKE SA with one INSTALLED CHILD_SA, off `moved_from`."""
    ours = only(d_state())
    theirs = only(peer.list_sas(inst))
    if ours is None or theirs is None or len(ours.get("children", [])) != 1:
        return None
    side = "local" if ikev2d_initiator else "remote"
    if ours[side][0] == moved_from:
        return None
    if agreement(ours, theirs, ikev2d_initiator=ikev2d_initiator):
        return None
    return ours, theirs


def charon_a_conf(peer: Peer, **child_options: str) -> None:
    """charon A: psk6 to B6 from any local address (so it can roam), MOBIKE, encap."""
    peer.terminate_all("a")
    conf = swanctl_conf("a", peer.psk_secret("a"), {"psk6": ("%any", B6)}, IKE, ESP,
                        child_options=child_options or None)  # fmt: skip
    peer.load_conf("a", conf)


def responder_conn(peer: Peer, **child_options: Any) -> Ikev2dConn:
    return Ikev2dConn(
        name="psk6", local_addr=B6, remote_addr="%any", ike_proposals=[IKE],
        esp_proposals=[ESP], local_id=ID_B, remote_id=ID_A, psk=peer.psk_secret("a"),
        local_ts=[f"{IN_B6}/128", f"{IN_B4}/32"], remote_ts=[f"{IN_A6}/128", f"{IN_A4}/32"],
        initiate=False, child_options=dict(child_options),
    )  # fmt: skip


def charon_initiate(peer: Peer) -> None:
    r = peer.swanctl("a", "--initiate", "--ike", "psk6", "--child", "psk6-net", "--timeout",
                     "20", check=False, timeout=60)  # fmt: skip
    assert r.returncode == 0, f"swanctl --initiate failed:\n{r.stdout}{r.stderr}"


# ------------------------------------------------------------------ (a) charon roams


def test_charon_roams_ikev2d_follows(
    peer_a: Peer, ikev2d_runs: Callable[..., Ikev2d]
) -> None:
    """4555-06 (responder): charon's UPDATE_SA_ADDRESSES moves ikev2d's IKE SA to the
    address in the IP header (d), NAT-D answered over the new addresses with COOKIE2
    echoed (e, 4555-07/10), CHILD_SAs follow (g, 4555-14); then charon's libipsec rekey of
    the CHILD_SA (CREATE_CHILD_SA with REKEY_SA on the moved SA, 4555-16) completes.
    Same IKE SPIs before and after: moved, not re-created."""
    charon_a_conf(peer_a)
    d = ikev2d_runs(peer_a.sb, "ss-b", ["::", "0.0.0.0"], [responder_conn(peer_a)])
    with roamed_a(peer_a):
        d.wait_ready()
        charon_initiate(peer_a)
        before = d.wait_established(timeout=10)
        assert before["remote"][0] == A6 and before["mobike"]
        child_before = before["children"][0]["spi_in"]
        charon_log_at = len(peer_a.log("a"))

        roam_a(peer_a)

        def diag() -> str:
            return (f"ikev2d state {d.state()}\n--- charon a (tail)\n"
                    f"{peer_a.log('a')[charon_log_at:][-4000:]}\n--- ikev2d (tail)\n"
                    f"{d.log()[-4000:]}")  # fmt: skip

        ours, theirs = wait(
            "ikev2d and charon agreeing on the moved SA with a rekeyed CHILD_SA",
            lambda: (s := settled(d.state, peer_a, "a", ikev2d_initiator=False,
                                  moved_from=A6))
            and s[0]["children"][0]["spi_in"] != child_before and s,
            diag=diag,
        )  # fmt: skip
        new = ours["remote"][0]
        assert new in (A6_NEW, A4), f"moved to {new}"
        assert (ours["spi_i"], ours["spi_r"]) == (before["spi_i"], before["spi_r"])
        assert theirs.ike.get("local-host") == new
        log = d.log()
        assert re.search(rf"IKE_SA psk6\[\d+\] moved .* -> \S+-{re.escape(new)}\[4500\]", log)
        assert "CHILD_SA" in log and "rekeyed" in log
        charon_log = peer_a.log("a")[charon_log_at:]
        assert "UPDATE_SA_ADDRESSES" in charon_log or "N(UPD_SA_ADDR)" in charon_log
        assert "Traceback" not in log
        d.stop()  # before ss-a gets its old address back (charon would roam again)


def test_charon_roams_during_our_rekey(peer_a: Peer, tmp_path: Any) -> None:
    """charon's post-move CHILD_SA rekey meets ikev2d's own: ikev2d (in this process)
    starts a CHILD_SA rekey as soon as it has answered charon's UPDATE_SA_ADDRESSES, so both
    CREATE_CHILD_SA requests are in flight together. Whichever way the race goes (a
    RFC 7296 §2.8.1 collision, or one rekey answered before the other starts), both sides
    end with the same single INSTALLED CHILD_SA on the new addresses (4555-14/16)."""
    from ikev2.config.loader import load_config_text
    from ikev2.core.events import ChildSaRekeyed, IkeSaUpdated
    from ikev2.daemon.main import make_engine, make_kernel
    from ikev2.daemon.runner import Daemon
    from tests.kernel.netns import entered

    charon_a_conf(peer_a)
    spec = Ikev2d(peer_a.sb, "ss-b", tmp_path / "ikev2d", ["::", "0.0.0.0"],
                  [responder_conn(peer_a)], log_level="debug")  # fmt: skip
    config = load_config_text(spec.config.read_text(), str(spec.config))
    ns_path = f"/proc/{peer_a.sb.proc.pid}/root/run/netns/ss-b"

    async def main() -> dict[str, Any]:
        d = Daemon(config, make_engine(config, make_kernel(config)))  # type: ignore[arg-type]
        seen: dict[str, Any] = {"updated": [], "rekeyed": [], "ours": []}

        def on_event(e: object) -> None:
            if isinstance(e, IkeSaUpdated):
                seen["updated"].append(e)
                for c in e.ike.children:  # our rekey, at once, before charon's arrives
                    try:
                        d.rekey_child(e.ike.ike_id, c.child_id)
                        seen["ours"].append(c.child_id)
                    except ValueError:
                        pass
            elif isinstance(e, ChildSaRekeyed):
                seen["rekeyed"].append(e)

        d.listeners.append(on_event)
        with entered(ns_path):
            d.start()
        try:
            await asyncio.to_thread(charon_initiate, peer_a)
            await _until(lambda: _one(d) is not None, "ikev2d established")
            before = _one(d)
            assert before is not None and before.remote[0] == A6
            await asyncio.to_thread(roam_a, peer_a)

            def agreed() -> Any:
                sa = _one(d)
                if sa is None or sa.remote[0] == A6 or len(sa.children) != 1:
                    return None
                if sa.children[0].spi_in == before.children[0].spi_in:
                    return None
                return sa

            await _until(lambda: seen["updated"] and agreed(), "the move and the rekey")
            # charon lists a rekeyed CHILD_SA for delete_rekeyed_delay (5 s), and the
            # redundant SA of a collision until its delete is answered: poll until it agrees
            from ikev2.daemon.statefile import snapshot

            deadline = time.monotonic() + SETTLE
            while True:
                theirs = await asyncio.to_thread(peer_a.list_sas, "a")
                sa = agreed()
                assert sa is not None, f"ikev2d: {d.engine.ike_sas()}"
                ours = snapshot([sa])["ike_sas"][0]
                bad = (agreement(ours, theirs[0], ikev2d_initiator=False)
                       if len(theirs) == 1 else [f"charon has {len(theirs)} IKE SAs"])
                if not bad:
                    break
                assert time.monotonic() < deadline, "\n".join(bad)
                await asyncio.sleep(0.2)
            assert (sa.spi_i, sa.spi_r) == (before.spi_i, before.spi_r)
            kernel = d.engine.kernel.children  # type: ignore[attr-defined]
            assert {(s.local, s.remote) for s in kernel.values()} == {(sa.local[0],
                                                                       sa.remote[0])}
            return {"ours": seen["ours"], "rekeyed": len(seen["rekeyed"])}
        finally:
            d.close()

    import logging

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    core = logging.getLogger("ikev2.core")
    core.addHandler(handler)
    old_level = core.level
    core.setLevel(logging.INFO)
    try:
        with roamed_a(peer_a):
            result = asyncio.run(main())
    finally:
        core.removeHandler(handler)
        core.setLevel(old_level)
    assert result["ours"], "ikev2d did not start its rekey on the move"
    collision = [m for m in records if "rekey collision" in m]
    print(f"\nmobike rekey race: ikev2d rekeyed {result['ours']}, "
          f"collision: {collision or 'none (one rekey finished first)'}")


def _one(d: Any) -> Any:
    sas = [s for s in d.engine.ike_sas() if s.state == "ESTABLISHED" and s.children]
    return sas[0] if len(sas) == 1 else None


async def _until(predicate: Callable[[], Any], what: str, timeout: float = SETTLE) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------ (b) ikev2d roams


@pytest.fixture
def charon_b_psk6(peer_b: Peer) -> Iterator[Peer]:
    peer_b.terminate_all("b")
    conf = swanctl_conf("b", peer_b.psk_secret("b"), {"psk6": (B6, "%any")}, IKE, ESP)
    peer_b.load_conf("b", conf)
    yield peer_b
    peer_b.terminate_all("b")


def test_ikev2d_roams_charon_follows(
    charon_b_psk6: Peer, ikev2d_runs: Callable[..., Ikev2d]
) -> None:
    """4555-03/04 (initiator): ikev2d's address goes; its watcher tells the engine at once,
    it picks the new address and sends UPDATE_SA_ADDRESSES (NAT-D, COOKIE2) from it. charon
    lists the new endpoint with the same IKE SPIs and unique id (moved, not re-created,
    4555-05), and a DPD exchange then runs over the new path (ikev2d dpd_delay 1 s: a
    second probe leaves only after the first was answered, and charon logs both from the
    new address)."""
    peer = charon_b_psk6
    conn = Ikev2dConn(
        name="psk6", local_addr="%any", remote_addr=B6, ike_proposals=[IKE],
        esp_proposals=[ESP], local_id=ID_A, remote_id=ID_B, psk=peer.psk_secret("b"),
        local_ts=[f"{IN_A6}/128", f"{IN_A4}/32"], remote_ts=[f"{IN_B6}/128", f"{IN_B4}/32"],
        initiate=True, options={"dpd_delay": "1s"},
    )  # fmt: skip
    d = ikev2d_runs(peer.sb, "ss-a", ["::", "0.0.0.0"], [conn])
    with roamed_a(peer):
        before = d.wait_established(timeout=15)
        assert tuple(before["local"]) == (A6, 4500) and before["mobike"]
        theirs = wait("charon's SA", lambda: only(peer.list_sas("b")))
        uid = theirs.ike.get("uniqueid")
        assert theirs.ike.get("remote-host") == A6
        log_at, charon_at = len(d.log()), len(peer.log("b"))

        roam_a(peer)

        def diag() -> str:
            return (f"ikev2d state {d.state()}\ncharon {peer.list_sas('b')}\n--- charon b "
                    f"(tail)\n{peer.log('b')[charon_at:][-4000:]}\n--- ikev2d (tail)\n"
                    f"{d.log()[log_at:][-4000:]}")  # fmt: skip

        ours, theirs = wait(
            "charon listing ikev2d's new address",
            lambda: (s := settled(d.state, peer, "b", ikev2d_initiator=True, moved_from=A6))
            and s[0]["local"][0] == A6_NEW and s,
            diag=diag,
        )  # fmt: skip
        assert theirs.ike.get("remote-host") == A6_NEW
        assert theirs.ike.get("uniqueid") == uid, "charon re-created the IKE SA"
        assert (ours["spi_i"], ours["spi_r"]) == (before["spi_i"], before["spi_r"])
        log = d.log()[log_at:]
        assert f"MOBIKE update {A6_NEW}[4500] -> {B6}[4500]" in log

        # DPD over the new path
        dpd_at = len(d.log())
        wait("two answered DPD probes", lambda: d.log()[dpd_at:].count("checking liveness")
             >= 2, diag=diag)  # fmt: skip
        assert "retransmit" not in d.log()[dpd_at:]
        charon_log = peer.log("b")[charon_at:]
        assert f"from {A6_NEW}[4500] to {B6}[4500]" in charon_log, charon_log[-3000:]
        assert f"to {A6_NEW}[4500]" in charon_log
        assert only(peer.list_sas("b")) is not None
        assert "Traceback" not in d.log()
