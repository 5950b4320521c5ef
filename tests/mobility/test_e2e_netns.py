"""End to end: a K-bit handover (RFC 4877 §4.4) between two ikev2d daemons driven by the
`ikev2-mip6` agents, in network namespaces (tests/mobility/testbed.py has the topology).

The MN (IDi user@example.org, HoA 2001:db8:1::100) starts on CoA1 (link A); moving means
removing CoA1 and adding CoA2 on link B. The MN agent sees it over rtnetlink, sends a BU
with K from CoA2 (MH over UDP, ESP-protected with the BU/BA CHILD_SA whose keys it got from
its ikev2d's API: RFC 5555 §4.1, 4877-01/05), the HA agent verifies it (SPI, ICV, replay
window, the SA's selectors and identity), moves its IKE SA through its ikev2d's REST API
(mode kbit) and answers with K, protected on the same CHILD_SA; the MN agent then moves its
own IKE SA (REQUIREMENTS 4877-06/08/11/12/13/15/25). Checked after each move, through both
REST APIs:
the HA's binding cache (its status file, as `ikev2ctl bindings` prints it) holds the new
CoA; both IKE SAs show the new endpoint with the same SPIs and unique ids; the tunnel
CHILD_SAs (HoTI/HoT, payload) have the new outer address with the same SPIs; the HoA-bound
transport SAs (BU/BA, MPS/MPA) are unchanged (the CHILD_SAs' outer addresses are the API's
local-host/remote-host); a CHILD_SA rekey (CREATE_CHILD_SA, then an INFORMATIONAL deleting
the old SA) and a liveness check from each side (`POST /ike-sas/{id}/liveness`, an empty
INFORMATIONAL answered) work over the new path, with DPD (dpd_delay 1 s) running behind.
Then back to CoA1, then the bad inputs: unprotected, replayed, under another HoA's SA,
protected with a deleted SA (all dropped without an answer), and the BA statuses of
protected BUs the test makes with the MN's SA while the MN agent is stopped; the restarted
agent rekeys that SA (its keys were handed out before) and moves again. Memory kernel: no
ESP on this host (the agents apply ESP themselves, the keys still come from ikev2d); the
kernel CHILD_SA moves are in tests/daemon/test_mobike_netns.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api.client import ApiClientError
from mobility.ha_agent import primary_of
from mobility.mh import BindingUpdate
from mobility.registry import BaStatus, BuFlags
from mobility.status import format_status
from tests.mobility.testbed import (
    CHILDREN,
    COA1,
    COA2,
    HA,
    HOA,
    HOA_B,
    ID_HA,
    ID_MN,
    SPARE,
    CraftedBus,
    MipNet,
    Testbed,
    exchange,
    send_bu,
)

TUNNEL = ("mn1-hoti", "mn1-payload")
TRANSPORT = ("mn1-bu", "mn1-mpd")


@pytest.fixture
def bed() -> Iterator[Testbed]:
    net = MipNet()
    try:
        tb = Testbed(net)
        failed = True
        try:
            yield tb
            failed = False
        finally:
            tb.close(keep=failed)
            if failed:
                print(f"testbed files kept in {tb.work}")
    finally:
        net.close()


def spis(view: dict[str, Any]) -> tuple[str, str]:
    return view["initiator-spi"], view["responder-spi"]


def snapshot(bed: Testbed) -> dict[str, Any]:
    mn, ha = bed.ike(bed.mn_api), bed.ike(bed.ha_api)
    return {"mn": mn, "ha": ha, "mn_children": bed.children(bed.mn_api),
            "ha_children": bed.children(bed.ha_api)}


def assert_at(bed: Testbed, coa: str, before: dict[str, Any]) -> dict[str, Any]:
    """Everything of the module docstring except rekey and DPD."""
    doc = bed.ha_status()
    assert primary_of(doc, HOA) == coa
    entry = next(e for e in doc["bindings"] if e["hoa"] == HOA)
    assert [b["coa"] for b in entry["coas"]] == [coa] and entry["coas"][0]["k"]
    assert entry["identity"] == ID_MN
    assert f"{coa}" in format_status(doc)

    # the API reads the engines: the CHILD_SAs moved with their IKE SA, in the same call
    now = snapshot(bed)
    mn, ha = now["mn"], now["ha"]
    # the IKE SA: new endpoint, same SA (ids and SPIs), the other end untouched
    assert (mn["local-host"], mn["remote-host"]) == (coa, HA)
    assert (ha["local-host"], ha["remote-host"]) == (HA, coa)
    assert mn["uniqueid"] == before["mn"]["uniqueid"] and spis(mn) == spis(before["mn"])
    assert ha["uniqueid"] == before["ha"]["uniqueid"] and spis(ha) == spis(before["ha"])
    assert spis(mn) == spis(ha) and mn["remote-id"] == ID_HA and ha["remote-id"] == ID_MN
    assert not mn["mobike"] and not ha["mobike"]
    for side, mine, peer in (("mn_children", coa, HA), ("ha_children", HA, coa)):
        kids = now[side]
        assert set(kids) == set(TUNNEL + TRANSPORT)
        for name in TUNNEL:  # 4877-06: the tunnel SAs follow the CoA
            assert kids[name]["outer"] == (mine, peer), (side, name, kids[name])
            assert kids[name]["mode"] == "TUNNEL"
        home = (HOA, HA) if side == "mn_children" else (HA, HOA)
        for name in TRANSPORT:  # 4877-05: bound to the HoA, they stay
            assert kids[name]["outer"] == home, (side, name, kids[name])
            assert kids[name]["mode"] == "TRANSPORT"
        for name in TUNNEL + TRANSPORT:
            old = before[side][name]
            assert (kids[name]["spi-in"], kids[name]["spi-out"]) == (
                old["spi-in"], old["spi-out"]), (side, name)
    return now


def move_and_check(bed: Testbed, old: str, new: str) -> None:
    before = snapshot(bed)
    bed.move(old, new)
    bed.wait(lambda: bed.mn_status()["coa"] == new and bed.mn_status()["state"] == "registered"
             and bed.ike(bed.mn_api)["local-host"] == new, f"the MN registered at {new}")
    st = bed.mn_status()
    assert st["k_agreed"] and st["last_ba"]["k"] and st["last_ba"]["status"] == 0
    assert st["last_ba"]["esp"] and st["esp"]["last_bu"]  # 4877-01: BU and BA under ESP
    bu_spi = before["mn_children"]["mn1-bu"]["spi-out"]
    assert bed.ha_status()["recent"][-1]["esp"] == bu_spi
    now = assert_at(bed, new, before)
    # the order of 4877-15 in the agents' logs: BU, the HA's move, the BA, the MN's move
    ev = bed.mn_events()
    i = max(n for n, e in enumerate(ev) if e["event"] == "coa-change" and e["new"] == new)
    names = [e["event"] for e in ev[i:] if e["event"] != "addresses"]
    assert names[:4] == ["coa-change", "bu-sent", "ba", "ike-moved"], names
    hev = [e for e in bed.ha_events() if e["t"] >= ev[i]["t"]]
    k = next(n for n, e in enumerate(hev) if e["event"] == "ike-moved")
    assert [e["event"] for e in hev[k - 1:k + 2]] == ["bu-received", "ike-moved", "ba-sent"]
    assert hev[k]["remote"] == new and hev[k]["moved"] and hev[k + 1]["k"]
    assert hev[k + 1]["t"] < next(e["t"] for e in ev[i:] if e["event"] == "ba")
    # a CHILD_SA rekey over the new path: CREATE_CHILD_SA, then the INFORMATIONAL delete
    tunnel = now["mn_children"]["mn1-hoti"]
    answer = bed.mn_api.rekey_child(tunnel["uniqueid"], timeout=10)
    assert answer["outcome"] == "child-rekey", answer
    new_id = answer["uniqueid"]
    assert new_id != tunnel["uniqueid"]

    def rekeyed() -> bool:
        m, h = bed.children(bed.mn_api), bed.children(bed.ha_api)
        return (m["mn1-hoti"]["uniqueid"] == new_id and len(m) == CHILDREN
                and len(h) == CHILDREN and h["mn1-hoti"]["spi-in"] == m["mn1-hoti"]["spi-out"]
                and m["mn1-hoti"]["outer"] is not None and h["mn1-hoti"]["outer"] is not None)

    bed.wait(rekeyed, "the rekeyed HoTI/HoT CHILD_SA on both sides, the old one deleted")
    m, h = bed.children(bed.mn_api), bed.children(bed.ha_api)
    assert m["mn1-hoti"]["outer"] == (new, HA) and h["mn1-hoti"]["outer"] == (HA, new)
    assert m["mn1-hoti"]["spi-in"] != tunnel["spi-in"]
    # liveness over the new path, asked of each side: an empty INFORMATIONAL MN -> HA from
    # the new CoA and HA -> MN to it, each answered (behind a DPD probe in flight, if any)
    for api in (bed.mn_api, bed.ha_api):
        ike = bed.ike(api)
        alive = api.liveness(ike["uniqueid"], timeout=10)
        assert alive["alive"] and alive["ike-sa"] == ike["uniqueid"], alive
    mn, ha = bed.ike(bed.mn_api), bed.ike(bed.ha_api)
    assert (mn["local-host"], ha["remote-host"]) == (new, new)
    assert spis(mn) == spis(before["mn"])  # DPD kept the SA: no delete, no restart
    assert "Traceback" not in bed.mn_agent.text() + bed.ha_agent.text()


@pytest.mark.root
def test_k_bit_handover_and_back(bed: Testbed) -> None:
    assert bed.mn_status()["coa"] == COA1 and bed.mn_status()["k_agreed"]
    assert primary_of(bed.ha_status(), HOA) == COA1
    # ikev2d listens on "::": initiating from CoA2 before the MN has it is refused, naming
    # the fix, and starts nothing
    with pytest.raises(ApiClientError) as err:
        bed.mn_api.initiate("mn1", local=COA2)
    assert err.value.status == 422 and err.value.problem["field"] == "query.local"
    assert f"{COA2} is not an address of this host (cannot assign requested address); " \
        f"configure it on an interface first, or use one of {COA1}" in str(err.value)
    assert bed.ike(bed.mn_api)["local-host"] == COA1
    move_and_check(bed, COA1, COA2)
    move_and_check(bed, COA2, COA1)
    bad_inputs(bed)


def bad_inputs(bed: Testbed) -> None:
    """Bad or refused BUs from the MN namespace; neither IKE SA moves, the binding stays
    unless the BU deregistered it. Dropped without an answer (RFC 4301 §5.2, RFC 4303
    §3.4): unprotected, replayed, under the SA of another HoA, under a deleted SA. Answered
    (protected, on the MN's SA, while its agent is stopped): 135, a deregistration, a
    registration far ahead; the restarted agent rekeys the SA, resynchronises (135) and
    moves."""
    base = snapshot(bed)
    last = bed.ha_status()["bindings"][0]["last_seq"]
    flags = BuFlags.A | BuFlags.H | BuFlags.K

    def unchanged() -> None:
        now = snapshot(bed)
        for side in ("mn", "ha"):
            assert now[side]["local-host"] == base[side]["local-host"]
            assert now[side]["remote-host"] == base[side]["remote-host"]
            assert spis(now[side]) == spis(base[side])
        for side in ("mn_children", "ha_children"):
            assert {n: c["outer"] for n, c in now[side].items()} == {
                n: c["outer"] for n, c in base[side].items()}

    def dropped(reason: str) -> int:
        return bed.ha_status().get("esp", {}).get("dropped", {}).get(reason, 0)

    # unprotected (require_esp): no answer, counted, nothing registered
    assert send_bu(bed.net, COA1, HOA, BindingUpdate(last + 1, flags, 150), timeout=1) is None
    bed.wait(lambda: dropped("unprotected") == 1, "the unprotected BU counted")
    assert primary_of(bed.ha_status(), HOA) == COA1
    # the MN agent stops; its BU/BA SA carries the test's BUs from its last number on
    bu = base["mn_children"]["mn1-bu"]
    bed.stop_mn_agent()
    esp_seq = max(sa["seq_out"] for sa in bed.mn_status()["esp"]["sas"]
                  if sa["spi_out"] == bu["spi-out"])
    crafted = CraftedBus(bed.net, bed.mn_api, bu["uniqueid"], esp_seq)
    # sequence number not greater than the last accepted: 135 with the last accepted one
    ba = crafted.send(COA1, crafted.datagram(HOA, BindingUpdate(last, flags, 150)))
    assert ba is not None and ba.status == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW
    assert ba.seq == last and primary_of(bed.ha_status(), HOA) == COA1
    # replayed: the same datagram again is dropped (the window), not answered again
    replay = crafted.datagram(HOA, BindingUpdate(last, flags, 150))
    assert crafted.send(COA1, replay) is not None
    assert exchange(bed.net, COA1, replay, timeout=1) is None
    bed.wait(lambda: dropped("replay") == 1, "the replay counted")
    # bob's HoA (and a HoA nobody has) under user@example.org's SA: its selectors name
    # 2001:db8:1::100 only (4877-05): dropped, no BA
    for hoa in (HOA_B, "2001:db8:1::999"):
        assert crafted.send(COA1, crafted.datagram(hoa, BindingUpdate(1, flags, 150)),
                            timeout=1) is None
    bed.wait(lambda: dropped("policy") == 2, "the BUs under the wrong SA counted")
    assert all(e["hoa"] != HOA_B for e in bed.ha_status()["bindings"])
    unchanged()
    # lifetime 0: a deregistration, accepted (0); the binding goes, the IKE SAs stay
    ba = crafted.send(COA1, crafted.datagram(HOA, BindingUpdate(last + 1, flags, 0)))
    assert ba is not None and ba.status == BaStatus.ACCEPTED and ba.lifetime == 0
    bed.wait(lambda: primary_of(bed.ha_status(), HOA) is None, "the binding removed")
    unchanged()
    # registered again (from the IKE SA's own address: nothing moves) with a number far
    # ahead of the MN agent's
    ba = crafted.send(COA1, crafted.datagram(HOA, BindingUpdate(last + 100, flags, 150)))
    assert ba is not None and ba.status == BaStatus.ACCEPTED and ba.key_mgmt
    bed.wait(lambda: primary_of(bed.ha_status(), HOA) == COA1, "the binding back")
    recent = bed.ha_status()["recent"][-1]
    assert recent["esp"] == bu["spi-out"] and recent["identity"] == ID_MN
    unchanged()
    # the MN agent restarts: the SA's keys were handed out before (to it and to this test),
    # so it rekeys the SA first (mobility/protection.py); its first BU gets a 135 and it
    # resynchronises (RFC 6275 §11.7.3); then the handover works as before
    bed.start_mn_agent()
    bed.wait(lambda: bed.mn_status().get("state") == "registered"
             and bed.mn_status().get("pid") == bed.mn_agent.proc.pid
             and bed.children(bed.mn_api)["mn1-bu"]["uniqueid"] != bu["uniqueid"]
             and len(bed.children(bed.mn_api)) == CHILDREN
             and len(bed.children(bed.ha_api)) == CHILDREN, "the restarted MN agent")
    rekeyed = bed.children(bed.mn_api)["mn1-bu"]
    assert bed.ha_status()["recent"][-1]["esp"] == rekeyed["spi-out"] != bu["spi-out"]
    assert any(r["status"] == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW and r["esp"] ==
               rekeyed["spi-out"] for r in bed.ha_status()["recent"])
    assert bed.mn_status()["seq"] > last + 100
    # the old SA is gone (rekeyed and deleted): a BU under it is dropped
    assert crafted.send(COA1, crafted.datagram(HOA, BindingUpdate(last + 200, flags, 150)),
                        timeout=1) is None
    move_and_check(bed, COA1, COA2)
    base = snapshot(bed)
    # the IKE SA of user@example.org deleted (the Delete reaches the MN too): its CHILD_SAs
    # went with it, so a BU under the BU/BA SA it had is dropped; nothing registered
    bed.stop_mn_agent()
    rekeyed = base["mn_children"]["mn1-bu"]
    esp_seq = max(sa["seq_out"] for sa in bed.mn_status()["esp"]["sas"]
                  if sa["spi_out"] == rekeyed["spi-out"])
    crafted = CraftedBus(bed.net, bed.mn_api, rekeyed["uniqueid"], esp_seq)
    bed.ha_api.terminate_ike(base["ha"]["uniqueid"], timeout=10)
    bed.wait(lambda: not bed.ha_api.list_ike_sas(peer_id=ID_MN), "the IKE SA deleted")
    last = bed.ha_status()["bindings"][0]["last_seq"]
    before = sum(bed.ha_status()["esp"]["dropped"].values())
    assert crafted.send(SPARE, crafted.datagram(HOA, BindingUpdate(last + 1, flags, 150)),
                        timeout=1) is None
    bed.wait(lambda: sum(bed.ha_status()["esp"]["dropped"].values()) == before + 1,
             "the BU under the deleted SA counted")
    assert primary_of(bed.ha_status(), HOA) == COA2
    assert not bed.ha_api.list_ike_sas(peer_id=ID_MN)
