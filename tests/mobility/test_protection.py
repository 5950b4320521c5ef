"""The agents with ESP on the MH-over-UDP path (mobility/protection.py; RFC 5555 §4.1,
REQUIREMENTS 4877-01/05/16, 5555-02): MN and HA over loopback UDP with in-memory ikev2d
APIs (mobility.ike_api.FakeIkeApi) that hold the same BU/BA CHILD_SA (FakeBuKeys), as in
tests/mobility/test_agents.py. Crafted datagrams come from a plain UDP socket."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mobility.esp import EspKeys, EspSender, EspTransform
from mobility.ha_agent import HomeAgent
from mobility.ike_api import FakeBuKeys, FakeIkeApi
from mobility.mh import BindingAck, BindingUpdate, build_mh, parse_mh
from mobility.mn_agent import MobileNode
from mobility.registry import BaStatus
from mobility.status import format_status, read_status
from mobility.transport import RetransmitPolicy, encapsulate, inner_header, inner_packet
from tests.mobility.test_agents import (
    ALICE,
    BOB,
    HA,
    HOA,
    HOA_B,
    V4_COA1,
    V4_COA2,
    V4_HA,
    FakeAddresses,
    bu,
    fake_daemons,
    ha_cfg,
    mn_cfg,
    until,
)

SPARE = "127.0.0.9"


@dataclasses.dataclass
class Bed:
    ha: HomeAgent
    ha_api: FakeIkeApi
    mn_api: FakeIkeApi
    keys: FakeBuKeys
    tmp: Path
    mn: MobileNode | None = None
    addrs: FakeAddresses | None = None

    @property
    def port(self) -> int:
        assert self.ha.server is not None
        return self.ha.server.local[1]

    def bu_child(self, api: FakeIkeApi) -> dict[str, Any]:
        return next(c for c in api.sas[1]["child-sas"] if c["name"] == "mn1-bu"
                    and c["state"] == "INSTALLED")

    async def start_mn(self, **kw: Any) -> MobileNode:
        self.addrs = FakeAddresses(V4_COA1)
        cfg: dict[str, Any] = dict(ha_endpoint=V4_HA, port=self.port,
                                   retransmit=RetransmitPolicy(0.2, 0.8, 0.2), ike_wait=1.0,
                                   status_file=str(self.tmp / "mn.json"),
                                   events_file=str(self.tmp / "mn.events"))
        cfg.update(kw)
        self.mn = MobileNode(mn_cfg(**cfg), self.mn_api, addresses=self.addrs)
        await self.mn.start()
        return self.mn

    async def close(self) -> None:
        if self.mn is not None:
            await self.mn.close()
        await self.ha.close()


async def bed(tmp: Path, **ha_kw: Any) -> Bed:
    """The HA agent (started) and both fake daemons with alice's IKE SA at CoA1, bob's
    (no MN agent) at SPARE; the MN agent is started by `start_mn`."""
    ha_api, mn_api, keys = fake_daemons()
    ha_api.add(name="mn2", local=V4_HA, remote=SPARE, remote_id=BOB, initiator=False,
               hoa=HOA_B, ha=HA)
    ha = HomeAgent(ha_cfg(listen=V4_HA, port=0, allow_loopback_coa=True,
                          status_file=str(tmp / "ha.json"), **ha_kw), ha_api)
    await ha.start()
    return Bed(ha, ha_api, mn_api, keys, tmp)


def mn_sender(keys: FakeBuKeys, *, seq: int = 0) -> EspSender:
    """What the MN's daemon's keys make: its outbound SA (i->r) of the BU/BA CHILD_SA."""
    return EspSender(EspTransform(keys.encr_id, keys.encr_keysize, keys.integ_id, keys.esn),
                     EspKeys(keys.spi_r, keys.encr_ir, keys.integ_ir), seq=seq)


def protected(msg: BindingUpdate, sender: EspSender, *, hoa: str = HOA) -> bytes:
    src, dst = ipaddress.IPv6Address(hoa), ipaddress.IPv6Address(HA)
    return inner_packet(50, sender.seal(build_mh(msg, src=src, dst=dst), 135), src=src,
                        dst=dst)


class _Catch(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.put_nowait(data)


async def exchange(port: int, data: bytes, *, source: str = V4_COA1,
                   wait: float = 0.3) -> bytes | None:
    """Send `data` from `source` to the HA; its answer, or None."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        _Catch, local_addr=(source, 0), remote_addr=(V4_HA, port))
    try:
        transport.sendto(data)
        return await asyncio.wait_for(proto.got.get(), wait)
    except TimeoutError:
        return None
    finally:
        transport.close()


def open_ba(keys: FakeBuKeys, data: bytes) -> BindingAck:
    """The BA of an answer, which must come ESP-protected by the HA's outbound SA."""
    from mobility.esp import EspReceiver

    src, dst, nxt, rest = inner_header(data)
    assert nxt == 50, "the BA came without ESP"
    receiver = EspReceiver(EspTransform(keys.encr_id, keys.encr_keysize, keys.integ_id,
                                        keys.esn), EspKeys(keys.spi_i, keys.encr_ri))
    msg = parse_mh(receiver.open(rest).payload, src=src, dst=dst)
    assert isinstance(msg, BindingAck)
    return msg


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- the MN and the HA ------------------------------------------------------------------------
def test_protected_registration_and_k_move(tmp_path: Path) -> None:
    """4877-01/05/16: the BU leaves ESP-protected with the BU/BA CHILD_SA from ikev2d's API;
    the HA takes the identity from that SA's IKE SA (no "who sent it" lookups by address),
    asks ikev2d once per BU whether the SA still protects the HoA, moves the IKE SA (K)
    and answers on the same CHILD_SA; both status files count it."""

    async def main() -> None:
        b = await bed(tmp_path)
        try:
            mn = await b.start_mn()
            await until(lambda: mn.state == "registered", "the first registration")
            assert mn.last_ba is not None and mn.last_ba["esp"] and mn.client.protected
            assert b.ha.server is not None and b.ha.server.stats.protected == 1
            assert ("child_keys", {"child_id": b.bu_child(b.mn_api)["uniqueid"]}) in \
                b.mn_api.calls
            assert not any(c == "ike_sas" and "peer_addr" in a for c, a in b.ha_api.calls)
            assert b.ha.recent[-1]["esp"] == f"{b.keys.spi_r:08x}"
            assert b.ha.recent[-1]["identity"] == ALICE
            before = len([c for c in b.ha_api.calls if c[0] == "lookup"])
            assert b.addrs is not None
            b.addrs.set(V4_COA2)
            await until(lambda: mn.coa == V4_COA2 and mn.state == "registered"
                        and b.mn_api.sas[1]["local-host"] == V4_COA2, "the move")
            assert b.ha_api.sas[1]["remote-host"] == V4_COA2
            assert len([c for c in b.ha_api.calls if c[0] == "lookup"]) == before + 1
            assert b.ha.server.stats.protected == 2 and b.ha.book.stats.dropped == {}
            mn.write_status()
            st = read_status(tmp_path / "mn.json")["esp"]
            assert st["last_bu"] and st["sent"] == 2 and st["received"] == 2
            assert st["sas"][0]["spi_out"] == f"{b.keys.spi_r:08x}" and \
                st["sas"][0]["seq_out"] == 2
            b.ha.write_status(running=True)
            ha_esp = read_status(tmp_path / "ha.json")["esp"]
            assert ha_esp["require"] and ha_esp["received"] == 2 and ha_esp["sent"] == 2
            assert ha_esp["sas"][HOA][0]["seq_in"] == 2
            text = format_status(read_status(tmp_path / "ha.json"))
            assert "ESP required: 2 received, 2 sent, dropped none" in text
            assert f"ESP {b.keys.spi_r:08x}: ACCEPTED" in text
            text = format_status(read_status(tmp_path / "mn.json"))
            assert f"SPI {b.keys.spi_r:08x} seq 2; last BU protected" in text
        finally:
            await b.close()

    run(main())


def test_unprotected_bu_refused_when_required(tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """require_esp (the default): an unprotected BU is dropped without an answer (RFC 4301
    §5.2), logged and counted; nothing is registered or moved. With require_esp = false
    the same BU is answered, its identity guessed from the IKE SA at its source."""

    async def main() -> None:
        b = await bed(tmp_path)
        try:
            caplog.set_level(logging.DEBUG)
            answer = await exchange(b.port, encapsulate(bu(1), src=HOA, dst=HA))
            assert answer is None
            assert b.ha.book.stats.dropped == {"unprotected": 1}
            assert b.ha.cache.primary_coa(HOA, b.ha.clock()) is None
            assert "handover" not in b.ha_api.call_names()
            assert "without ESP (require_esp)" in caplog.text
            await until(lambda: read_status(tmp_path / "ha.json")["esp"]["dropped"]
                        == {"unprotected": 1}, "the drop in the status file", timeout=3)
        finally:
            await b.close()
        b = await bed(tmp_path, require_esp=False)
        try:
            answer = await exchange(b.port, encapsulate(bu(1), src=HOA, dst=HA))
            assert answer is not None and inner_header(answer)[2] == 135  # unprotected BA
            assert b.ha.recent[-1]["status"] == 0 and b.ha.recent[-1]["esp"] is None
            # a protected BU is still checked, and answered protected
            ba = open_ba(b.keys, await exchange(b.port, protected(bu(2), mn_sender(b.keys)))
                         or b"")
            assert ba.status == BaStatus.ACCEPTED and ba.seq == 2
        finally:
            await b.close()

    run(main())


def test_wrong_identity_and_wrong_sa_refused(tmp_path: Path) -> None:
    """The SPI must be the BU/BA SA of the HoA (4877-05/07): bob's HoA under alice's SA
    fails the selector check (dropped, no answer, no state change); alice's BU sealed with
    bob's keys is another SPI that verifies for bob's HoA only; garbage SPIs of a HoA the
    HA serves cost one lookup a second, of an unknown HoA none."""

    async def main() -> None:
        b = await bed(tmp_path)
        try:
            alice = mn_sender(b.keys)
            ba = open_ba(b.keys, await exchange(b.port, protected(bu(1), alice)) or b"")
            assert ba.accepted
            state = json.dumps(b.ha.snapshot()["bindings"])
            assert await exchange(b.port, protected(bu(2), alice, hoa=HOA_B)) is None
            assert b.ha.book.stats.dropped == {"policy": 1}
            bob_child = next(c for c in b.ha_api.sas[2]["child-sas"] if c["name"] == "mn2-bu")
            bob_keys, _ = b.ha_api.keys[bob_child["uniqueid"]]
            bob = mn_sender(bob_keys)
            # bob with his own SA; unknown to the HA, it is looked up for his HoA
            ba = open_ba(bob_keys, await exchange(b.port, protected(bu(1), bob, hoa=HOA_B),
                                                  source=SPARE) or b"")
            assert ba.accepted and b.ha.recent[-1]["identity"] == BOB
            state = json.dumps([x for x in b.ha.snapshot()["bindings"] if x["hoa"] == HOA])
            assert await exchange(b.port, protected(bu(3), bob, hoa=HOA), source=SPARE) is None
            assert b.ha.book.stats.dropped == {"policy": 2}
            assert json.dumps([x for x in b.ha.snapshot()["bindings"] if x["hoa"] == HOA]) \
                == state
            assert "handover" not in b.ha_api.call_names()
            # an SPI nobody has: the HoA's SAs are looked up again at most once a second
            lookups = len([c for c in b.ha_api.calls if c[0] == "lookup"])
            stranger = EspSender(alice.transform, EspKeys(0xDEAD, alice.keys.encr_key))
            for n in range(3):
                assert await exchange(b.port, protected(bu(10 + n), stranger)) is None
            assert b.ha.book.stats.dropped["unknown-spi"] == 3
            assert len([c for c in b.ha_api.calls if c[0] == "lookup"]) == lookups + 1
            nobody = protected(bu(1), stranger, hoa="2001:db8:1::999")
            assert await exchange(b.port, nobody) is None
            assert len([c for c in b.ha_api.calls if c[0] == "lookup"]) == lookups + 1
        finally:
            await b.close()

    run(main())


def test_home_prefix_sa_of_another_identity_gets_129(tmp_path: Path) -> None:
    """A BU/BA SA whose selectors cover a whole home prefix (a home-prefix layout) lets a
    BU for bob's HoA through the selector check; the identity is still alice's, so the
    binding cache refuses it (129, 4877-16/21) and the BA goes back protected."""

    async def main() -> None:
        b = await bed(tmp_path)
        try:
            for api in (b.ha_api, b.mn_api):
                child = b.bu_child(api)
                key = "remote-ts" if api is b.ha_api else "local-ts"
                child[key] = ["2001:db8:1::/64[mh/5]"]
            ba = open_ba(b.keys, await exchange(b.port, protected(bu(1), mn_sender(b.keys),
                                                                   hoa=HOA_B)) or b"")
            assert ba.status == BaStatus.ADMINISTRATIVELY_PROHIBITED
            assert "user@example.org may use" in b.ha.recent[-1]["reason"]
            assert b.ha.book.stats.dropped == {}
        finally:
            await b.close()

    run(main())


def test_replays_and_bad_esp_dropped_without_state_change(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """RFC 4303 §3.4.3/§3.4.4: a replayed BU, a bad ICV, a truncated packet, bad padding
    are dropped silently: no BA, the binding and the window as they were; logged without a
    traceback and counted by reason."""

    async def main() -> None:
        b = await bed(tmp_path)
        try:
            sender = mn_sender(b.keys)
            first = protected(bu(1), sender)
            assert open_ba(b.keys, await exchange(b.port, first) or b"").accepted
            state = json.dumps(b.ha.snapshot()["bindings"])
            window = b.ha.book.snapshot(HOA)[0]["seq_in"]
            later = protected(bu(2), sender)
            flipped = bytearray(later)
            flipped[60] ^= 0x10
            src, dst = ipaddress.IPv6Address(HOA), ipaddress.IPv6Address(HA)
            assert b.ha.server is not None
            dropped = b.ha.server.stats.dropped
            for data in (first, bytes(flipped), inner_packet(50, later[40:50], src=src, dst=dst),
                         inner_packet(50, later[40:48], src=src, dst=dst),
                         later[:-3]):  # the inner payload length no longer fits
                assert await exchange(b.port, data) is None
            assert b.ha.book.stats.dropped == {"replay": 1, "icv": 1, "truncated": 2}
            assert b.ha.server.stats.dropped == dropped + 5
            assert json.dumps(b.ha.snapshot()["bindings"]) == state
            assert b.ha.book.snapshot(HOA)[0]["seq_in"] == window
            # the untouched packet still works: nothing was taken from the window
            assert open_ba(b.keys, await exchange(b.port, later) or b"").seq == 2
            assert await exchange(b.port, later) is None  # ... once
            assert b.ha.book.stats.dropped["replay"] == 2
            assert "Traceback" not in caplog.text
            assert not [r for r in caplog.records if r.exc_info]
        finally:
            await b.close()

    run(main())


def test_rekey_window_and_the_child_rekey_event(tmp_path: Path) -> None:
    """RFC 7296 §2.8: after a CHILD_SA rekey both SAs are installed for a while: the HA
    takes BUs on the old and the new one (each with its own window), the MN, told by the
    child-rekey event, sends on the new one at once (no retransmission); once the old one
    is deleted a BU on it is dropped."""

    async def main() -> None:
        b = await bed(tmp_path)
        try:
            mn = await b.start_mn()
            await until(lambda: mn.state == "registered", "the first registration")
            await asyncio.sleep(0.05)  # the agents' event streams are open
            old = b.bu_child(b.mn_api)
            answer = await b.mn_api.rekey_child(old["uniqueid"])
            new_id = answer["uniqueid"]
            new_keys, _ = b.mn_api.keys[new_id]
            await until(lambda: b.mn_api.sas[1]["child-sas"][0]["uniqueid"] == new_id, "rekey")
            old_sender = mn_sender(b.keys, seq=100)
            ba = open_ba(b.keys, await exchange(b.port, protected(bu(50), old_sender)) or b"")
            assert ba.accepted  # the old SA, REKEYED, still takes BUs
            sent = len(mn.client.sent)
            assert b.addrs is not None
            b.addrs.set(V4_COA2)
            await until(lambda: mn.coa == V4_COA2 and mn.state == "registered", "the move")
            # two BUs: the 135 for our crafted seq 50 and the resynchronised one; both on the
            # new SA, none lost on the old one (no ESP drop, no retransmission)
            assert len(mn.client.sent) == sent + 2
            assert [r["status"] for r in list(b.ha.recent)[-2:]] == [135, 0]
            assert {r["esp"] for r in list(b.ha.recent)[-2:]} == {f"{new_keys.spi_r:08x}"}
            assert b.ha.book.stats.dropped == {}
            for api in (b.mn_api, b.ha_api):
                api.delete_child(next(c for c, (k, _) in api.keys.items() if k == b.keys))
            await asyncio.sleep(0.05)
            assert await exchange(b.port, protected(bu(60), old_sender)) is None
            assert b.ha.book.stats.dropped == {"unknown-spi": 1}
        finally:
            await b.close()

    run(main())


def test_restarted_agents_rekey_inherited_sas(tmp_path: Path) -> None:
    """Keys handed out before (a restarted agent): their sequence numbers and window are
    unknown, so the SA is rekeyed before use: the MN before its first BU; the HA drops the
    first BU on it and rekeys, and the MN's retransmission comes on the new SA."""

    async def main() -> None:
        b = await bed(tmp_path)
        try:
            mn = await b.start_mn()
            await until(lambda: mn.state == "registered", "the first registration")
            await mn.close()
            b.mn = None
            mn = await b.start_mn()  # the same daemon: its keys were handed out once
            await until(lambda: mn.state == "registered", "the registration after restart")
            assert "rekey_child" in b.mn_api.call_names()
            rekeyed = b.mn_api.sas[1]["child-sas"][0]
            assert b.ha.recent[-1]["esp"] == rekeyed["spi-out"]
            # now the HA restarts: the BU on the (for it) inherited SA is dropped, rekeyed
            await b.ha.close()
            b.ha = HomeAgent(b.ha.cfg, b.ha_api)
            await b.ha.start()
            port = b.port
            await mn.close()
            b.mn = None
            b.mn_api.handouts.clear()  # this time the MN uses its SA as it is: only the HA
            # meets an SA it had before its restart
            mn = await b.start_mn(port=port)
            await until(lambda: mn.state == "registered", "the registration after the HA's "
                        "restart", timeout=8)
            assert b.ha.book.stats.dropped == {"inherited": 1}
            assert b.ha_api.call_names().count("rekey_child") == 1
            assert b.ha.recent[-1]["esp"] == b.mn_api.sas[1]["child-sas"][0]["spi-out"]
        finally:
            await b.close()

    run(main())


def test_keys_off_means_unprotected_bus(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """ikev2d without api.child_sa_keys: the MN logs why and sends its BUs unprotected;
    a HA that requires ESP drops them (the MN gets no BA), one that does not registers
    it. `protect = false` never asks for keys."""

    async def main() -> None:
        for require in (True, False):
            b = await bed(tmp_path, require_esp=require)
            b.mn_api.keys_off = True
            try:
                mn = await b.start_mn()
                if require:
                    await until(lambda mn=mn: mn.state == "no-ba", "giving up", timeout=5)
                    assert b.ha.book.stats.dropped["unprotected"] >= 3
                else:
                    await until(lambda mn=mn: mn.state == "registered", "registered")
                    assert not mn.client.protected
                assert "api.child_sa_keys = true" in caplog.text
            finally:
                await b.close()
        b = await bed(tmp_path, require_esp=False)
        try:
            mn = await b.start_mn(protect=False)
            await until(lambda: mn.state == "registered", "registered")
            assert "child_keys" not in b.mn_api.call_names()
            assert "lookup" not in b.mn_api.call_names()
        finally:
            await b.close()

    run(main())
