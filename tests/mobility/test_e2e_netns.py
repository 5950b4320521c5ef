"""End to end: a K-bit handover (RFC 4877 §4.4) between two ikev2d daemons driven by the
`ikev2-mip6` agents, in network namespaces (tests/mobility/testbed.py has the topology).

The MN (IDi user@example.org, HoA 2001:db8:1::100) starts on CoA1 (link A); moving means
removing CoA1 and adding CoA2 on link B. The MN agent sees it over rtnetlink, sends a BU
with K from CoA2 (MH over UDP), the HA agent validates it, moves its IKE SA through its
ikev2d's REST API (mode kbit) and answers with K; the MN agent then moves its own IKE SA
(REQUIREMENTS 4877-06/08/11/12/13/15/25). Checked after each move, through both REST APIs:
the HA's binding cache (its status file, as `ikev2ctl bindings` prints it) holds the new
CoA; both IKE SAs show the new endpoint with the same SPIs and unique ids; the tunnel
CHILD_SAs (HoTI/HoT, payload) have the new outer address with the same SPIs; the HoA-bound
transport SAs (BU/BA, MPS/MPA) are unchanged (the CHILD_SAs' outer addresses are the API's
local-host/remote-host); a CHILD_SA rekey (CREATE_CHILD_SA, then an INFORMATIONAL deleting
the old SA) and a liveness check from each side (`POST /ike-sas/{id}/liveness`, an empty
INFORMATIONAL answered) work over the new path, with DPD (dpd_delay 1 s) running behind.
Then back to CoA1, then the bad inputs. Memory kernel: no ESP on this host; the kernel
CHILD_SA moves are in tests/daemon/test_mobike_netns.py.
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
    MipNet,
    Testbed,
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


def recorded(bed: Testbed, hoa: str, status: int, source: str) -> dict[str, Any]:
    """The HA's record of the last BU (its status file is rewritten just after the BA)."""
    def last() -> dict[str, Any] | None:
        r = bed.ha_status()["recent"][-1]
        return r if (r["hoa"], r["status"], r["source"]) == (hoa, status, source) else None

    return bed.wait(last, f"the HA's record of the BU for {hoa} from {source}")  # type: ignore


def bad_inputs(bed: Testbed) -> None:
    """Refused or harmless BUs (crafted, from the MN namespace): the right BA status and
    neither IKE SA moves, the binding stays unless the BU deregistered it."""
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

    # sequence number not greater than the last accepted: 135 with the last accepted one
    ba = send_bu(bed.net, COA1, HOA, BindingUpdate(last, flags, 150))
    assert ba.status == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW and ba.seq == last
    assert primary_of(bed.ha_status(), HOA) == COA1
    unchanged()
    # a HoA in the home prefix that no MN has: 133
    ba = send_bu(bed.net, COA1, "2001:db8:1::999", BindingUpdate(1, flags, 150))
    assert ba.status == BaStatus.NOT_HOME_AGENT_FOR_THIS_MN
    # bob's HoA from the address of user@example.org's IKE SA: not authorised, 129
    ba = send_bu(bed.net, COA1, HOA_B, BindingUpdate(1, flags, 150))
    assert ba.status == BaStatus.ADMINISTRATIVELY_PROHIBITED and not ba.key_mgmt
    assert "user@example.org may use" in recorded(bed, HOA_B, ba.status, COA1)["reason"]
    # K bit for bob, who has no IKE SA at all (from an address without one): 129
    ba = send_bu(bed.net, SPARE, HOA_B, BindingUpdate(1, flags, 150))
    assert ba.status == BaStatus.ADMINISTRATIVELY_PROHIBITED and not ba.key_mgmt
    assert "no IKE SA of bob@example.org" in recorded(bed, HOA_B, ba.status, SPARE)["reason"]
    assert all(e["hoa"] != HOA_B for e in bed.ha_status()["bindings"])
    unchanged()
    # lifetime 0: a deregistration, accepted (0); the binding goes, the IKE SAs stay
    ba = send_bu(bed.net, COA1, HOA, BindingUpdate(last + 1, flags, 0))
    assert ba.status == BaStatus.ACCEPTED and ba.lifetime == 0
    bed.wait(lambda: primary_of(bed.ha_status(), HOA) is None, "the binding removed")
    unchanged()
    # registered again (from the IKE SA's own address: nothing moves) with a number far
    # ahead of the MN agent's; the agent's next BU gets a 135, resynchronises (RFC 6275
    # §11.7.3) and the handover works as before
    ba = send_bu(bed.net, COA1, HOA, BindingUpdate(last + 100, flags, 150))
    assert ba.status == BaStatus.ACCEPTED and ba.key_mgmt
    bed.wait(lambda: primary_of(bed.ha_status(), HOA) == COA1, "the binding back")
    unchanged()
    move_and_check(bed, COA1, COA2)
    assert bed.mn_status()["seq"] > last + 100
    assert any(r["status"] == BaStatus.SEQUENCE_NUMBER_OUT_OF_WINDOW and r["source"] == COA2
               for r in bed.ha_status()["recent"])
    base = snapshot(bed)
    # K-bit BU while the IKE SA of user@example.org does not exist (deleted here, the
    # Delete reaches the MN too): nobody authenticates it, 129, nothing registered
    bed.ha_api.terminate_ike(base["ha"]["uniqueid"], timeout=10)
    bed.wait(lambda: not bed.ha_api.list_ike_sas(peer_id=ID_MN), "the IKE SA deleted")
    last = bed.ha_status()["bindings"][0]["last_seq"]
    ba = send_bu(bed.net, SPARE, HOA, BindingUpdate(last + 1, flags, 150))
    assert ba.status == BaStatus.ADMINISTRATIVELY_PROHIBITED and not ba.key_mgmt
    why = recorded(bed, HOA, ba.status, SPARE)["reason"]
    assert "no IKE SA of user@example.org holds SAs" in why
    assert primary_of(bed.ha_status(), HOA) == COA2
    assert not bed.ha_api.list_ike_sas(peer_id=ID_MN)
