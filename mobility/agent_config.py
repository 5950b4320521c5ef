"""The mobility agents' configuration file (TOML): one file per role.

A mobile node (`[mobile_node]`) or a home agent (`[home_agent]`), an `[api]` table saying
where the local ikev2d's REST API is, and an optional `[layout]` table from which
`ikev2-mip6 layout` renders the matching ikev2d connections (mobility/layout.py).
docs/mobility.md "Agents" has a commented example of each; the keys:

    [mobile_node]
    connection = "mn1"                 # the ikev2d connection of this MN (layout's name)
    home_address = "2001:db8:1::100"   # the HoA (required: it is the BU's inner source)
    home_prefix = "2001:db8:1::/64"    # optional: selectors cover the prefix (layout)
    ha_address = "2001:db8:1::1"       # the HA's IPv6 address (inner destination of BUs)
    ha_endpoint = "2001:db8:1::1"      # where the UDP goes (default ha_address; IPv4 ok)
    port = 4191                        # MH-over-UDP port of the HA
    identity = "mn1@example.org"       # IDi (4877-16), for the layout and the logs
    k_bit = true                       # set K in BUs (RFC 4877 §4.4)
    prefer_mobike = false              # MOBIKE instead of K when the SA negotiated it
    ike_move = "after-ba"              # or "before-bu" (see mobility/mn_agent.py)
    lifetime = 600                     # seconds asked for in each BU
    refresh = 0.8                      # re-register after this part of the granted time
    prefer_interfaces = ["wlan0"]      # CoA preference, best first (others after)
    prefer_prefixes = ["2001:db8:b::/64"]
    exclude_interfaces = []            # never a CoA from these
    ike_wait = 30                      # seconds to wait for the IKE SA before the 1st BU
    protect = true                     # ESP on BUs with the BU/BA SA once it exists
    status_file = "/run/ikev2d/mip6-mn.json"
    events_file = ""                   # JSON lines with monotonic times (benches)
    [mobile_node.retransmit]           # RFC 6275 §11.8 / §12 / §13
    initial = 1.0
    maximum = 32.0
    first_registration = 1.5

    [home_agent]
    address = "2001:db8:1::1"          # the HA's IPv6 address (inner dst of BUs)
    listen = "2001:db8:1::1"           # UDP bind address (default: address; BAs must
                                       # come from where the MN sent its BU)
    port = 4191
    home_prefixes = ["2001:db8:1::/64"]
    max_lifetime = 3600
    supports_k = true
    drop_without_k = true              # RFC 6275 §10.3.1: drop IKE SAs to the old CoA
    require_esp = true                 # drop BUs without ESP (the BU/BA SA, 4877-01)
    allow_loopback_coa = false
    allow_ipv4_coa = true
    status_file = "/run/ikev2d/bindings.json"
    events_file = ""
    [[home_agent.mobile_nodes]]
    name = "mn1"                       # its ikev2d connection on the HA (layout)
    identity = "mn1@example.org"
    home_address = "2001:db8:1::100"   # or home_prefix = "2001:db8:1:1::/64"
    psk = "..."                        # optional, for the layout (else [layout].psk)

    [api]                              # one of: socket | url (+ token/token_file) |
    socket = "/run/ikev2d/api.sock"    #         daemon_config (its [api] section)
    timeout = 10

    [layout]                           # only for `ikev2-mip6 layout`
    ha_identity = "ha.example.org"
    psk = "testbed-only-psk"
    cn_prefixes = []
    dpd_delay = "30s"
    payload = true                     # the payload tunnel child
    request_home = false               # MN: ask the HA for the HoA / home prefix (CP)
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobility.authorization import AuthorizationMap, identity_key
from mobility.binding_cache import HomeAgentPolicy
from mobility.errors import MobilityError
from mobility.layout import MobilityConfig
from mobility.transport import DSMIPV6_UDP_PORT, RetransmitPolicy

DEFAULT_MN_STATUS = "/run/ikev2d/mip6-mn.json"
DEFAULT_HA_STATUS = "/run/ikev2d/bindings.json"
IKE_MOVES = ("after-ba", "before-bu")


class AgentConfigError(MobilityError, ValueError):
    """The agent config file is unusable; the message names the key."""


# --- small typed readers ---------------------------------------------------------------------
class _Table:
    """A TOML table with typed getters that name the key in their errors and refuse keys
    nobody reads (a typo must not be silently ignored)."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        if not isinstance(data, Mapping):
            raise AgentConfigError(f"{where}: expected a table")
        self.data = dict(data)
        self.where = where
        self.used: set[str] = set()

    def _get(self, key: str, default: Any, kinds: tuple[type, ...], what: str) -> Any:
        self.used.add(key)
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) and bool not in kinds:
            raise AgentConfigError(f"{self.where}.{key}: expected {what}, got {value!r}")
        if not isinstance(value, kinds):
            raise AgentConfigError(f"{self.where}.{key}: expected {what}, got {value!r}")
        return value

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> Any:
        value = self._get(key, default, (str,), "a string")
        if required and not value:
            raise AgentConfigError(f"{self.where}.{key} is required")
        return value

    def flag(self, key: str, default: bool) -> bool:
        return bool(self._get(key, default, (bool,), "true or false"))

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = float(self._get(key, default, (int, float), "a number"))
        if value < minimum:
            raise AgentConfigError(f"{self.where}.{key}: {value} is below {minimum}")
        return value

    def integer(self, key: str, default: int, lo: int, hi: int) -> int:
        value = self._get(key, default, (int,), "an integer")
        if not lo <= value <= hi:
            raise AgentConfigError(f"{self.where}.{key}: {value} is not in {lo}..{hi}")
        return int(value)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key, [], (list, str), "a list of strings")
        if isinstance(value, str):
            value = [value]
        if not all(isinstance(v, str) for v in value):
            raise AgentConfigError(f"{self.where}.{key}: expected a list of strings")
        return tuple(value)

    def table(self, key: str) -> _Table:
        self.used.add(key)
        return _Table(self.data.get(key, {}), f"{self.where}.{key}")

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise AgentConfigError(f"{self.where}: unknown key(s) {', '.join(unknown)}")


def _ip(text: str, where: str, *, v6: bool = False) -> str:
    try:
        addr = ipaddress.IPv6Address(text) if v6 else ipaddress.ip_address(text)
    except ValueError:
        raise AgentConfigError(f"{where}: {text!r} is not an "
                               f"{'IPv6 ' if v6 else ''}address") from None
    return str(addr)


def _net(text: str, where: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=True))
    except ValueError as exc:
        raise AgentConfigError(f"{where}: {text!r}: {exc}") from None


# --- sections --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ApiSettings:
    """Where the local ikev2d's REST API is (docs/api.md)."""

    socket: str | None = None
    url: str | None = None
    token: str | None = None
    token_file: str | None = None
    daemon_config: str | None = None
    timeout: float = 10.0

    def client(self) -> Any:
        """An api.client.AsyncApiClient for these settings."""
        from api.client import AsyncApiClient

        socket, url, token = self.socket, self.url, self.token
        if self.daemon_config:
            from api.auth import read_token
            from ikev2.config.loader import load_config

            api = load_config(self.daemon_config).api
            if not api.enabled:
                raise AgentConfigError(f"{self.daemon_config}: the daemon has no [api]")
            if api.unix_socket:
                socket = api.unix_socket
            else:
                host = api.listen[0] if api.listen else "127.0.0.1"
                host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
                url = f"http://[{host}]:{api.port}" if ":" in host else \
                    f"http://{host}:{api.port}"
                token = read_token(api.token_file)
        elif self.token_file and not token:
            from api.auth import read_token

            token = read_token(self.token_file)
        return AsyncApiClient(url, token=token, unix_socket=socket, timeout=self.timeout)


@dataclass(frozen=True, slots=True)
class LayoutSettings:
    ha_identity: str | None = None
    psk: str | None = None
    cn_prefixes: tuple[str, ...] = ()
    esp_proposals: tuple[str, ...] = ()
    dpd_delay: str | None = None
    payload: bool = True
    request_home: bool = False  # the MN asks for its HoA / prefix in IKE_AUTH (CP, RFC 5026)


@dataclass(frozen=True, slots=True)
class MnAgentConfig:
    connection: str
    home_address: str
    ha_address: str
    ha_endpoint: str
    identity: str
    port: int = DSMIPV6_UDP_PORT
    home_prefix: str | None = None
    k_bit: bool = True
    prefer_mobike: bool = False
    ike_move: str = "after-ba"
    lifetime: float = 600.0
    refresh: float = 0.8
    prefer_interfaces: tuple[str, ...] = ()
    prefer_prefixes: tuple[str, ...] = ()
    exclude_interfaces: tuple[str, ...] = ()
    ike_wait: float = 30.0
    protect: bool = True  # ESP with the BU/BA SA (mobility/protection.py) when it exists
    status_file: str | None = DEFAULT_MN_STATUS
    events_file: str | None = None
    retransmit: RetransmitPolicy = field(default_factory=RetransmitPolicy)
    api: ApiSettings = field(default_factory=ApiSettings)
    layout: LayoutSettings = field(default_factory=LayoutSettings)

    role = "mn"

    def mobility_config(self) -> MobilityConfig:
        """The layout input (needs [layout] ha_identity and psk)."""
        lay = self.layout
        if not lay.ha_identity or not lay.psk:
            raise AgentConfigError("layout.ha_identity and layout.psk are needed for the "
                                   "ikev2d connection")
        return MobilityConfig(
            name=self.connection, ha_address=self.ha_address, identity=self.identity,
            ha_identity=lay.ha_identity, psk=lay.psk,
            home_address=None if self.home_prefix else self.home_address,
            home_prefix=self.home_prefix, cn_prefixes=lay.cn_prefixes,
            ike_ha_address=self.ha_endpoint if self.ha_endpoint != self.ha_address else None,
            esp_proposals=lay.esp_proposals, dpd_delay=lay.dpd_delay, payload=lay.payload,
            request_home=lay.request_home,
        )


@dataclass(frozen=True, slots=True)
class MobileNodeEntry:
    """One MN the home agent serves."""

    name: str
    identity: str
    home_address: str | None = None
    home_prefix: str | None = None
    psk: str | None = None

    @property
    def grant(self) -> str:
        return self.home_prefix if self.home_prefix else f"{self.home_address}/128"


@dataclass(frozen=True, slots=True)
class HaAgentConfig:
    address: str
    home_prefixes: tuple[str, ...]
    mobile_nodes: tuple[MobileNodeEntry, ...]
    listen: str = ""  # "": `address`
    port: int = DSMIPV6_UDP_PORT
    max_lifetime: float = 3600.0
    supports_k: bool = True
    drop_without_k: bool = True
    allow_loopback_coa: bool = False
    allow_ipv4_coa: bool = True
    require_esp: bool = True  # unprotected BUs are dropped (4877-01; RFC 4301 §5.2)
    ike_address: str | None = None  # where IKE listens when not `address` (DSMIPv6)
    status_file: str | None = DEFAULT_HA_STATUS
    events_file: str | None = None
    api: ApiSettings = field(default_factory=ApiSettings)
    layout: LayoutSettings = field(default_factory=LayoutSettings)

    role = "ha"

    def policy(self) -> HomeAgentPolicy:
        return HomeAgentPolicy(
            tuple(ipaddress.IPv6Network(p) for p in self.home_prefixes),
            max_lifetime=self.max_lifetime, supports_k=self.supports_k,
            allow_loopback_coa=self.allow_loopback_coa, allow_ipv4_coa=self.allow_ipv4_coa,
        )

    def authorization(self) -> AuthorizationMap:
        entries: dict[str, list[str]] = {}
        for mn in self.mobile_nodes:
            entries.setdefault(mn.identity, []).append(mn.grant)
        return AuthorizationMap(entries)

    def mobility_configs(self) -> tuple[MobilityConfig, ...]:
        lay = self.layout
        if not lay.ha_identity:
            raise AgentConfigError("layout.ha_identity is needed for the ikev2d connections")
        out = []
        for mn in self.mobile_nodes:
            psk = mn.psk or lay.psk
            if not psk:
                raise AgentConfigError(f"mobile node {mn.name}: no psk (give it there or in "
                                       "[layout])")
            out.append(MobilityConfig(
                name=mn.name, ha_address=self.address, identity=mn.identity,
                ha_identity=lay.ha_identity, psk=psk, home_address=mn.home_address,
                home_prefix=mn.home_prefix, cn_prefixes=lay.cn_prefixes,
                ike_ha_address=self.ike_address, esp_proposals=lay.esp_proposals,
                dpd_delay=lay.dpd_delay, payload=lay.payload,
            ))
        return tuple(out)


AgentConfig = MnAgentConfig | HaAgentConfig


# --- parsing ---------------------------------------------------------------------------------
def _api(t: _Table) -> ApiSettings:
    out = ApiSettings(
        socket=t.text("socket"), url=t.text("url"), token=t.text("token"),
        token_file=t.text("token_file"), daemon_config=t.text("daemon_config"),
        timeout=t.number("timeout", 10.0, minimum=0.1),
    )
    t.finish()
    given = [k for k in ("socket", "url", "daemon_config") if getattr(out, k)]
    if len(given) != 1:
        raise AgentConfigError(f"{t.where}: give exactly one of socket, url, daemon_config")
    return out


def _layout(t: _Table) -> LayoutSettings:
    out = LayoutSettings(
        ha_identity=t.text("ha_identity"), psk=t.text("psk"),
        cn_prefixes=tuple(_net(p, f"{t.where}.cn_prefixes") for p in t.texts("cn_prefixes")),
        esp_proposals=t.texts("esp_proposals"), dpd_delay=t.text("dpd_delay"),
        payload=t.flag("payload", True), request_home=t.flag("request_home", False),
    )
    t.finish()
    return out


def _opt(text: str | None) -> str | None:
    return text or None


def _mobile_node(t: _Table, root: _Table) -> MnAgentConfig:
    w = t.where
    ha = _ip(t.text("ha_address", required=True), f"{w}.ha_address", v6=True)
    rt = t.table("retransmit")
    try:
        retransmit = RetransmitPolicy(
            initial=rt.number("initial", 1.0, minimum=0.001),
            maximum=rt.number("maximum", 32.0, minimum=0.001),
            initial_first_registration=rt.number("first_registration", 1.5, minimum=0.001),
            keep_at_maximum=rt.flag("keep_at_maximum", False),
        )
    except ValueError as exc:
        raise AgentConfigError(f"{rt.where}: {exc}") from None
    rt.finish()
    prefix = t.text("home_prefix")
    ike_move = t.text("ike_move", "after-ba")
    if ike_move not in IKE_MOVES:
        raise AgentConfigError(f"{w}.ike_move: {ike_move!r} is not one of "
                               f"{', '.join(IKE_MOVES)}")
    refresh = t.number("refresh", 0.8, minimum=0.05)
    if refresh > 1:
        raise AgentConfigError(f"{w}.refresh: {refresh} is a fraction of the lifetime (<= 1)")
    identity = t.text("identity", required=True)
    identity_key(identity)  # parseable
    cfg = MnAgentConfig(
        connection=t.text("connection", required=True),
        home_address=_ip(t.text("home_address", required=True), f"{w}.home_address", v6=True),
        home_prefix=_net(prefix, f"{w}.home_prefix") if prefix else None,
        ha_address=ha,
        ha_endpoint=_ip(t.text("ha_endpoint", ha), f"{w}.ha_endpoint"),
        port=t.integer("port", DSMIPV6_UDP_PORT, 1, 65535),
        identity=identity,
        k_bit=t.flag("k_bit", True),
        prefer_mobike=t.flag("prefer_mobike", False),
        ike_move=ike_move,
        lifetime=t.number("lifetime", 600.0, minimum=4.0),
        refresh=refresh,
        prefer_interfaces=t.texts("prefer_interfaces"),
        prefer_prefixes=tuple(_net(p, f"{w}.prefer_prefixes") for p in
                              t.texts("prefer_prefixes")),
        exclude_interfaces=t.texts("exclude_interfaces"),
        ike_wait=t.number("ike_wait", 30.0),
        protect=t.flag("protect", True),
        status_file=_opt(t.text("status_file", DEFAULT_MN_STATUS)),
        events_file=_opt(t.text("events_file")),
        retransmit=retransmit,
        api=_api(root.table("api")),
        layout=_layout(root.table("layout")),
    )
    t.finish()
    return cfg


def _home_agent(t: _Table, root: _Table) -> HaAgentConfig:
    w = t.where
    t.used.add("mobile_nodes")
    raw_nodes = t.data.get("mobile_nodes", [])
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise AgentConfigError(f"{w}.mobile_nodes: at least one [[{w}.mobile_nodes]] table")
    nodes = []
    for i, raw in enumerate(raw_nodes):
        n = _Table(raw, f"{w}.mobile_nodes[{i}]")
        hoa, prefix = n.text("home_address"), n.text("home_prefix")
        if (hoa is None) == (prefix is None):
            raise AgentConfigError(f"{n.where}: give exactly one of home_address and "
                                   "home_prefix")
        nodes.append(MobileNodeEntry(
            name=n.text("name", required=True), identity=n.text("identity", required=True),
            home_address=_ip(hoa, f"{n.where}.home_address", v6=True) if hoa else None,
            home_prefix=_net(prefix, f"{n.where}.home_prefix") if prefix else None,
            psk=n.text("psk"),
        ))
        n.finish()
    ike = t.text("ike_address")
    address = _ip(t.text("address", required=True), f"{w}.address", v6=True)
    cfg = HaAgentConfig(
        address=address,
        listen=_ip(t.text("listen", address), f"{w}.listen"),
        port=t.integer("port", DSMIPV6_UDP_PORT, 0, 65535),
        home_prefixes=tuple(_net(p, f"{w}.home_prefixes") for p in t.texts("home_prefixes")),
        max_lifetime=t.number("max_lifetime", 3600.0, minimum=4.0),
        supports_k=t.flag("supports_k", True),
        drop_without_k=t.flag("drop_without_k", True),
        allow_loopback_coa=t.flag("allow_loopback_coa", False),
        allow_ipv4_coa=t.flag("allow_ipv4_coa", True),
        require_esp=t.flag("require_esp", True),
        ike_address=_ip(ike, f"{w}.ike_address") if ike else None,
        status_file=_opt(t.text("status_file", DEFAULT_HA_STATUS)),
        events_file=_opt(t.text("events_file")),
        mobile_nodes=tuple(nodes),
        api=_api(root.table("api")),
        layout=_layout(root.table("layout")),
    )
    t.finish()
    if not cfg.home_prefixes:
        raise AgentConfigError(f"{w}.home_prefixes: at least one home prefix")
    try:
        cfg.policy()
        cfg.authorization()
    except MobilityError as exc:
        raise AgentConfigError(f"{w}: {exc}") from None
    return cfg


def parse_agent_config(data: Mapping[str, Any], source: str = "<config>") -> AgentConfig:
    root = _Table(data, source)
    roles = [k for k in ("mobile_node", "home_agent") if k in root.data]
    if len(roles) != 1:
        raise AgentConfigError(f"{source}: give exactly one of [mobile_node] and [home_agent]")
    section = root.table(roles[0])
    section.where = roles[0]
    cfg: AgentConfig = (_mobile_node(section, root) if roles[0] == "mobile_node"
                        else _home_agent(section, root))
    root.finish()
    return cfg


def load_agent_config(path: str | Path) -> AgentConfig:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise AgentConfigError(f"{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigError(f"{path}: {exc}") from None
    try:
        return parse_agent_config(data, str(path))
    except AgentConfigError as exc:
        raise AgentConfigError(f"{path}: {exc}") from None
