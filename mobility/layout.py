"""The RFC 4877 / draft-laganier-mext-dsmipv6-ipsec §4.2.2 SA layout for one MN ↔ HA pair,
as ikev2d `[connections.X]` TOML for either side (docs/config.md is the syntax reference).

Host-wide SPD entries, most specific first (REQUIREMENTS 4877-01..04, 4877-18, LAG-01):

| child    | MN local_ts          | MN remote_ts          | mode      | why                    |
|----------|----------------------|-----------------------|-----------|------------------------|
| bu       | HoA[mh/5] (BU)       | HA[mh/6] (BA)         | transport | 4877-01, MUST          |
| mpd      | HoA[icmpv6/146] MPS  | HA[icmpv6/147] MPA    | transport | 4877-02, SHOULD        |
| hoti     | HoA[mh/1] (HoTI)     | ::/0[mh/3] (HoT)      | tunnel    | 4877-02, SHOULD        |
| payload  | HoA                  | ::/0 or CN prefixes   | tunnel    | optional, last         |

The HA mirrors every row (local and remote swapped). The MH type sits in the high octet of
the TS port (ikev2/protocol/ts.py, `[mh/N]` in the config), so BU/BA ride a transport SA
bound to the HoA (the core binds a transport SA to a single-host selector: ikev2/core/
child.py `_bound`) while HoTI/HoT and payload ride tunnel SAs CoA ↔ HA that move with the
CoA. The kernel backend orders policies by selector specificity (X-16), so the MH-type
entries win over the payload tunnel (4877-03).

IKE runs from the MN's current CoA to the HA (`local_addrs = ["%any"]` on the MN,
`remote_addrs = ["%any"]` on the HA: 4877-08), MN identity = a user identity, not an
address (4877-16), and MOBIKE is off: moves go through the K bit (4877-13: one mechanism
per SA).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from ikev2.config.model import Mode
from mobility.authorization import AuthorizationMap, IdentityLike
from mobility.errors import LayoutError
from mobility.registry import ICMPV6_MPA, ICMPV6_MPS, MhType

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,55}$")  # room for the "-payload" suffix
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class Role(StrEnum):
    MN = "mn"
    HA = "ha"


def _v6(text: str, what: str) -> ipaddress.IPv6Address:
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise LayoutError(f"{what} {text!r} is not an IPv6 address") from None


def _v6net(text: str, what: str) -> ipaddress.IPv6Network:
    try:
        return ipaddress.IPv6Network(text, strict=True)
    except ValueError as exc:
        raise LayoutError(f"{what} {text!r} is not an IPv6 prefix: {exc}") from None


@dataclass(frozen=True, slots=True)
class MobilityConfig:
    """The short per-MN description the layout is derived from.

    Exactly one of `home_address` (a HoA) and `home_prefix` (RFC 5026 style: the selectors
    cover the prefix, the HoA is checked per BU by the authorisation map). `ike_ha_address`
    is where IKE goes when it differs from the HA's IPv6 address in the selectors (DSMIPv6:
    IKE over IPv4, 5555-05). `mh_type_selectors=False` is the RFC 4877 §5 fallback
    (4877-19): one proto-135 selector pair for all MH, no separate HoTI/HoT tunnel.
    """

    name: str
    ha_address: str
    identity: str
    ha_identity: str
    psk: str
    home_address: str | None = None
    home_prefix: str | None = None
    cn_prefixes: tuple[str, ...] = ()
    ike_ha_address: str | None = None
    mps_mpa: bool = True
    hoti_hot: bool = True
    payload: bool = True
    mh_type_selectors: bool = True
    esp_proposals: tuple[str, ...] = ()
    dpd_delay: str | None = None  # e.g. "30s": liveness checks on the IKE SA (testbeds)
    # the MN asks for its HoA / home prefix in IKE_AUTH's configuration payload (RFC 5026
    # §4.4, 4877-17); the HA side always assigns them to this identity when asked
    request_home: bool = False

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise LayoutError(f"connection name {self.name!r}: letters, digits, '_', '.', "
                              "'-', at most 56")
        _v6(self.ha_address, "ha_address")
        if (self.home_address is None) == (self.home_prefix is None):
            raise LayoutError(f"{self.name}: give exactly one of home_address and home_prefix")
        if self.home_address is not None:
            hoa = _v6(self.home_address, "home_address")
            if hoa.is_multicast or hoa.is_link_local or hoa.is_unspecified:
                raise LayoutError(f"{self.name}: {hoa} cannot be a home address")
        if self.home_prefix is not None:
            _v6net(self.home_prefix, "home_prefix")
        for p in self.cn_prefixes:
            _v6net(p, "cn_prefixes item")
        if self.ike_ha_address is not None:
            try:
                ipaddress.ip_address(self.ike_ha_address)
            except ValueError:
                raise LayoutError(f"ike_ha_address {self.ike_ha_address!r} is not an "
                                  "address") from None
        for field_name in ("identity", "ha_identity", "psk"):
            if not getattr(self, field_name).strip():
                raise LayoutError(f"{self.name}: {field_name} is empty")

    @property
    def home(self) -> str:
        """The home side of every selector: the HoA (/128 host) or the home prefix."""
        if self.home_address is not None:
            return str(ipaddress.IPv6Address(self.home_address))
        return str(ipaddress.IPv6Network(self.home_prefix))

    @property
    def ha(self) -> str:
        return str(ipaddress.IPv6Address(self.ha_address))


@dataclass(frozen=True, slots=True)
class ChildLayout:
    """One CHILD_SA of the layout, for one side."""

    key: str
    name: str
    local_ts: tuple[str, ...]
    remote_ts: tuple[str, ...]
    mode: Mode
    purpose: str


def sa_layout(cfg: MobilityConfig, role: Role) -> tuple[ChildLayout, ...]:
    """The CHILD_SAs of `cfg` for one side, most specific first (payload tunnel last)."""
    home, ha = cfg.home, cfg.ha
    rows: list[tuple[str, tuple[str, ...], tuple[str, ...], Mode, str]] = []
    if cfg.mh_type_selectors:
        rows.append(("bu", (f"{home}[mh/{MhType.BU}]",), (f"{ha}[mh/{MhType.BA}]",),
                     Mode.TRANSPORT, "Binding Update / Acknowledgement (RFC 4877 §4.1)"))
    else:
        rows.append(("bu", (f"{home}[mh]",), (f"{ha}[mh]",), Mode.TRANSPORT,
                     "all Mobility Header traffic MN<->HA (RFC 4877 §5 fallback)"))
    if cfg.mps_mpa:
        rows.append(("mpd", (f"{home}[icmpv6/{ICMPV6_MPS}]",), (f"{ha}[icmpv6/{ICMPV6_MPA}]",),
                     Mode.TRANSPORT, "Mobile Prefix Solicitation / Advertisement"))
    if cfg.hoti_hot and cfg.mh_type_selectors:
        rows.append(("hoti", (f"{home}[mh/{MhType.HOTI}]",), (f"::/0[mh/{MhType.HOT}]",),
                     Mode.TUNNEL, "Home Test Init / Home Test via the HA"))
    if cfg.payload:
        peers = tuple(str(ipaddress.IPv6Network(p)) for p in cfg.cn_prefixes) or ("::/0",)
        rows.append(("payload", (home,), peers, Mode.TUNNEL,
                     "payload reverse tunnel HoA <-> correspondents"))
    out = []
    for key, mn_local, mn_remote, mode, purpose in rows:
        local, remote = (mn_local, mn_remote) if role is Role.MN else (mn_remote, mn_local)
        out.append(ChildLayout(key, f"{cfg.name}-{key}", local, remote, mode, purpose))
    return tuple(out)


def _q(text: str) -> str:
    """A TOML basic string (a JSON string is one when non-ASCII is left as it is)."""
    return json.dumps(text, ensure_ascii=False)


def _key(text: str) -> str:
    return text if _BARE_KEY.match(text) else _q(text)


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def connection_toml(cfg: MobilityConfig, role: Role) -> str:
    """`[connections.<name>]` with its local/remote/children tables for one side."""
    conn = f"connections.{_key(cfg.name)}"
    if role is Role.MN:
        local_addrs, remote_addrs = ["%any"], [cfg.ike_ha_address or cfg.ha]
        local_id, remote_id = cfg.identity, cfg.ha_identity
        comment = "# mobile node: IKE from the current care-of address (RFC 4877 §4.4)"
    else:
        local_addrs, remote_addrs = [cfg.ike_ha_address or cfg.ha], ["%any"]
        local_id, remote_id = cfg.ha_identity, cfg.identity
        comment = f"# home agent side of {cfg.identity} (home {cfg.home})"
    lines = [
        comment,
        f"[{conn}]",
        f"local_addrs = {_list(local_addrs)}",
        f"remote_addrs = {_list(remote_addrs)}",
        f"psk = {_q(cfg.psk)}",
        "mobike = false  # moves use the K bit (RFC 4877 §4.4), not MOBIKE",
        *([f"dpd_delay = {_q(cfg.dpd_delay)}"] if cfg.dpd_delay else []),
        *_cp_lines(cfg, role),
        "",
        f"[{conn}.local]",
        f"id = {_q(local_id)}",
        "",
        f"[{conn}.remote]",
        f"id = {_q(remote_id)}",
    ]
    for child in sa_layout(cfg, role):
        lines += [
            "",
            f"# {child.purpose}",
            f"[{conn}.children.{_key(child.name)}]",
            f"local_ts = {_list(child.local_ts)}",
            f"remote_ts = {_list(child.remote_ts)}",
            f"mode = {_q(child.mode.value)}",
        ]
        if cfg.esp_proposals:
            lines.append(f"esp_proposals = {_list(cfg.esp_proposals)}")
        if role is Role.MN:
            lines.append('start_action = "initiate"')
    return "\n".join(lines) + "\n"


def _cp_lines(cfg: MobilityConfig, role: Role) -> list[str]:
    """The configuration payload keys (RFC 7296 §2.19, RFC 5026 §4.4; 4877-17/27): the HA
    assigns this identity's HoA or home prefix (its authorisation, 4877-16) when the MN
    asks; the MN asks (with its HoA as the hint) when `request_home` is set."""
    if role is Role.HA:
        if cfg.home_address is not None:
            return [f"assign_address = {_q(cfg.home)}  # CP: this identity's HoA, if asked"]
        return [f"assign_home_prefix = {_q(cfg.home)}  # CP: this identity's prefix, if asked"]
    if not cfg.request_home:
        return []
    if cfg.home_address is not None:
        return [f"vips = {_list([cfg.home])}  # CP: ask the HA for the HoA (RFC 5026 §4.4)"]
    return ["request_home_prefix = true  # CP: ask the HA for the home prefix (RFC 5026 §4.4)"]


def home_agent_toml(cfgs: Iterable[MobilityConfig]) -> str:
    """The HA's connections for several MNs (one connection, hence separate SAs and
    reqids, per MN: 4877-07)."""
    cfgs = tuple(cfgs)
    names = [c.name for c in cfgs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LayoutError(f"connection names used twice: {', '.join(dupes)}")
    return "\n".join(connection_toml(c, Role.HA) for c in cfgs)


def authorization_map(cfgs: Iterable[MobilityConfig]) -> AuthorizationMap:
    """The HA's identity → HoA / home prefix map for these MNs (4877-16)."""
    entries: dict[IdentityLike, list[str]] = {}
    for cfg in cfgs:
        entries.setdefault(cfg.identity, []).append(
            cfg.home if cfg.home_address is None else f"{cfg.home}/128"
        )
    return AuthorizationMap(entries)
