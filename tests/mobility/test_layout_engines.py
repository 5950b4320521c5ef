"""The RFC 4877 SA layout (mobility/layout.py) negotiated by two ikev2d engines in memory
(tests/core/harness.py): which CHILD_SAs come up with which selectors and modes, and what
a K-bit move (`Engine.update_addresses(mode="kbit")` on both ends, as the agents ask
through the REST API) does to them (REQUIREMENTS 4877-01/02/04/05/06/13/18)."""

from __future__ import annotations

import pytest

from ikev2.config.loader import load_config_text
from ikev2.config.model import ConnectionConfig
from mobility.layout import MobilityConfig, Role, connection_toml
from tests.core.harness import A_ADDR, B_ADDR, Pair

HOA = "2001:db8:1::100"
COA2 = "2001:db8:b::10"


def layout_pair(**kw: object) -> tuple[Pair, ConnectionConfig, ConnectionConfig]:
    """MN on A_ADDR (its CoA), HA on B_ADDR."""
    cfg = MobilityConfig(name="mn1", ha_address=B_ADDR, identity="user@example.org",
                         ha_identity="ha.example.org", psk="testbed-only-psk",
                         home_address=HOA, **kw)  # type: ignore[arg-type]
    mn = load_config_text(connection_toml(cfg, Role.MN).replace('"%any"', f'"{A_ADDR}"'))
    ha = load_config_text(connection_toml(cfg, Role.HA).replace('"%any"', f'"{A_ADDR}"'))
    pair = Pair()
    pair.connect(mn.connections[0], ha.connections[0])
    pair.advance(1)
    return pair, mn.connections[0], ha.connections[0]


def children(pair: Pair, side: str) -> dict[str, tuple[str, str, str, tuple[str, ...],
                                                         tuple[str, ...]]]:
    sas = pair.node(side).engine.ike_sas()
    assert len(sas) == 1
    return {c.name: (c.mode, c.local, c.remote, c.local_ts, c.remote_ts)
            for c in sas[0].children}


def test_layout_without_payload_and_a_k_bit_move() -> None:
    pair, _, _ = layout_pair(payload=False)
    mn, ha = children(pair, "a"), children(pair, "b")
    assert mn == {
        "mn1-bu": ("transport", HOA, B_ADDR, (f"{HOA}/128[mh/5]",), (f"{B_ADDR}/128[mh/6]",)),
        "mn1-mpd": ("transport", HOA, B_ADDR, (f"{HOA}/128[58/37376-37631]",),
                    (f"{B_ADDR}/128[58/37632-37887]",)),
        "mn1-hoti": ("tunnel", A_ADDR, B_ADDR, (f"{HOA}/128[mh/1]",), ("::/0[mh/3]",)),
    }
    assert {n: (m, lo, re) for n, (m, lo, re, _, _) in ha.items()} == {
        "mn1-bu": ("transport", B_ADDR, HOA), "mn1-mpd": ("transport", B_ADDR, HOA),
        "mn1-hoti": ("tunnel", B_ADDR, A_ADDR)}
    spis = {side: [(c.spi_in, c.spi_out) for c in pair.node(side).engine.ike_sas()[0].children]
            for side in "ab"}
    # K bit: the HA moves its peer, the MN its local address; nothing is sent (4877-13)
    sent = len(pair.wire)
    ha_id = pair.b.engine.ike_sas()[0].ike_id
    mn_id = pair.a.engine.ike_sas()[0].ike_id
    pair.b.engine.update_addresses(ha_id, pair.now, remote=COA2, mode="kbit")
    pair.a.engine.update_addresses(mn_id, pair.now, local=COA2, mode="kbit")
    pair.deliver_all()
    assert len(pair.wire) == sent
    mn, ha = children(pair, "a"), children(pair, "b")
    assert mn["mn1-hoti"][1:3] == (COA2, B_ADDR) and ha["mn1-hoti"][1:3] == (B_ADDR, COA2)
    for name in ("mn1-bu", "mn1-mpd"):  # bound to the HoA: they stay (4877-05)
        assert mn[name][1:3] == (HOA, B_ADDR) and ha[name][1:3] == (B_ADDR, HOA)
    assert {side: [(c.spi_in, c.spi_out) for c in
                   pair.node(side).engine.ike_sas()[0].children] for side in "ab"} == spis


@pytest.mark.parametrize("cn", [(), ("2001:db8:cc::/48",)], ids=["any", "cn-prefix"])
def test_layout_payload_tunnel(cn: tuple[str, ...]) -> None:
    pair, _, _ = layout_pair(cn_prefixes=cn)
    remote = cn[0] if cn else "::/0"
    for side, want in (("a", ((f"{HOA}/128",), (remote,))),
                       ("b", ((remote,), (f"{HOA}/128",)))):
        kids = children(pair, side)
        assert "mn1-payload" in kids, sorted(kids)
        assert kids["mn1-payload"][0] == "tunnel"
        assert kids["mn1-payload"][3:] == want


def test_4877_17_mn_learns_its_hoa_from_the_ha() -> None:
    """4877-17 / 7296-90: with request_home the MN asks in IKE_AUTH's CP; the HA's layout
    connection assigns the identity's HoA; both record it on the IKE SA."""
    pair, _, _ = layout_pair(payload=False, request_home=True)
    (mn_sa,), (ha_sa,) = pair.a.engine.ike_sas(), pair.b.engine.ike_sas()
    assert mn_sa.local_vips == (HOA,) and ha_sa.remote_vips == (HOA,)
    assert set(children(pair, "a")) == {"mn1-bu", "mn1-mpd", "mn1-hoti"}
