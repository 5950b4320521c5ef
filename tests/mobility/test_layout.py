"""The RFC 4877 SA layout rendered as ikev2d TOML and read back by the real loader
(REQUIREMENTS 4877-01..04, 4877-07, 4877-08, 4877-13, 4877-16, 4877-18, 4877-19, LAG-01)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ikev2.config.loader import load_config_text
from ikev2.config.model import ChildConfig, Identity, Mode, StartAction
from ikev2.protocol.ts import IPPROTO_ICMPV6, IPPROTO_MH, TrafficSelector
from mobility.errors import LayoutError
from mobility.layout import (
    MobilityConfig,
    Role,
    authorization_map,
    connection_toml,
    home_agent_toml,
    sa_layout,
)

HOA, HA, HOME = "2001:db8:1::100", "2001:db8:1::1", "2001:db8:1::/64"
MN1 = MobilityConfig(name="mn1", ha_address=HA, identity="mn1@example.org",
                     ha_identity="ha.example.org", psk="testbed-psk-1", home_address=HOA)
MN2 = MobilityConfig(name="mn2", ha_address=HA, identity="mn2@example.org",
                     ha_identity="ha.example.org", psk="testbed-psk-2",
                     home_address="2001:db8:1::200", cn_prefixes=("2001:db8:c0::/48",))


def load(text: str, listen: str = "::"):  # type: ignore[no-untyped-def]
    return load_config_text(f'[daemon]\nlisten = ["{listen}"]\n\n' + text, "<layout>")


def sel(child: ChildConfig, side: str) -> list[TrafficSelector]:
    out = []
    for ts in getattr(child, side):
        assert not ts.dynamic and ts.selector is not None
        out.append(ts.selector)
    return out


def mh(addr: str, mh_type: int) -> TrafficSelector:
    return TrafficSelector.mh_type(addr, mh_type)


def icmp6(addr: str, icmp_type: int) -> TrafficSelector:
    return TrafficSelector.from_network(addr, IPPROTO_ICMPV6, icmp_type << 8,
                                        (icmp_type << 8) | 0xFF)


def test_mn_side_loads_with_the_rfc4877_selectors_and_modes() -> None:
    """4877-04: TSi = HoA/128 proto 135 port 5<<8 (BU), TSr = HA/128 port 6<<8 (BA), ESP
    transport (4877-01, 4877-18); MPS/MPA ICMPv6 146/147 transport; HoTI/HoT 1/3 tunnel
    to ::/0 (4877-02); payload tunnel last; IKE from %any = the CoA (4877-08)."""
    conn = load(connection_toml(MN1, Role.MN)).connection("mn1")
    assert conn.local_addrs == ("%any",) and conn.remote_addrs == (HA,)
    assert conn.mobike is False  # 4877-13: K bit, not MOBIKE
    assert conn.local.id == Identity.parse("mn1@example.org")  # 4877-16: a user identity
    assert conn.remote.id == Identity.parse("ha.example.org")
    bu, mpd, hoti, payload = conn.children
    assert [c.name for c in conn.children] == ["mn1-bu", "mn1-mpd", "mn1-hoti", "mn1-payload"]
    assert sel(bu, "local_ts") == [mh(HOA, 5)] and sel(bu, "remote_ts") == [mh(HA, 6)]
    assert sel(bu, "local_ts")[0].start_port == 0x0500
    assert sel(bu, "remote_ts")[0].start_port == 0x0600
    assert sel(bu, "local_ts")[0].ip_proto == IPPROTO_MH
    assert bu.mode is Mode.TRANSPORT
    assert sel(mpd, "local_ts") == [icmp6(HOA, 146)] and sel(mpd, "remote_ts") == [
        icmp6(HA, 147)]
    assert mpd.mode is Mode.TRANSPORT
    assert sel(hoti, "local_ts") == [mh(HOA, 1)] and sel(hoti, "remote_ts") == [mh("::/0", 3)]
    assert hoti.mode is Mode.TUNNEL
    assert sel(payload, "local_ts") == [TrafficSelector.from_network(HOA)]
    assert sel(payload, "remote_ts") == [TrafficSelector.from_network("::/0")]
    assert payload.mode is Mode.TUNNEL
    assert all(c.start_action is StartAction.INITIATE for c in conn.children)


def test_ha_side_mirrors_the_mn_side() -> None:
    """The HA's local/remote are the MN's swapped; it waits for the MN (responder), any
    CoA may connect (remote %any), the peer must be the MN's identity."""
    mn = load(connection_toml(MN1, Role.MN)).connection("mn1")
    ha = load(connection_toml(MN1, Role.HA), listen=HA).connection("mn1")
    assert ha.local_addrs == (HA,) and ha.remote_addrs == ("%any",)
    assert ha.remote.id == Identity.parse("mn1@example.org")
    assert ha.local.id == Identity.parse("ha.example.org")
    assert ha.mobike is False
    for mc, hc in zip(mn.children, ha.children, strict=True):
        assert sel(hc, "local_ts") == sel(mc, "remote_ts")
        assert sel(hc, "remote_ts") == sel(mc, "local_ts")
        assert hc.mode is mc.mode
        assert hc.start_action is StartAction.NONE


def test_cn_prefixes_and_home_prefix() -> None:
    """Optional CN prefixes narrow the payload tunnel; a home prefix (RFC 5026 style)
    replaces the HoA in every selector."""
    conn = load(connection_toml(MN2, Role.MN)).connection("mn2")
    assert sel(conn.children[-1], "remote_ts") == [
        TrafficSelector.from_network("2001:db8:c0::/48")]
    by_prefix = MobilityConfig(name="mr1", ha_address=HA, identity="mr1.example.org",
                               ha_identity="ha.example.org", psk="k", home_prefix=HOME)
    conn = load(connection_toml(by_prefix, Role.MN)).connection("mr1")
    assert sel(conn.children[0], "local_ts") == [mh(HOME, 5)]
    assert sel(conn.children[-1], "local_ts") == [TrafficSelector.from_network(HOME)]


def test_protocol_wide_mh_fallback() -> None:
    """4877-19: without MH-type selectors, one proto-135 pair (ports 0-65535) and no
    separate HoTI/HoT tunnel (it would shadow the BU SA)."""
    cfg = MobilityConfig(name="old", ha_address=HA, identity="mn@example.org",
                         ha_identity="ha", psk="k", home_address=HOA, mh_type_selectors=False)
    conn = load(connection_toml(cfg, Role.MN)).connection("old")
    assert [c.name for c in conn.children] == ["old-bu", "old-mpd", "old-payload"]
    (local,) = sel(conn.children[0], "local_ts")
    assert (local.ip_proto, local.start_port, local.end_port) == (IPPROTO_MH, 0, 65535)


def test_optional_children_and_proposals() -> None:
    cfg = MobilityConfig(name="min", ha_address=HA, identity="mn@example.org",
                         ha_identity="ha", psk="k", home_address=HOA, mps_mpa=False,
                         hoti_hot=False, payload=False, esp_proposals=("aes128gcm16",))
    conn = load(connection_toml(cfg, Role.MN)).connection("min")
    assert [c.name for c in conn.children] == ["min-bu"]
    assert len(conn.children[0].esp_proposals) == 1


def test_ha_file_for_several_mobile_nodes() -> None:
    """4877-07: one connection (so separate SAs and reqids) per MN; child names unique
    across the file as the loader requires."""
    cfg = load(home_agent_toml([MN1, MN2]), listen=HA)
    assert [c.name for c in cfg.connections] == ["mn1", "mn2"]
    assert cfg.connection("mn2").remote.id == Identity.parse("mn2@example.org")
    with pytest.raises(LayoutError, match="used twice"):
        home_agent_toml([MN1, MN1])


def test_names_needing_quotes_and_odd_psk() -> None:
    """Connection names may contain '.', which must be a quoted TOML key; any PSK text
    survives quoting."""
    cfg = MobilityConfig(name="mn.home", ha_address=HA, identity="mn@example.org",
                         ha_identity="ha", psk='a "quoted" \\ psk ✓', home_address=HOA)
    text = connection_toml(cfg, Role.MN)
    assert '[connections."mn.home"]' in text
    conn = load(text).connection("mn.home")
    assert conn.local.psk == 'a "quoted" \\ psk ✓'.encode()
    assert tomllib.loads(text)["connections"]["mn.home"]["children"]["mn.home-bu"]


def test_ike_over_ipv4_for_dsmipv6() -> None:
    """5555-05: IKE may run over IPv4 (IPv4 CoA ↔ HA IPv4) while the selectors stay IPv6."""
    cfg = MobilityConfig(name="ds", ha_address=HA, identity="mn@example.org",
                         ha_identity="ha", psk="k", home_address=HOA,
                         ike_ha_address="192.0.2.1")
    mn = load(connection_toml(cfg, Role.MN), listen="0.0.0.0").connection("ds")
    assert mn.remote_addrs == ("192.0.2.1",)
    assert sel(mn.children[0], "remote_ts") == [mh(HA, 6)]


def test_layout_rows_are_ordered_specific_first() -> None:
    keys = [c.key for c in sa_layout(MN1, Role.MN)]
    assert keys == ["bu", "mpd", "hoti", "payload"]


@pytest.mark.parametrize("kwargs", [
    {"home_address": None},
    {"home_prefix": HOME},
    {"home_address": "ff02::1"},
    {"home_address": "192.0.2.1"},
    {"ha_address": "not-an-address"},
    {"name": "bad name"},
    {"cn_prefixes": ("2001:db8::1/64",)},
    {"psk": "  "},
])
def test_bad_configs_refused(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"name": "mn", "ha_address": HA, "identity": "mn@example.org",
                               "ha_identity": "ha", "psk": "k", "home_address": HOA}
    base.update(kwargs)
    with pytest.raises(LayoutError):
        MobilityConfig(**base)  # type: ignore[arg-type]


def test_authorization_map_from_configs() -> None:
    """4877-16: the HA's PAD: identity → HoA (or home prefix)."""
    auth = authorization_map([MN1, MN2])
    assert auth.check("mn1@example.org", HOA) == Identity.parse("mn1@example.org")
    assert str(auth.owner_of("2001:db8:1::200")) == "mn2@example.org"


def test_docs_show_the_generated_toml() -> None:
    """docs/mobility.md quotes the MN and HA TOML for this exact config; keep them equal."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "mobility.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```toml\n")[1:]]
    example = MobilityConfig(name="mn1", ha_address=HA, identity="mn1@example.org",
                             ha_identity="ha.example.org", psk="testbed-only-psk",
                             home_address=HOA, cn_prefixes=("2001:db8:c0::/48",))
    assert blocks[:2] == [connection_toml(example, Role.MN), connection_toml(example, Role.HA)]


def test_4877_16_ha_config_assigns_the_identitys_hoa() -> None:
    """4877-16/17: the HA's connection for an identity assigns that identity's HoA (or
    home prefix) through the configuration payload; the MN asks only with request_home."""
    import dataclasses
    import ipaddress

    ha = load(connection_toml(MN1, Role.HA), listen=HA).connection("mn1")
    assert ha.remote.id == Identity.parse("mn1@example.org")
    assert ha.cp is not None and ha.cp.assign_address == ipaddress.IPv6Address(HOA)
    assert ha.cp.assign_home_prefix is None and not ha.cp.requests
    by_prefix = MobilityConfig(name="mr1", ha_address=HA, identity="mr1.example.org",
                               ha_identity="ha.example.org", psk="k", home_prefix=HOME,
                               request_home=True)
    ha = load(connection_toml(by_prefix, Role.HA), listen=HA).connection("mr1")
    assert ha.cp is not None and ha.cp.assign_home_prefix == ipaddress.IPv6Network(HOME)
    mn = load(connection_toml(by_prefix, Role.MN)).connection("mr1")
    assert mn.cp is not None and mn.cp.request_home_prefix and mn.cp.vips == ()
    assert load(connection_toml(MN1, Role.MN)).connection("mn1").cp is None
    asking = dataclasses.replace(MN1, request_home=True)
    mn = load(connection_toml(asking, Role.MN)).connection("mn1")
    assert mn.cp is not None and mn.cp.vips == (ipaddress.IPv6Address(HOA),)
