"""The MN and HA agents (mobility/mn_agent.py, mobility/ha_agent.py) against in-memory
IKE daemons (mobility.ike_api.FakeIkeApi): CoA choice, BU validation with identities taken
from the IKE SAs, the K-bit move before the BA, K cleared when the IKE SA cannot follow,
re-establishment without K, status files and `ikev2ctl bindings`. The MN↔HA runs use real
UDP sockets on 127.0.0.0/8 (IPv4 CoAs, RFC 5555) and need no root; the namespace run with
two ikev2d daemons is tests/mobility/test_e2e_netns.py."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mobility.agent_config import (
    AgentConfigError,
    HaAgentConfig,
    MnAgentConfig,
    MobileNodeEntry,
    load_agent_config,
    parse_agent_config,
)
from mobility.cli import main as cli_main
from mobility.ha_agent import HomeAgent, primary_of
from mobility.ike_api import ApiMover, FakeBuKeys, FakeIkeApi, holds_home_address, ts_covers
from mobility.mh import BindingAck, BindingUpdate
from mobility.mn_agent import Candidate, MobileNode, care_of_candidates, choose_coa
from mobility.options import AlternateCareOfAddress
from mobility.registry import BaStatus, BuFlags
from mobility.status import bindings_command, format_status, read_status
from mobility.transport import ReceivedBu, RetransmitPolicy

HA, HOA, HOA_B = "2001:db8:1::1", "2001:db8:1::100", "2001:db8:1::200"
ALICE, BOB = "user@example.org", "bob@example.org"
COA1, COA2, SPARE = "2001:db8:a::10", "2001:db8:b::10", "2001:db8:c::66"


def mn_cfg(**kw: Any) -> MnAgentConfig:
    base: dict[str, Any] = dict(connection="mn1", home_address=HOA, ha_address=HA,
                                ha_endpoint=HA, identity=ALICE, status_file=None)
    base.update(kw)
    return MnAgentConfig(**base)


def ha_cfg(**kw: Any) -> HaAgentConfig:
    base: dict[str, Any] = dict(
        address=HA, home_prefixes=("2001:db8:1::/64",), status_file=None,
        mobile_nodes=(MobileNodeEntry("mn1", ALICE, home_address=HOA),
                      MobileNodeEntry("mn2", BOB, home_address=HOA_B)))
    base.update(kw)
    return HaAgentConfig(**base)


# --- CoA choice --------------------------------------------------------------------------------
def test_choose_coa_preferences_and_stickiness() -> None:
    a = Candidate(COA1, "mnA", 1)
    b = Candidate(COA2, "mnB", 2)
    v4 = Candidate("192.0.2.10", "mnA", 3)
    cfg = mn_cfg()
    assert choose_coa([a, v4], None, cfg) == COA1  # the HA's family only
    assert choose_coa([a, b], None, cfg) == COA2  # equals: the newest
    assert choose_coa([a, b], COA1, cfg) == COA1  # ... unless the current one is among them
    assert choose_coa([b], COA1, cfg) == COA2  # the current one went
    assert choose_coa([], COA1, cfg) is None
    pref = mn_cfg(prefer_interfaces=("mnA",))
    assert choose_coa([a, b], COA2, pref) == COA1  # strictly better wins over sticky
    pref = mn_cfg(prefer_prefixes=("2001:db8:b::/64",))
    assert choose_coa([a, b], COA1, pref) == COA2
    assert choose_coa([a, b], None, mn_cfg(exclude_interfaces=("mnB",))) == COA1
    # the home address on a link: at home (return home); other home-prefix addresses no CoA
    home = Candidate(HOA, "eth0", 4)
    assert choose_coa([a, home], COA1, cfg) == HOA
    other_home = Candidate("2001:db8:1::7", "eth0", 5)
    assert care_of_candidates([a, other_home], mn_cfg(home_prefix="2001:db8:1::/64")) == [a]
    v4cfg = mn_cfg(ha_endpoint="192.0.2.1")  # DSMIPv6: IPv4 CoAs
    assert choose_coa([a, v4], None, v4cfg) == "192.0.2.10"


# --- config ------------------------------------------------------------------------------------
MN_TOML = f"""
[mobile_node]
connection = "mn1"
home_address = "{HOA}"
ha_address = "{HA}"
identity = "{ALICE}"
port = 14191
prefer_interfaces = ["mnB"]
status_file = ""
[mobile_node.retransmit]
initial = 0.2
maximum = 0.8
[api]
socket = "/tmp/nowhere.sock"
[layout]
ha_identity = "ha.example.org"
psk = "testbed-only-psk"
dpd_delay = "1s"
"""

HA_TOML = f"""
[home_agent]
address = "{HA}"
home_prefixes = ["2001:db8:1::/64"]
port = 14191
[[home_agent.mobile_nodes]]
name = "mn1"
identity = "{ALICE}"
home_address = "{HOA}"
[[home_agent.mobile_nodes]]
name = "mn2"
identity = "{BOB}"
home_prefix = "2001:db8:1:2::/64"
psk = "another-testbed-psk"
[api]
socket = "/tmp/nowhere.sock"
[layout]
ha_identity = "ha.example.org"
psk = "testbed-only-psk"
"""


def test_config_files_and_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mn_file, ha_file = tmp_path / "mn.toml", tmp_path / "ha.toml"
    mn_file.write_text(MN_TOML)
    ha_file.write_text(HA_TOML)
    mn = load_agent_config(mn_file)
    assert isinstance(mn, MnAgentConfig)
    assert mn.port == 14191 and mn.ha_endpoint == HA and mn.status_file is None
    assert mn.retransmit == RetransmitPolicy(initial=0.2, maximum=0.8)
    assert mn.protect  # ESP with the BU/BA SA by default (mobility/protection.py)
    ha = load_agent_config(ha_file)
    assert isinstance(ha, HaAgentConfig)
    assert ha.require_esp
    mn_file.write_text(MN_TOML.replace("port = 14191", "port = 14191\nprotect = false"))
    ha_file.write_text(HA_TOML.replace("port = 14191", "port = 14191\nrequire_esp = false"))
    assert not load_agent_config(mn_file).protect  # type: ignore[union-attr]
    assert not load_agent_config(ha_file).require_esp  # type: ignore[union-attr]
    mn_file.write_text(MN_TOML)
    ha_file.write_text(HA_TOML)
    assert ha.authorization().owner_of("2001:db8:1:2::5") is not None
    assert cli_main(["check", "--config", str(ha_file)]) == 0
    assert cli_main(["layout", "--config", str(mn_file)]) == 0
    out = capsys.readouterr().out
    assert "[connections.mn1]" in out and 'dpd_delay = "1s"' in out
    assert cli_main(["layout", "--config", str(ha_file)]) == 0
    out = capsys.readouterr().out
    assert "[connections.mn2]" in out and "another-testbed-psk" in out
    from ikev2.config.loader import load_config_text

    load_config_text(out, "<ha layout>")  # the daemon accepts it
    assert cli_main(["ha", "--config", str(mn_file)]) == 2  # wrong role


@pytest.mark.parametrize(("text", "words"), [
    ("[mobile_node]\nconnection='x'\n[api]\nsocket='s'", "ha_address"),
    (MN_TOML.replace('port = 14191', 'prot = 14191'), "unknown key(s) prot"),
    (MN_TOML.replace('socket = "/tmp/nowhere.sock"', 'url = "http://x:1"\nsocket = "s"'),
     "exactly one of socket, url, daemon_config"),
    (MN_TOML.replace('port = 14191', 'port = 0'), "mobile_node.port"),
    (MN_TOML.replace('port = 14191', 'ike_move = "whenever"'), "ike_move"),
    (HA_TOML.replace('home_prefix = "2001:db8:1:2::/64"', f'home_address = "{HOA}"'),
     "overlaps"),
    ("[api]\nsocket='s'", "exactly one of [mobile_node] and [home_agent]"),
])
def test_config_errors_name_the_key(text: str, words: str) -> None:
    import tomllib

    with pytest.raises(AgentConfigError, match=words.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        parse_agent_config(tomllib.loads(text))


# --- the HA, one BU at a time --------------------------------------------------------------------
def bu(seq: int, *, k: bool = True, lifetime: int = 150, options: tuple[Any, ...] = ()
       ) -> BindingUpdate:
    return BindingUpdate(seq, BuFlags.A | BuFlags.H | (BuFlags.K if k else BuFlags(0)),
                         lifetime, options)


def rx(msg: BindingUpdate, source: str, hoa: str = HOA) -> ReceivedBu:
    import ipaddress

    return ReceivedBu(msg, ipaddress.IPv6Address(hoa), ipaddress.IPv6Address(HA),
                      (source, 40000))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ha_with_alice(**kw: Any) -> tuple[HomeAgent, FakeIkeApi, Clock]:
    api = FakeIkeApi()
    api.add(name="mn1", local=HA, remote=COA1, remote_id=ALICE, initiator=False, hoa=HOA,
            ha=HA)
    clock = Clock()
    return HomeAgent(ha_cfg(**kw), api, clock=clock), api, clock


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_ha_registration_move_and_bad_inputs(tmp_path: Path) -> None:
    """4877-11/15/16/25: identity from the IKE SAs, K echoed, the IKE SA moved before the
    BA; then every refusal leaves the SAs and the binding alone."""
    status = tmp_path / "bindings.json"
    agent, api, clock = ha_with_alice(status_file=str(status))

    async def main() -> None:
        # first registration from the IKE SA's own address: no move
        ba = await agent.handle(rx(bu(1), COA1))
        assert ba is not None and ba.status == BaStatus.ACCEPTED and ba.key_mgmt
        assert "handover" not in api.call_names()
        assert api.calls[0] == ("ike_sas", {"peer_addr": COA1, "state": "ESTABLISHED"})
        # a move: nobody at COA2; the HoA's owner holds the HoA-bound SAs → alice; K → moved
        api.calls.clear()
        ba = await agent.handle(rx(bu(2), COA2))
        assert ba is not None and ba.accepted and ba.key_mgmt
        assert ("handover", {"ike_id": 1, "local": None, "remote": COA2, "mode": "kbit"}) \
            in api.calls
        sa = api.sas[1]
        assert sa["remote-host"] == COA2
        assert [c["remote-host"] for c in sa["child-sas"]] == [HOA, COA2]  # bu stays
        before = json.dumps(api.sas, sort_keys=True)
        n_calls = len(api.calls)

        async def refused(msg: BindingUpdate, source: str, hoa: str = HOA) -> BindingAck:
            clock.now += 1
            ba = await agent.handle(rx(msg, source, hoa))
            assert ba is not None and not ba.accepted
            assert json.dumps(api.sas, sort_keys=True) == before
            assert "handover" not in api.call_names()[n_calls:]
            assert agent.cache.primary_coa(HOA, clock.now) is not None
            assert str(agent.cache.primary_coa(HOA, clock.now)) == COA2
            return ba

        ba = await refused(bu(2), COA2)  # sequence number not greater
        assert ba.status == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW and ba.seq == 2
        ba = await refused(bu(3), COA2, hoa="2001:db8:1::999")  # nobody's HoA
        assert ba.status == BaStatus.NOT_HOME_AGENT_FOR_THIS_MN
        ba = await refused(bu(3), COA2, hoa=HOA_B)  # alice (at COA2) for bob's HoA
        assert ba.status == BaStatus.ADMINISTRATIVELY_PROHIBITED
        assert "user@example.org may use" in agent.recent[-1]["reason"]
        ba = await refused(bu(3), SPARE, hoa=HOA_B)  # bob has no IKE SA at all
        assert ba.status == BaStatus.ADMINISTRATIVELY_PROHIBITED
        assert "no IKE SA of bob@example.org" in agent.recent[-1]["reason"]
        # deregistration (lifetime 0): accepted, binding gone, nothing moves
        ba = await agent.handle(rx(bu(3, lifetime=0), COA2))
        assert ba is not None and ba.status == BaStatus.ACCEPTED and ba.lifetime == 0
        assert agent.cache.primary_coa(HOA, clock.now) is None
        assert json.dumps(api.sas, sort_keys=True) == before
        await asyncio.sleep(0)  # the status file is written after the BA
        doc = read_status(status)
        assert doc["bindings"] == [] and doc["recent"][-1]["status_name"] == "ACCEPTED"
        # alice's IKE SA gone: a K-bit BU has nobody to authenticate it
        api.sas.clear()
        ba = await agent.handle(rx(bu(4), COA1))
        assert ba is not None and ba.status == BaStatus.ADMINISTRATIVELY_PROHIBITED
        assert "no IKE SA of user@example.org holds SAs for" in agent.recent[-1]["reason"]

    run(main())


def test_ha_clears_k_when_the_ike_sa_cannot_follow() -> None:
    """The move failed (kernel refused, SA gone meanwhile): the binding is accepted but the
    BA goes without K, so the MN re-establishes IKE (RFC 6275 §11.7.3, 4877-12)."""
    agent, api, _ = ha_with_alice()

    async def main() -> None:
        await agent.handle(rx(bu(1), COA1))
        from api.client import ApiClientError

        api.fail_handover = ApiClientError(409, "the kernel refused: EINVAL")
        ba = await agent.handle(rx(bu(2), COA2))
        assert ba is not None and ba.accepted and not ba.key_mgmt
        assert "K cleared" in agent.recent[-1]["reason"]

    run(main())


def test_ha_alternate_coa_and_no_k_drop() -> None:
    """The CoA may come in an Alternate CoA option; without K a changed primary CoA deletes
    the IKE SAs still at the old one (RFC 6275 §10.3.1)."""
    agent, api, _ = ha_with_alice()

    async def main() -> None:
        await agent.handle(rx(bu(1, k=False), COA1))
        ba = await agent.handle(rx(bu(2, k=False, options=(AlternateCareOfAddress(COA2),)),
                                   COA1))
        assert ba is not None and ba.accepted and not ba.key_mgmt
        assert ("terminate", {"ike_id": 1}) in api.calls
        assert "handover" not in api.call_names()

    run(main())


def test_api_mover_and_selector_helpers() -> None:
    api = FakeIkeApi()
    api.add(name="mn1", local=HA, remote=COA1, remote_id=ALICE, initiator=False, hoa=HOA,
            ha=HA)
    assert holds_home_address(api.sas[1], HOA) and not holds_home_address(api.sas[1], HOA_B)
    assert ts_covers("2001:db8:1::100/128[mh/5]", HOA) and not ts_covers("bogus", HOA)
    answer = run(ApiMover(api).handover(ike_sa=None, identity=ALICE, local=None, remote=COA2,
                                        mode="kbit"))
    assert answer["moved"] == [1]
    with pytest.raises(LookupError):
        run(ApiMover(api).handover(ike_sa=None, identity=BOB, local=None, remote=COA2,
                                   mode="kbit"))


# --- MN <-> HA over loopback UDP -----------------------------------------------------------------
V4_HA, V4_COA1, V4_COA2 = "127.0.0.1", "127.0.0.2", "127.0.0.3"


class FakeAddresses:
    def __init__(self, *addrs: str) -> None:
        self.cands = [Candidate(a, "lo", n) for n, a in enumerate(addrs)]
        self.on_change: Callable[[list[Candidate]], None] | None = None

    def open(self, on_change: Callable[[list[Candidate]], None]) -> list[Candidate]:
        self.on_change = on_change
        return list(self.cands)

    def set(self, *addrs: str) -> None:
        n = max((c.order for c in self.cands), default=0)
        self.cands = [Candidate(a, "lo", n + i + 1) for i, a in enumerate(addrs)]
        assert self.on_change is not None
        self.on_change(list(self.cands))

    def close(self) -> None:
        pass


async def until(pred: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.005)


def fake_daemons() -> tuple[FakeIkeApi, FakeIkeApi, FakeBuKeys]:
    """The HA's and the MN's in-memory ikev2d, linked (a rekey reaches both), each with
    alice's IKE SA at CoA1 and the BU/BA CHILD_SA both negotiated (the same keys)."""
    ha_api, mn_api = FakeIkeApi(), FakeIkeApi()
    ha_api.peer, mn_api.peer = mn_api, ha_api
    keys = FakeBuKeys.random()
    ha_api.add(name="mn1", local=V4_HA, remote=V4_COA1, remote_id=ALICE, initiator=False,
               hoa=HOA, ha=HA, bu_keys=keys)
    mn_api.add(name="mn1", local=V4_COA1, remote=V4_HA, remote_id="ha.example.org",
               hoa=HOA, ha=HA, bu_keys=keys)
    return ha_api, mn_api, keys


async def pair(tmp_path: Path, *, supports_k: bool = True, **mn_kw: Any
               ) -> tuple[MobileNode, HomeAgent, FakeIkeApi, FakeIkeApi, FakeAddresses]:
    ha_api, mn_api, _ = fake_daemons()
    # "local": where ikev2d's routing lookup would start a new IKE SA (the old link)
    mn_api.connections["mn1"] = {"local": V4_COA1, "remote": V4_HA,
                                 "remote_id": "ha.example.org", "hoa": HOA, "ha": HA}
    ha = HomeAgent(ha_cfg(listen=V4_HA, port=0, allow_loopback_coa=True,
                          supports_k=supports_k, status_file=str(tmp_path / "ha.json"),
                          events_file=str(tmp_path / "ha.events")), ha_api)
    await ha.start()
    assert ha.server is not None
    addrs = FakeAddresses(V4_COA1)
    kw: dict[str, Any] = dict(ha_endpoint=V4_HA, port=ha.server.local[1],
                              retransmit=RetransmitPolicy(0.2, 0.8, 0.2), ike_wait=1.0,
                              status_file=str(tmp_path / "mn.json"),
                              events_file=str(tmp_path / "mn.events"))
    kw.update(mn_kw)
    mn = MobileNode(mn_cfg(**kw), mn_api, addresses=addrs)
    await mn.start()
    await until(lambda: mn.state == "registered", "the first registration")
    return mn, ha, mn_api, ha_api, addrs


def test_mn_and_ha_move_with_k(tmp_path: Path) -> None:
    """The full K-bit handover: the MN's CoA changes, the BU goes from the new CoA, the HA
    moves its IKE SA before the BA, the MN moves its own on the BA (4877-11/12/13/15);
    same SA ids both sides (no new IKE SA); back again; status files and ikev2ctl output."""

    async def main() -> None:
        mn, ha, mn_api, ha_api, addrs = await pair(tmp_path)
        try:
            assert mn.coa == V4_COA1 and mn.k_agreed
            assert "handover" not in mn_api.call_names()  # already there
            for new in (V4_COA2, V4_COA1):
                addrs.set(new)
                await until(lambda new=new: mn.coa == new and mn.state == "registered"
                            and mn_api.sas[1]["local-host"] == new, f"the move to {new}")
                assert ha_api.sas[1]["remote-host"] == new
                assert list(mn_api.sas) == [1] and list(ha_api.sas) == [1]
                assert str(ha.cache.primary_coa(HOA, ha.clock())) == new
            await asyncio.sleep(0.01)
            doc = read_status(tmp_path / "ha.json")
            assert primary_of(doc, HOA) == V4_COA1
            text = format_status(doc)
            assert HOA in text and ALICE in text and "ACCEPTED" in text
            out = io.StringIO()
            assert bindings_command(str(tmp_path / "mn.json"), False, out) == 0
            assert "registered" in out.getvalue() and V4_COA1 in out.getvalue()
            # the event logs: the order of 4877-15 on each side
            ev = [json.loads(line) for line in (tmp_path / "mn.events").read_text()
                  .splitlines()]
            names = [e["event"] for e in ev]
            last = len(names) - 1 - names[::-1].index("coa-change")
            assert names[last:] == ["coa-change", "bu-sent", "ba", "ike-moved"]
            hev = [json.loads(line)["event"] for line in (tmp_path / "ha.events").read_text()
                   .splitlines()]
            assert hev[-3:] == ["bu-received", "ike-moved", "ba-sent"]
        finally:
            await mn.close()
            await ha.close()

    run(main())


def test_mn_without_k_re_establishes(tmp_path: Path) -> None:
    """The HA does not do K: the BA has no K, the HA deletes the IKE SA at the old CoA and
    the MN re-establishes it from the new CoA (4877-08/12), asking ikev2d for that source
    address rather than the routed one."""

    async def main() -> None:
        mn, ha, mn_api, ha_api, addrs = await pair(tmp_path, supports_k=False)
        try:
            assert not mn.k_agreed
            addrs.set(V4_COA2)
            await until(lambda: "initiate" in mn_api.call_names(), "the new IKE SA")
            assert ("initiate", {"name": "mn1", "local": V4_COA2}) in mn_api.calls
            assert ("terminate", {"ike_id": 1}) in mn_api.calls
            assert mn.ike is not None and mn.ike["local-host"] == V4_COA2
            assert ("terminate", {"ike_id": 1}) in ha_api.calls
            assert "handover" not in mn_api.call_names() + ha_api.call_names()
        finally:
            await mn.close()
            await ha.close()

    run(main())


def test_mn_refused_mobike_update_falls_back_to_k(tmp_path: Path) -> None:
    """prefer_mobike, but the HA refuses the UPDATE_SA_ADDRESSES (ikev2d's handover answers
    502 handover-refused instead of a 202 that looked like a move under way): the BU then
    carries K and the IKE SA follows by the K bit."""
    from api.client import ApiClientError

    async def main() -> None:
        mn, ha, mn_api, ha_api, addrs = await pair(tmp_path, prefer_mobike=True)
        mn_api.sas[1]["mobike"] = True
        kbit = mn_api.handover

        async def refuse_mobike(ike_id: int, *, local: str | None = None,
                                remote: str | None = None, mode: str = "auto") -> Any:
            if mode != "mobike":
                return await kbit(ike_id, local=local, remote=remote, mode=mode)
            mn_api.calls.append(("handover", {"ike_id": ike_id, "local": local,
                                              "mode": mode}))
            raise ApiClientError(502, "IKE SA 1 not moved: the peer refused "
                                 "UPDATE_SA_ADDRESSES", {"notify": "UNACCEPTABLE_ADDRESSES"})

        mn_api.handover = refuse_mobike  # type: ignore[method-assign]
        try:
            addrs.set(V4_COA2)
            await until(lambda: mn.coa == V4_COA2 and mn.state == "registered"
                        and mn_api.sas[1]["local-host"] == V4_COA2, "the move by K")
            await until(lambda: (tmp_path / "mn.events").read_text().rstrip().endswith(
                '"ike-moved", "ike_sa": 1, "local": "127.0.0.3", "mode": "kbit", '
                '"moved": true, "old": "127.0.0.2"}'), "the MN's log of its move")
            assert mn.k_agreed and ha_api.sas[1]["remote-host"] == V4_COA2
            modes = [c[1]["mode"] for c in mn_api.calls if c[0] == "handover"]
            assert modes == ["mobike", "kbit"]
            ev = [json.loads(line) for line in (tmp_path / "mn.events").read_text()
                  .splitlines()]
            names = [e["event"] for e in ev]
            last = len(names) - 1 - names[::-1].index("coa-change")
            assert names[last:] == ["coa-change", "ike-move-failed", "bu-sent", "ba",
                                    "ike-moved"], names
            assert ev[last + 1]["mode"] == "mobike" and "refused" in ev[last + 1]["error"]
            assert ev[last + 2]["k"] is True
        finally:
            await mn.close()
            await ha.close()

    run(main())


def test_mn_before_bu_and_no_answer(tmp_path: Path) -> None:
    """ike_move = "before-bu": the IKE SA moves when the CoA changes (the last BA had K),
    before the BU; a home agent that stops answering ends in state no-ba after the
    RFC 6275 back-off, and a newer change cancels the registration in flight."""

    async def main() -> None:
        mn, ha, _mn_api, ha_api, addrs = await pair(tmp_path, ike_move="before-bu")
        try:
            addrs.set(V4_COA2)
            await until(lambda: mn.coa == V4_COA2 and mn.state == "registered", "the move")
            ev = [json.loads(x)["event"] for x in (tmp_path / "mn.events").read_text()
                  .splitlines()]
            assert ev[-4:] == ["coa-change", "ike-moved", "bu-sent", "ba"]
            assert ha_api.sas[1]["remote-host"] == V4_COA2
            ha.server.close()  # type: ignore[union-attr]
            addrs.set(V4_COA1)
            await asyncio.sleep(0.05)
            addrs.set("127.0.0.4")  # cancels the registration from COA1
            await until(lambda: mn.state == "no-ba", "giving up", timeout=10)
            assert mn.want == "127.0.0.4" and mn.coa == V4_COA2
            sent = [b.seq for b in mn.client.sent]
            assert sent == sorted(sent) and len(set(sent)) == len(sent)
        finally:
            await mn.close()
            await ha.close()

    run(main())


def test_mn_refresh_and_resync(tmp_path: Path) -> None:
    """Re-registration before the lifetime ends; a BA 135 (the HA saw a higher number,
    e.g. another sender) resynchronises the sequence number (RFC 6275 §11.7.3)."""

    async def main() -> None:
        mn, ha, _mn_api, _ha_api, addrs = await pair(tmp_path, lifetime=8.0, refresh=0.05)
        try:
            seq = mn.client.seq
            await until(lambda: mn.client.seq > seq and mn.state == "registered",
                        "a refresh", timeout=5)
            # someone registered with a much higher number meanwhile
            ba = await ha.handle(rx(dataclasses.replace(bu(mn.client.seq + 1000)), V4_COA1))
            assert ba is not None and ba.accepted
            before = mn.client.seq
            addrs.set(V4_COA2)
            await until(lambda: mn.coa == V4_COA2 and mn.state == "registered", "the move")
            assert mn.client.seq > before + 1000
        finally:
            await mn.close()
            await ha.close()

    run(main())


def test_ikev2ctl_bindings_and_layout_without_payload(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ikev2ctl bindings` prints a status file (1 without one); `payload = false` in
    [layout] leaves the payload tunnel child out of the generated connection."""
    from ikev2.ctl import main as ctl_main

    agent, _, _ = ha_with_alice(status_file=str(tmp_path / "b.json"))
    run(agent.handle(rx(bu(1), COA1)))
    agent.write_status(running=True)
    assert ctl_main(["bindings", "--status", str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith(HOA))
    assert row[:7] == [HOA, ALICE, "1", COA1, "-", "K", "*"] and row[7] in ("600s", "599s")
    assert f"MH over UDP on [{HA}]:4191" in out
    assert ctl_main(["bindings", "--status", str(tmp_path / "b.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bindings"][0]["primary"] == COA1
    assert ctl_main(["bindings", "--status", str(tmp_path / "none.json")]) == 1
    mn_file = tmp_path / "mn.toml"
    mn_file.write_text(MN_TOML.replace('dpd_delay = "1s"', "payload = false"))
    assert cli_main(["layout", "--config", str(mn_file)]) == 0
    out = capsys.readouterr().out
    assert "mn1-hoti" in out and "mn1-payload" not in out
    assert "vips" not in out
    # `request_home = true`: the MN asks for its HoA through the configuration payload
    mn_file.write_text(MN_TOML.replace('dpd_delay = "1s"', "request_home = true"))
    assert cli_main(["layout", "--config", str(mn_file)]) == 0
    out = capsys.readouterr().out
    assert f'vips = ["{HOA}"]' in out, out
