"""The TOML loader: every key's happy path, and for bad values an error naming the file,
the key path and what to fix (ikev2.errors.ConfigError); plus the `ikev2d` exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ikev2.config.loader import (
    MAX_COUNT,
    format_duration,
    load_config,
    load_config_text,
    parse_bytes,
    parse_duration,
    parse_psk,
    parse_ts,
)
from ikev2.config.model import (
    AuthKind,
    ChildConfig,
    ConnectionConfig,
    DpdAction,
    Mode,
    RetransmitConfig,
    StartAction,
)
from ikev2.crypto.proposals import default_proposals, parse_proposal
from ikev2.daemon import main as ikev2d
from ikev2.daemon.settings import DaemonConfig
from ikev2.errors import ConfigError
from ikev2.protocol.enums import IdType, ProtocolId

SRC = "test.toml"
REPO = Path(__file__).resolve().parents[2]

Sections = dict[str, str | None]


def cfg(
    *,
    daemon: Sections | None = None,
    engine: Sections | None = None,
    conn: Sections | None = None,
    retransmit: Sections | None = None,
    local: Sections | None = None,
    remote: Sections | None = None,
    child: Sections | None = None,
    tail: str = "",
) -> str:
    """A valid config with one connection `home` and one child `net`; each argument adds or
    replaces raw TOML values in its section (None removes a key)."""
    sections: list[tuple[str, Sections, Sections | None]] = [
        ("daemon", {"listen": '["192.0.2.1", "2001:db8::1"]'}, daemon),
        ("engine", {}, engine),
        ("connections.home", {
            "local_addrs": '["192.0.2.1"]', "remote_addrs": '["192.0.2.2"]', "psk": '"secret"',
        }, conn),
        ("connections.home.retransmit", {}, retransmit),
        ("connections.home.local", {"id": '"user@example.org"'}, local),
        ("connections.home.remote", {"id": '"gw.example.org"'}, remote),
        ("connections.home.children.net", {}, child),
    ]
    out = []
    for name, base, extra in sections:
        values = {**base, **(extra or {})}
        if not values and extra is None and name in ("engine", "connections.home.retransmit"):
            continue
        out.append(f"[{name}]")
        out += [f"{k} = {v}" for k, v in values.items() if v is not None]
        out.append("")
    return "\n".join(out) + tail


def load(text: str) -> DaemonConfig:
    return load_config_text(text, SRC)


def fails(text: str, key: str, *fragments: str) -> str:
    """Load must fail with 'test.toml:KEY: ...' containing every fragment."""
    with pytest.raises(ConfigError) as info:
        load(text)
    message = str(info.value)
    prefix = f"{SRC}:{key}: " if key else f"{SRC}: "
    assert message.startswith(prefix), message
    for fragment in fragments:
        assert fragment in message, message
    assert info.value.source == SRC and info.value.key == key
    assert "\n" not in message
    return message


def home(text: str) -> ConnectionConfig:
    return load(text).connection("home")


def net(text: str) -> ChildConfig:
    return home(text).child("net")


# --- the whole schema, happy paths ---------------------------------------------------
FULL = """\
[daemon]
listen = ["192.0.2.1", "2001:db8::1"]
ike_port = 15500
natt_port = 15501
kernel = "memory"
log_level = "debug"
state_file = "/run/ikev2d/sas.json"

[engine]
nonce_size = 48
half_open_timeout = "45s"
cookie_threshold = 10
block_threshold = 5
cookie_rotation = "5m"
response_cache_time = 600

[connections.home]
local_addrs = ["192.0.2.1"]
remote_addrs = ["192.0.2.2", "192.0.2.3"]
local_port = 15501
remote_port = 4500
ike_proposals = ["aes256gcm16-prfsha384-ecp384", "default"]
encap = true
mobike = false
fragmentation = false
send_initial_contact = false
psk = "0x00:01 02"
rekey_time = "4h"
reauth_time = "1d"
over_time = "15m"
rand_time = "10m"
dpd_delay = 30
dpd_action = "restart"

[connections.home.retransmit]
timeout = 2.5
base = 2
tries = 3
max_interval = "30s"

[connections.home.local]
id = "user@example.org"
auth = "psk"
psk = "local-only"

[connections.home.remote]
id = "%any"

[connections.home.children.net]
local_ts = ["198.51.100.0/24", "2001:db8:1::/48[tcp/443]"]
remote_ts = ["203.0.113.1-203.0.113.9[udp/1000-2000]"]
mode = "transport"
esp_proposals = ["aes128gcm16", "aes256-sha256-modp2048"]
start_action = "initiate"
replay_window = 128
install_policies = false
rekey_time = "30m"
life_time = "1h"
rand_time = "5m"
rekey_bytes = "1G"
life_bytes = 2147483648
rekey_packets = 1000000
life_packets = 2000000

[connections.gw]
remote_addrs = ["%any"]
psk = "other"

[connections.gw.local]
id = "keyid:0x0102"
"""


def test_full_config_every_key() -> None:
    c = load(FULL)
    assert c.source == SRC
    assert c.listen == ("192.0.2.1", "2001:db8::1")
    assert (c.ike_port, c.natt_port) == (15500, 15501)
    assert (c.kernel, c.log_level, c.state_file) == ("memory", "debug", "/run/ikev2d/sas.json")
    e = c.engine
    assert (e.ike_port, e.natt_port, e.nonce_size) == (15500, 15501, 48)
    assert (e.half_open_timeout, e.cookie_threshold, e.block_threshold) == (45.0, 10, 5)
    assert (e.cookie_rotation, e.response_cache_time) == (300.0, 600.0)

    h = c.connection("home")
    assert h.local_addrs == ("192.0.2.1",) and h.remote_addrs == ("192.0.2.2", "192.0.2.3")
    assert (h.local_port, h.remote_port) == (15501, 4500)
    assert h.ike_proposals[0] == parse_proposal("aes256gcm16-prfsha384-ecp384", ProtocolId.IKE)
    assert h.ike_proposals[1:] == default_proposals(ProtocolId.IKE)
    assert (h.encap, h.mobike, h.fragmentation, h.send_initial_contact) == (
        True, False, False, False)
    assert h.retransmit == RetransmitConfig(timeout=2.5, base=2.0, tries=3, max_interval=30.0)
    assert (h.rekey_time, h.reauth_time, h.over_time, h.rand_time) == (
        14400.0, 86400.0, 900.0, 600.0)
    assert (h.dpd_delay, h.dpd_action) == (30.0, DpdAction.RESTART)
    assert h.renew_time == 14400.0 and h.margin == 900.0 and h.jitter == 600.0
    assert h.local.id is not None and h.local.id.id_type == IdType.ID_RFC822_ADDR
    assert h.local.auth is AuthKind.PSK and h.local.psk == b"local-only"
    assert h.remote.id is None and h.remote.psk == b"\x00\x01\x02"

    n = h.child("net")
    assert [t.selector and str(t.selector) for t in n.local_ts] == [
        "198.51.100.0/24", "2001:db8:1::/48[6/443]"]
    rts = n.remote_ts[0].selector
    assert rts is not None and (rts.ip_proto, rts.start_port, rts.end_port) == (17, 1000, 2000)
    assert n.mode is Mode.TRANSPORT and n.start_action is StartAction.INITIATE
    assert n.esp_proposals == (parse_proposal("aes128gcm16", ProtocolId.ESP),
                               parse_proposal("aes256-sha256-modp2048", ProtocolId.ESP))
    assert (n.replay_window, n.install_policies) == (128, False)
    assert (n.rekey_time, n.life_time, n.rand_time) == (1800.0, 3600.0, 300.0)
    assert (n.rekey_bytes, n.life_bytes) == (1 << 30, 1 << 31)
    assert (n.rekey_packets, n.life_packets) == (1_000_000, 2_000_000)
    assert n.hard_time == 3600.0 and n.jitter == 300.0

    gw = c.connection("gw")
    assert gw.local_addrs == ("%any",) and gw.remote_addrs == ("%any",)
    assert gw.local.id is not None and gw.local.id.data == b"\x01\x02"
    assert gw.children == ()


def test_defaults_of_a_minimal_file() -> None:
    c = load('[connections.c]\nremote_addrs = ["192.0.2.2"]\npsk = "k"\n'
             '[connections.c.local]\nid = "gw.example.org"\n[connections.c.children.x]\n')
    assert c.listen == ("0.0.0.0", "::") and (c.ike_port, c.natt_port) == (500, 4500)
    assert (c.kernel, c.log_level, c.state_file) == ("memory", "info", None)
    e = c.engine
    assert (e.nonce_size, e.half_open_timeout, e.cookie_threshold) == (32, 30.0, 1000)
    assert (e.block_threshold, e.cookie_rotation, e.response_cache_time) == (0, 120.0, 300.0)
    conn = c.connection("c")
    assert conn.local_addrs == ("%any",) and (conn.local_port, conn.remote_port) == (500, 500)
    assert conn.ike_proposals == default_proposals(ProtocolId.IKE)
    assert (conn.encap, conn.mobike, conn.fragmentation, conn.send_initial_contact) == (
        False, True, True, True)
    assert conn.retransmit == RetransmitConfig()
    assert (conn.rekey_time, conn.reauth_time, conn.over_time, conn.rand_time) == (
        14400.0, 0.0, None, None)
    assert (conn.dpd_delay, conn.dpd_action) == (0.0, DpdAction.CLEAR)
    assert conn.remote.id is None
    x = conn.child("x")
    assert [t.dynamic for t in x.local_ts + x.remote_ts] == [True, True]
    assert x.mode is Mode.TUNNEL and x.start_action is StartAction.NONE
    assert x.esp_proposals == default_proposals(ProtocolId.ESP)
    assert (x.replay_window, x.install_policies) == (32, True)
    assert (x.rekey_time, x.life_time, x.rand_time) == (3600.0, None, None)
    assert (x.rekey_bytes, x.life_bytes, x.rekey_packets, x.life_packets) == (0, 0, 0, 0)


def test_empty_file_is_a_daemon_without_connections() -> None:
    assert load("").connections == ()


def test_the_base_test_config_loads() -> None:
    assert net(cfg()).name == "net"


# --- files -----------------------------------------------------------------------------
def test_load_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(cfg())
    assert load_config(path).source == str(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found$"):
        load_config(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: "):
        load_config(tmp_path)  # a directory
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'psk = "\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin1\.toml: cannot read: .*utf-8"):
        load_config(bad)


def test_not_toml() -> None:
    fails("[daemon\n", "", "not valid TOML", "line 1")
    fails('[daemon]\nlisten = ["a",\n', "", "not valid TOML")


# --- types and unknown keys -----------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (cfg(daemon={"ike_port": '"500"'}), "daemon.ike_port", "must be an integer, not str '500'"),
        (cfg(daemon={"ike_port": "true"}), "daemon.ike_port", "not boolean true"),
        (cfg(daemon={"ike_port": "5.0"}), "daemon.ike_port", "not float 5.0"),
        (cfg(daemon={"listen": "5"}), "daemon.listen", "must be a list of strings, not int 5"),
        (cfg(daemon={"listen": '["192.0.2.1", 7]'}), "daemon.listen[1]",
         "must be a string, not int 7"),
        (cfg(daemon={"state_file": "1"}), "daemon.state_file", "must be a string"),
        (cfg(conn={"mobike": '"yes"'}), "connections.home.mobike",
         "must be true or false, not str 'yes'"),
        (cfg(conn={"psk": "12"}), "connections.home.psk", "must be a string, not int 12"),
        (cfg(conn={"retransmit": "3"}), "connections.home.retransmit", "must be a table"),
        (cfg(child={"replay_window": '"64"'}), "connections.home.children.net.replay_window",
         "must be an integer"),
        (cfg(child={"local_ts": "{a = 1}"}), "connections.home.children.net.local_ts",
         "must be a list of strings, not a table"),
        (cfg(retransmit={"base": '"2"'}), "connections.home.retransmit.base",
         "must be a number, not str '2'"),
        (cfg(engine={"cookie_threshold": "1.5"}), "engine.cookie_threshold",
         "must be an integer"),
        ("daemon = 1\n", "daemon", "must be a table, not int 1"),
        ("connections = [1]\n", "connections", "must be a table, not a list"),
        ("[connections]\nhome = 1\n", "connections.home", "must be a table"),
        (cfg(tail="[connections.home.children]\nnet2 = 5\n"),
         "connections.home.children.net2", "must be a table"),
    ],
)
def test_wrong_types(text: str, key: str, problem: str) -> None:
    fails(text, key, problem)


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        (cfg(daemon={"lisen": '["192.0.2.1"]'}), "daemon.lisen", "did you mean 'listen'?"),
        (cfg(engine={"cookie_treshold": "5"}), "engine.cookie_treshold",
         "did you mean 'cookie_threshold'?"),
        (cfg(conn={"remote_addr": '["192.0.2.2"]'}), "connections.home.remote_addr",
         "did you mean 'remote_addrs'?"),
        (cfg(conn={"dpd_dealy": "5"}), "connections.home.dpd_dealy", "did you mean 'dpd_delay'?"),
        (cfg(conn={"rekeytime": '"1h"'}), "connections.home.rekeytime",
         "did you mean 'rekey_time'?"),
        (cfg(retransmit={"tries_": "3"}), "connections.home.retransmit.tries_",
         "did you mean 'tries'?"),
        (cfg(local={"identity": '"a@b.example"'}), "connections.home.local.identity",
         "known keys here: auth, id, psk"),
        (cfg(child={"loca_ts": '["10.0.0.0/8"]'}), "connections.home.children.net.loca_ts",
         "did you mean 'local_ts'?"),
        (cfg(child={"life_bytse": "5"}), "connections.home.children.net.life_bytse",
         "did you mean 'life_bytes'?"),
        ("[conections.x]\n", "conections", "did you mean 'connections'?"),
        ("[demon]\n", "demon", "did you mean 'daemon'?"),
    ],
)
def test_unknown_key_with_did_you_mean(text: str, key: str, hint: str) -> None:
    fails(text, key, "unknown key", hint)


def test_unknown_key_without_a_close_match_lists_known_keys() -> None:
    msg = fails(cfg(daemon={"zzzz": "1"}), "daemon.zzzz", "unknown key (known keys here: ")
    assert "ike_port" in msg and "state_file" in msg


# --- [daemon] ----------------------------------------------------------------------------
def test_listen_forms() -> None:
    assert load(cfg(daemon={"listen": '"192.0.2.1"'})).listen == ("192.0.2.1",)
    c = load(cfg(daemon={"listen": '["0.0.0.0", "::"]'}))
    assert c.listen == ("0.0.0.0", "::")
    c = load(cfg(daemon={"listen": '[" 2001:DB8::1 ", "192.0.2.1"]'}))
    assert c.listen == ("2001:db8::1", "192.0.2.1")  # normalized


@pytest.mark.parametrize(
    ("listen", "key", "problem"),
    [
        ('["localhost"]', "daemon.listen[0]", "'localhost' is not an IPv4 or IPv6 address"),
        ('["192.0.2.1", "192.0.2.300"]', "daemon.listen[1]", "is not an IPv4 or IPv6"),
        ("[]", "daemon.listen", "is empty: give at least one address"),
        ('["192.0.2.1", "192.0.2.1"]', "daemon.listen[1]", "192.0.2.1 is listed twice"),
        ('["2001:db8::1", "2001:DB8::1"]', "daemon.listen[1]", "is listed twice"),
        ('["0.0.0.0", "192.0.2.1"]', "daemon.listen",
         "192.0.2.1 is already covered by the wildcard 0.0.0.0"),
    ],
)
def test_bad_listen(listen: str, key: str, problem: str) -> None:
    fails(cfg(daemon={"listen": listen}), key, problem)


@pytest.mark.parametrize(
    ("daemon", "key", "problem"),
    [
        ({"ike_port": "0"}, "daemon.ike_port", "port 0 is out of range 1-65535"),
        ({"natt_port": "65536"}, "daemon.natt_port", "port 65536 is out of range"),
        ({"ike_port": "4500"}, "daemon.natt_port", "must differ from ike_port (4500)"),
        ({"kernel": '"memroy"'}, "daemon.kernel",
         "'memroy' is not one of memory, xfrm (did you mean 'memory'?)"),
        ({"log_level": '"verbose"'}, "daemon.log_level",
         "'verbose' is not one of debug, info, warning, error"),
        ({"state_file": '"  "'}, "daemon.state_file", "is empty (omit the key"),
    ],
)
def test_bad_daemon_values(daemon: Sections, key: str, problem: str) -> None:
    fails(cfg(daemon=daemon), key, problem)


# --- [engine] ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("engine", "key", "problem"),
    [
        ({"nonce_size": "15"}, "engine.nonce_size", "must be 16-256 octets"),
        ({"nonce_size": "257"}, "engine.nonce_size", "must be 16-256 octets"),
        ({"half_open_timeout": "0"}, "engine.half_open_timeout", "must be more than 0 seconds"),
        ({"half_open_timeout": '"soon"'}, "engine.half_open_timeout", "'soon' is not a duration"),
        ({"cookie_threshold": "-1"}, "engine.cookie_threshold", "must be 0 or more"),
        ({"block_threshold": "-1"}, "engine.block_threshold", "must be 0 (off) or more"),
        ({"block_threshold": '"5"'}, "engine.block_threshold", "must be an integer"),
        ({"cookie_rotation": '"0s"'}, "engine.cookie_rotation", "must be more than 0 seconds"),
        ({"cookie_rotation": "-5"}, "engine.cookie_rotation", "is negative"),
        ({"response_cache_time": "0.0"}, "engine.response_cache_time", "more than 0 seconds"),
    ],
)
def test_bad_engine_values(engine: Sections, key: str, problem: str) -> None:
    fails(cfg(engine=engine), key, problem)


def test_engine_durations_accept_units() -> None:
    e = load(cfg(engine={"half_open_timeout": '"1m"', "cookie_rotation": '"1h"',
                         "response_cache_time": '"90s"', "block_threshold": "0"})).engine
    assert (e.half_open_timeout, e.cookie_rotation, e.response_cache_time) == (60, 3600, 90)
    assert e.block_threshold == 0


# --- connection addresses and ports -----------------------------------------------------
def test_addresses() -> None:
    h = home(cfg(conn={"local_addrs": '"2001:db8::1"', "remote_addrs": '["2001:DB8::2"]'}))
    assert h.local_addrs == ("2001:db8::1",) and h.remote_addrs == ("2001:db8::2",)
    h = home(cfg(daemon={"listen": '["0.0.0.0"]'}, conn={"local_addrs": '["192.0.2.77"]'}))
    assert h.local_addrs == ("192.0.2.77",)  # covered by the wildcard


@pytest.mark.parametrize(
    ("conn", "key", "problem"),
    [
        ({"remote_addrs": '["gw.example.org"]'}, "connections.home.remote_addrs[0]",
         "'gw.example.org' is not an IP address or '%any' (host names are not resolved)"),
        ({"remote_addrs": '["192.0.2.0/24"]'}, "connections.home.remote_addrs[0]",
         "is not an IP address"),
        ({"local_addrs": '["192.0.2.1", "192.0.2.999"]'}, "connections.home.local_addrs[1]",
         "'192.0.2.999' is not an IP address"),
        ({"remote_addrs": "[]"}, "connections.home.remote_addrs",
         'is empty (use ["%any"] to accept any address)'),
        ({"remote_addrs": '["%any", "192.0.2.2"]'}, "connections.home.remote_addrs",
         "'%any' cannot be combined with other addresses"),
        ({"remote_addrs": None}, "connections.home.remote_addrs",
         "missing (this key is required)"),
        ({"local_addrs": '["192.0.2.9"]'}, "connections.home.local_addrs",
         "192.0.2.9 is not among daemon.listen (192.0.2.1, 2001:db8::1); add it there"),
        ({"remote_addrs": '["2001:db8::2"]'}, "connections.home.remote_addrs",
         "no address family in common with local_addrs"),
        ({"local_port": "0"}, "connections.home.local_port", "out of range 1-65535"),
        ({"remote_port": "70000"}, "connections.home.remote_port", "out of range 1-65535"),
        ({"local_port": "1234"}, "connections.home.local_port",
         "1234: ikev2d listens on daemon.ike_port (500) and daemon.natt_port (4500) only"),
    ],
)
def test_bad_addresses_and_ports(conn: Sections, key: str, problem: str) -> None:
    fails(cfg(conn=conn), key, problem)


def test_ports() -> None:
    h = home(cfg(daemon={"ike_port": "15000", "natt_port": "15001"},
                 conn={"remote_port": "16000"}))
    assert (h.local_port, h.remote_port) == (15000, 16000)
    assert home(cfg(conn={"local_port": "4500"})).local_port == 4500


def test_initiate_needs_a_peer_address() -> None:
    fails(cfg(conn={"remote_addrs": '["%any"]'}, child={"start_action": '"initiate"'}),
          "connections.home.remote_addrs", 'start_action = "initiate" needs a peer address')


# --- names -----------------------------------------------------------------------------
def test_bad_names() -> None:
    fails('[connections."my home"]\nremote_addrs = ["192.0.2.2"]\n', "connections.my home",
          "connection names use letters, digits, '_', '.', '-' (max 64)")
    fails(cfg(tail='[connections.home.children."a/b"]\n'), "connections.home.children.a/b",
          "child names use letters")
    fails(cfg(tail=f'[connections.home.children.{"x" * 65}]\n'),
          f"connections.home.children.{'x' * 65}", "max 64")


def test_duplicate_child_names() -> None:
    other = ('[connections.work]\nremote_addrs = ["192.0.2.3"]\npsk = "k"\n'
             '[connections.work.local]\nid = "a@example.org"\n[connections.work.children.net]\n')
    fails(cfg(tail=other), "connections.work.children.net",
          "child name 'net' is already used by connection 'home'; child names must be unique")
    # twice in one connection is a TOML error already
    fails(cfg(tail="[connections.home.children.net]\n"), "", "not valid TOML",
          "Cannot declare")


# --- proposals -------------------------------------------------------------------------
def test_proposals() -> None:
    h = home(cfg(conn={"ike_proposals": '"aes128-sha256-x25519"'}))
    assert h.ike_proposals == (parse_proposal("aes128-sha256-x25519", ProtocolId.IKE),)
    n = net(cfg(child={"esp_proposals": '["default", "chacha20poly1305"]'}))
    assert n.esp_proposals[:-1] == default_proposals(ProtocolId.ESP)
    assert n.esp_proposals[-1] == parse_proposal("chacha20poly1305", ProtocolId.ESP)


@pytest.mark.parametrize(
    ("conn", "child", "key", "problem"),
    [
        ({"ike_proposals": '["aes128-sha257-x25519"]'}, None, "connections.home.ike_proposals[0]",
         "unknown algorithm 'sha257' in IKE proposal 'aes128-sha257-x25519'; valid: "),
        ({"ike_proposals": '["x25519", "aes128gcm16"]'}, None,
         "connections.home.ike_proposals[0]", "needs an encryption algorithm"),
        ({"ike_proposals": '["aes128gcm16-x25519"]'}, None, "connections.home.ike_proposals[0]",
         "needs a PRF"),
        ({"ike_proposals": '["aes128gcm16-prfsha256"]'}, None,
         "connections.home.ike_proposals[0]", "needs a key exchange group"),
        ({"ike_proposals": '["aes128-sha256-x25519", "aes128-sha256-x25519"]'}, None,
         "connections.home.ike_proposals[1]", "repeats an earlier proposal"),
        ({"ike_proposals": "[]"}, None, "connections.home.ike_proposals",
         'is empty (omit it or write ["default"])'),
        (None, {"esp_proposals": '["aes128-prfsha256"]'},
         "connections.home.children.net.esp_proposals[0]",
         "'prfsha256' cannot be used in an ESP proposal"),
        (None, {"esp_proposals": '["aes128"]'}, "connections.home.children.net.esp_proposals[0]",
         "needs an integrity algorithm"),
        (None, {"esp_proposals": '["aes128gcm16-sha256"]'},
         "connections.home.children.net.esp_proposals[0]", "AEAD algorithms take no integrity"),
    ],
)
def test_bad_proposals(conn: Sections | None, child: Sections | None, key: str,
                       problem: str) -> None:
    fails(cfg(conn=conn, child=child), key, problem)


# --- traffic selectors -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "proto", "ports", "addrs"),
    [
        ("10.0.0.0/8", 0, (0, 65535), ("10.0.0.0", "10.255.255.255")),
        ("192.0.2.7", 0, (0, 65535), ("192.0.2.7", "192.0.2.7")),
        ("0.0.0.0/0", 0, (0, 65535), ("0.0.0.0", "255.255.255.255")),
        ("::/0", 0, (0, 65535), ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
        ("2001:db8::/126", 0, (0, 65535), ("2001:db8::", "2001:db8::3")),
        ("10.0.0.1-10.0.0.9", 0, (0, 65535), ("10.0.0.1", "10.0.0.9")),
        (" 10.0.0.1 - 10.0.0.9 ", 0, (0, 65535), ("10.0.0.1", "10.0.0.9")),
        ("10.0.0.0/8[tcp]", 6, (0, 65535), None),
        ("10.0.0.0/8[TCP/80]", 6, (80, 80), None),
        ("10.0.0.0/8[tcp/%any]", 6, (0, 65535), None),
        ("10.0.0.0/8[udp/1000-2000]", 17, (1000, 2000), None),
        ("10.0.0.0/8[sctp/9]", 132, (9, 9), None),
        ("10.0.0.0/8[6/22]", 6, (22, 22), None),
        ("10.0.0.0/8[gre]", 47, (0, 65535), None),
        ("10.0.0.0/8[icmp/8]", 1, (0x0800, 0x08FF), None),  # type 8, any code
        ("2001:db8::/32[icmp/128]", 58, (0x8000, 0x80FF), None),  # icmp means ICMPv6 here
        ("2001:db8::/32[icmpv6/135]", 58, (0x8700, 0x87FF), None),
        ("2001:db8::/32[ipv6-icmp]", 58, (0, 65535), None),
        ("2001:db8::/32[mh]", 135, (0, 65535), None),
        ("2001:db8::/32[mh/5]", 135, (0x0500, 0x0500), None),  # MH type 5: Binding Update
        ("2001:db8::/32[ipv6-mh/6]", 135, (0x0600, 0x0600), None),
        ("2001:db8::1[135]", 135, (0, 65535), None),
        ("10.0.0.1-10.0.0.9[udp/53]", 17, (53, 53), ("10.0.0.1", "10.0.0.9")),
    ],
)
def test_ts_syntax(text: str, proto: int, ports: tuple[int, int],
                   addrs: tuple[str, str] | None) -> None:
    import ipaddress

    ts = parse_ts(text)
    assert not ts.dynamic and ts.selector is not None
    s = ts.selector
    assert (s.ip_proto, s.start_port, s.end_port) == (proto, *ports)
    if addrs is not None:
        got = (str(ipaddress.ip_address(s.start_addr)), str(ipaddress.ip_address(s.end_addr)))
        assert got == addrs
    # and in a config file
    key = "remote_ts" if ":" in text else "local_ts"
    assert getattr(net(cfg(child={key: f'["{text}"]'})), key)[0] == ts


def test_ts_dynamic() -> None:
    assert parse_ts("dynamic").dynamic and parse_ts(" dynamic ").dynamic
    n = net(cfg(child={"local_ts": '"dynamic"', "remote_ts": '["dynamic", "10.0.0.0/8"]'}))
    assert n.local_ts[0].dynamic and n.remote_ts[0].dynamic and not n.remote_ts[1].dynamic
    assert str(n.local_ts[0].resolve("192.0.2.1")) == "192.0.2.1/32"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10.0.0.1/8", "'10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)"),
        ("10.0.0.0/33", "is not an address, CIDR prefix, 'a-b' range or 'dynamic'"),
        ("net.example.org", "is not an address, CIDR prefix"),
        ("10.0.0.9-10.0.0.1", "address range '10.0.0.9-10.0.0.1' starts after it ends"),
        ("10.0.0.1-2001:db8::1", "mixes IPv4 and IPv6"),
        ("10.0.0.1-x", "is not an address range like 10.0.0.1-10.0.0.9"),
        ("10.0.0.0/8[tpc/80]", "unknown protocol 'tpc' (did you mean 'tcp'?)"),
        ("10.0.0.0/8[256]", "IP protocol 256 is out of range 0-255"),
        ("10.0.0.0/8[tcp/65536]", "port '65536' is not a number 0-65535"),
        ("10.0.0.0/8[tcp/http]", "port 'http' is not a number 0-65535"),
        ("10.0.0.0/8[tcp/90-80]", "port range '90-80' starts after it ends"),
        ("10.0.0.0/8[icmp/300]", "ICMP type '300' is not a number 0-255"),
        ("2001:db8::/32[mh/256]", "Mobility Header type '256' is not a number 0-255"),
        ("10.0.0.0/8[mh/5]", "'mh' is an IPv6 protocol but the selector is IPv4"),
        ("10.0.0.0/8[icmpv6]", "is an IPv6 protocol but the selector is IPv4 (use 'icmp')"),
        ("10.0.0.0/8[0/80]", "any protocol (0) has no ports; drop '/80'"),
        ("10.0.0.0/8[gre/1]", "IP protocol 47 has no ports"),
        ("10.0.0.0/8[tcp/80", "missing ']'"),
        ("10.0.0.0/8tcp/80]", "unbalanced ']'"),
        ("[tcp/80]", "no address in"),
        ("dynamic[tcp/80]", "'dynamic' takes no protocol or port"),
    ],
)
def test_bad_ts(text: str, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_ts(text)
    assert problem in str(info.value)
    fails(cfg(child={"remote_ts": f'["203.0.113.0/24", "{text}"]'}),
          "connections.home.children.net.remote_ts[1]", problem)


def test_empty_ts_list() -> None:
    fails(cfg(child={"local_ts": "[]"}), "connections.home.children.net.local_ts",
          'is empty (omit it or write ["dynamic"])')


# --- identities and keys ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "id_type", "data"),
    [
        ("user@example.org", IdType.ID_RFC822_ADDR, b"user@example.org"),
        ("gw.example.org", IdType.ID_FQDN, b"gw.example.org"),
        ("gw", IdType.ID_FQDN, b"gw"),
        ("192.0.2.1", IdType.ID_IPV4_ADDR, bytes([192, 0, 2, 1])),
        ("2001:db8::1", IdType.ID_IPV6_ADDR, bytes.fromhex("20010db8" + "0" * 23 + "1")),
        ("fqdn:gw.example.org", IdType.ID_FQDN, b"gw.example.org"),
        ("email:user@example.org", IdType.ID_RFC822_ADDR, b"user@example.org"),
        ("rfc822:user@example.org", IdType.ID_RFC822_ADDR, b"user@example.org"),
        ("ipv4:192.0.2.1", IdType.ID_IPV4_ADDR, bytes([192, 0, 2, 1])),
        ("ipv6:2001:db8::1", IdType.ID_IPV6_ADDR, bytes.fromhex("20010db8" + "0" * 23 + "1")),
        ("keyid:0x0a0B", IdType.ID_KEY_ID, b"\x0a\x0b"),
        ("keyid:my key", IdType.ID_KEY_ID, b"my key"),
    ],
)
def test_identities(text: str, id_type: IdType, data: bytes) -> None:
    h = home(cfg(local={"id": f'"{text}"'}, remote={"id": f'"{text}"'}))
    for side in (h.local, h.remote):
        assert side.id is not None and (side.id.id_type, side.id.data) == (id_type, data)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("user@", "bad identity 'user@': not an email address (user@domain)"),
        ("@example.org", "not an email address"),
        ("us er@example.org", "not an email address"),
        ("gw example org", "bad identity 'gw example org': not an FQDN, address or email"),
        ("email:gw", "not an email address"),
        ("fqdn:a b", "not an FQDN"),
        ("ipv4:192.0.2.300", "bad identity 'ipv4:192.0.2.300': "),
        ("ipv6:192.0.2.1x", "bad identity"),
        ("keyid:0xZZ", "bad identity 'keyid:0xZZ': "),
        ("keyid:", "empty key id"),
        ("   ", "empty identity"),
    ],
)
def test_bad_identities(text: str, problem: str) -> None:
    fails(cfg(local={"id": f'"{text}"'}), "connections.home.local.id", problem)
    fails(cfg(remote={"id": f'"{text}"'}), "connections.home.remote.id", problem)


def test_identity_defaults() -> None:
    h = home(cfg(local={"id": None}, remote={"id": None}))
    assert str(h.local.id) == "192.0.2.1"  # the one local address
    assert h.remote.id is None  # any peer identity
    assert home(cfg(remote={"id": '"%any"'})).remote.id is None
    fails(cfg(conn={"local_addrs": '["%any"]'}, local={"id": None}),
          "connections.home.local.id", "missing: set this side's identity")
    fails(cfg(daemon={"listen": '["0.0.0.0"]'},
              conn={"local_addrs": '["192.0.2.1", "192.0.2.5"]'}, local={"id": None}),
          "connections.home.local.id", "only when local_addrs holds exactly one address")
    fails(cfg(local={"id": '"%any"'}), "connections.home.local.id", "bad identity '%any'")


def test_psk_forms() -> None:
    assert parse_psk("secret") == b"secret"
    assert parse_psk("0xDEad:be ef") == bytes.fromhex("deadbeef")
    assert parse_psk("ünïcode") == "ünïcode".encode()
    h = home(cfg(conn={"psk": '"0x0102"'}, remote={"psk": '"theirs"'}))
    assert h.local.psk == b"\x01\x02" and h.remote.psk == b"theirs"
    h = home(cfg(conn={"psk": None}, local={"psk": '"a"'}, remote={"psk": '"b"'}))
    assert (h.local.psk, h.remote.psk) == (b"a", b"b")


@pytest.mark.parametrize(
    ("sections", "key", "problem"),
    [
        ({"conn": {"psk": '"0xZZ"'}}, "connections.home.psk", "not valid hex after '0x'"),
        ({"conn": {"psk": '"0x123"'}}, "connections.home.psk", "even number of hex digits"),
        ({"conn": {"psk": '""'}}, "connections.home.psk", "the psk is empty"),
        ({"conn": {"psk": '"0x"'}}, "connections.home.psk", "the psk is empty"),
        ({"remote": {"psk": '"0xq"'}}, "connections.home.remote.psk", "not valid hex"),
        ({"conn": {"psk": None}}, "connections.home.local.psk",
         'auth = "psk" needs a key: set connections.home.psk (both sides) or '
         "connections.home.local.psk"),
        ({"conn": {"psk": None}, "local": {"psk": '"a"'}}, "connections.home.remote.psk",
         "needs a key"),
        ({"local": {"auth": '"pubkey"'}}, "connections.home.local.certs",
         'missing: auth = "pubkey" needs our certificate'),
        ({"remote": {"auth": '"eap"'}}, "connections.home.remote.auth",
         "'eap' is not one of psk, pubkey"),
        ({"local": {"auth": '"pks"'}}, "connections.home.local.auth", "did you mean 'psk'?"),
    ],
)
def test_bad_keys_and_auth(sections: dict[str, Sections], key: str, problem: str) -> None:
    fails(cfg(**sections), key, problem)


# --- child settings --------------------------------------------------------------------
def test_child_enums_and_numbers() -> None:
    n = net(cfg(child={"mode": '"transport"', "start_action": '"trap"',
                       "replay_window": "0", "install_policies": "false"}))
    assert n.mode is Mode.TRANSPORT and n.start_action is StartAction.TRAP
    assert n.replay_window == 0 and n.install_policies is False
    assert net(cfg(child={"replay_window": "4096"})).replay_window == 4096


@pytest.mark.parametrize(
    ("child", "key", "problem"),
    [
        ({"mode": '"tunel"'}, "mode", "'tunel' is not one of tunnel, transport "
                                      "(did you mean 'tunnel'?)"),
        ({"start_action": '"start"'}, "start_action", "is not one of none, initiate, trap"),
        ({"replay_window": "-1"}, "replay_window", "-1 is out of range 0-4096"),
        ({"replay_window": "5000"}, "replay_window", "5000 is out of range 0-4096"),
        ({"install_policies": "1"}, "install_policies", "must be true or false"),
    ],
)
def test_bad_child_values(child: Sections, key: str, problem: str) -> None:
    fails(cfg(child=child), f"connections.home.children.net.{key}", problem)


# --- durations -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0), (2.5, 2.5), (0, 0.0), ("90", 90.0), ("90s", 90.0), ("30m", 1800.0),
        ("4h", 14400.0), ("1d", 86400.0), ("1.5h", 5400.0), (" 10 m ", 600.0), ("0s", 0.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (-1, "-1 is negative"),
        ("-1h", "'-1h' is not a duration (durations cannot be negative)"),
        ("4 hours", "'4 hours' is not a duration; write seconds (90, 2.5) or a number with "
                    'unit s, m, h or d ("90s", "30m", "4h", "1d")'),
        ("1H", "'1H' is not a duration"),
        ("1w", "'1w' is not a duration"),
        ("", "'' is not a duration"),
        (True, "must be a duration, not boolean true"),
        ([1], "must be a duration, not a list"),
        (float("inf"), "is not a finite number of seconds"),
        (float("nan"), "is not a finite number of seconds"),
    ],
)
def test_parse_duration_errors(value: object, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(14400, "4h"), (86400, "1d"), (5400, "90m"), (396, "396s"), (2.5, "2.5s"), (0, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


CONN_DURATIONS = ["rekey_time", "reauth_time", "over_time", "rand_time", "dpd_delay"]
CHILD_DURATIONS = ["rekey_time", "life_time", "rand_time"]


@pytest.mark.parametrize("key", CONN_DURATIONS)
def test_connection_duration_keys(key: str) -> None:
    h = home(cfg(conn={key: '"30m"'}))
    assert getattr(h, key) == 1800.0
    assert getattr(home(cfg(conn={key: "60"})), key) == 60.0
    fails(cfg(conn={key: '"30 minutes"'}), f"connections.home.{key}", "is not a duration")
    fails(cfg(conn={key: "-3"}), f"connections.home.{key}", "-3 is negative")
    fails(cfg(conn={key: "inf"}), f"connections.home.{key}", "not a finite number")
    fails(cfg(conn={key: "false"}), f"connections.home.{key}", "must be a duration")


@pytest.mark.parametrize("key", CHILD_DURATIONS)
def test_child_duration_keys(key: str) -> None:
    # rekey_time 1h, life_time 2h; rand_time fits in both windows
    values = {"rekey_time": '"1h"', "life_time": '"2h"', "rand_time": '"30m"'}
    n = net(cfg(child=values))
    assert (n.rekey_time, n.life_time, n.rand_time) == (3600.0, 7200.0, 1800.0)
    fails(cfg(child={key: '"1 hour"'}), f"connections.home.children.net.{key}",
          "is not a duration")
    fails(cfg(child={key: "-1"}), f"connections.home.children.net.{key}", "is negative")


def test_retransmit_durations() -> None:
    rt = home(cfg(retransmit={"timeout": '"0.5s"',
                              "max_interval": '"2m"'})).retransmit
    assert (rt.timeout, rt.max_interval) == (0.5, 120.0)


@pytest.mark.parametrize(
    ("retransmit", "key", "problem"),
    [
        ({"timeout": "0"}, "timeout", "must be more than 0 seconds, not 0"),
        ({"timeout": '"x"'}, "timeout", "'x' is not a duration"),
        ({"base": "0.5"}, "base", "must be 1.0 or more, not 0.5"),
        ({"tries": "-1"}, "tries", "must be 0 or more"),
        ({"max_interval": '"0m"'}, "max_interval", "must be more than 0 seconds"),
    ],
)
def test_bad_retransmit(retransmit: Sections, key: str, problem: str) -> None:
    fails(cfg(retransmit=retransmit), f"connections.home.retransmit.{key}", problem)


def test_ike_lifetime_rules() -> None:
    h = home(cfg(conn={"rekey_time": "0", "reauth_time": "0", "rand_time": '"1d"'}))
    assert h.renew_time == 0.0  # never renewed: no jitter bound
    h = home(cfg(conn={"rekey_time": '"4h"', "reauth_time": '"1h"', "rand_time": '"59m"'}))
    assert h.renew_time == 3600.0 and h.jitter == 3540.0
    fails(cfg(conn={"rekey_time": '"1h"', "rand_time": '"1h"'}), "connections.home.rand_time",
          "1h must be less than rekey_time (1h): the jitter is subtracted from it")
    fails(cfg(conn={"rekey_time": '"4h"', "reauth_time": '"1h"', "rand_time": '"2h"'}),
          "connections.home.rand_time", "must be less than reauth_time (1h)",
          "raise reauth_time")


def test_dpd_action() -> None:
    for action in DpdAction:
        assert home(cfg(conn={"dpd_action": f'"{action.value}"'})).dpd_action is action
    fails(cfg(conn={"dpd_action": '"restrat"'}), "connections.home.dpd_action",
          "'restrat' is not one of clear, restart, hold (did you mean 'restart'?)")
    fails(cfg(conn={"dpd_action": "1"}), "connections.home.dpd_action", "must be a string")


def test_child_lifetime_rules() -> None:
    key = "connections.home.children.net"
    n = net(cfg(child={"rekey_time": "0", "life_time": '"2h"'}))  # expiry without rekey
    assert (n.rekey_time, n.hard_time) == (0.0, 7200.0)
    n = net(cfg(child={"rekey_time": "0", "life_time": "0"}))
    assert n.hard_time == 0.0
    n = net(cfg(child={"rekey_time": '"1h"', "rand_time": '"6m"'}))  # default life: 66m
    assert n.jitter == 360.0
    n = net(cfg(child={"rekey_time": '"1h"', "life_time": '"2h"', "rand_time": '"59m"'}))
    assert n.jitter == 3540.0
    fails(cfg(child={"rekey_time": '"1h"', "life_time": '"1h"'}), f"{key}.life_time",
          "1h must be greater than rekey_time (1h), or the CHILD_SA expires before it is "
          "rekeyed; raise life_time or lower rekey_time")
    fails(cfg(child={"rekey_time": '"1h"', "life_time": '"30m"'}), f"{key}.life_time",
          "30m must be greater than rekey_time (1h)")
    fails(cfg(child={"rekey_time": '"1h"', "life_time": "0"}), f"{key}.life_time",
          "must be greater than rekey_time")
    fails(cfg(child={"rekey_time": '"1h"', "life_time": '"3h"', "rand_time": '"1h"'}),
          f"{key}.rand_time", "1h must be less than rekey_time (1h)")
    fails(cfg(child={"rekey_time": '"1h"', "life_time": '"70m"', "rand_time": '"20m"'}),
          f"{key}.rand_time", "20m is more than life_time - rekey_time (10m); lower rand_time")
    fails(cfg(child={"rekey_time": '"1h"', "rand_time": '"7m"'}), f"{key}.rand_time",
          "more than life_time - rekey_time (6m, with the default life_time of 110 % of "
          "rekey_time; set life_time to widen it)")


# --- byte and packet limits ------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "count"),
    [
        (0, 0), (1500, 1500), ("1500", 1500), ("512k", 512 << 10), ("512K", 512 << 10),
        ("100M", 100 << 20), ("100MiB", 100 << 20), ("100MB", 100 << 20), ("4G", 4 << 30),
        ("1T", 1 << 40), ("64b", 64), ("1 k", 1024),
    ],
)
def test_parse_bytes(value: object, count: int) -> None:
    assert parse_bytes(value) == count


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (-1, "-1 is negative; use 0 for no limit"),
        (MAX_COUNT + 1, "larger than the kernel's 64-bit limit"),
        ("100X", "'100X' is not a byte count; write an integer or a number with suffix"),
        ("1.5G", "is not a byte count"),
        ("-5M", "is not a byte count"),
        (1.5, "must be a byte count (an integer, or a string like \"100M\"), not float 1.5"),
        (False, "not boolean false"),
    ],
)
def test_parse_bytes_errors(value: object, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_bytes(value)
    assert problem in str(info.value)


@pytest.mark.parametrize("unit", ["bytes", "packets"])
def test_volume_limits(unit: str) -> None:
    key = "connections.home.children.net"
    n = net(cfg(child={f"rekey_{unit}": "1000", f"life_{unit}": "2000"}))
    assert (getattr(n, f"rekey_{unit}"), getattr(n, f"life_{unit}")) == (1000, 2000)
    n = net(cfg(child={f"rekey_{unit}": "1000"}))  # soft only
    assert getattr(n, f"life_{unit}") == 0
    n = net(cfg(child={f"life_{unit}": "1000"}))  # hard only
    assert getattr(n, f"rekey_{unit}") == 0
    fails(cfg(child={f"rekey_{unit}": "2000", f"life_{unit}": "2000"}), f"{key}.life_{unit}",
          f"2000 must be greater than rekey_{unit} (2000), or the CHILD_SA expires before it "
          f"is rekeyed; raise life_{unit} or lower rekey_{unit}")
    fails(cfg(child={f"rekey_{unit}": "-1"}), f"{key}.rekey_{unit}", "is negative")
    fails(cfg(child={f"life_{unit}": str(MAX_COUNT + 1)}), f"{key}.life_{unit}",
          "is larger than the kernel's 64-bit limit")


def test_byte_suffixes_in_config() -> None:
    n = net(cfg(child={"rekey_bytes": '"512M"', "life_bytes": '"1G"'}))
    assert (n.rekey_bytes, n.life_bytes) == (512 << 20, 1 << 30)
    fails(cfg(child={"rekey_packets": '"1k"'}), "connections.home.children.net.rekey_packets",
          "must be an integer, not str '1k'")
    fails(cfg(child={"life_bytes": '"lots"'}), "connections.home.children.net.life_bytes",
          "'lots' is not a byte count")


# --- ikev2d exit codes -----------------------------------------------------------------
def test_ikev2d_check_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "good.toml"
    path.write_text(cfg())
    assert ikev2d.main(["--config", str(path), "--check"]) == 0
    out, err = capsys.readouterr()
    assert out == f"{path}: OK (1 connection(s): home)\n" and err == ""


@pytest.mark.parametrize(
    ("text", "tail"),
    [
        (cfg(child={"mode": '"tunel"'}),
         ":connections.home.children.net.mode: 'tunel' is not one of tunnel, transport "
         "(did you mean 'tunnel'?)"),
        (cfg(local={"id": '"user@"'}),
         ":connections.home.local.id: bad identity 'user@': not an email address"),
        ("[daemon\n", ": not valid TOML: "),
    ],
)
def test_ikev2d_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   text: str, tail: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    for extra in ([], ["--check"]):
        assert ikev2d.main(["--config", str(path), *extra]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith(f"ikev2d: {path}{tail}")
        assert err.count("\n") == 1


def test_ikev2d_missing_config_and_usage(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert ikev2d.main(["--config", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().err == f"ikev2d: {tmp_path / 'none.toml'}: file not found\n"
    assert ikev2d.main(["--log-level", "loud"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_ikev2d_process_exit_codes(tmp_path: Path) -> None:
    """The real process: 2 and one line on a bad file, 0 for --check on a good one."""
    bad, good = tmp_path / "bad.toml", tmp_path / "good.toml"
    bad.write_text(cfg(conn={"remote_addrs": '["gw.example.org"]'}))
    good.write_text(cfg())

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ikev2.daemon.main", *args], cwd=REPO,
            capture_output=True, text=True, timeout=30, check=False,
        )

    res = run("--config", str(bad))
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr == (
        f"ikev2d: {bad}:connections.home.remote_addrs[0]: 'gw.example.org' is not an IP "
        "address or '%any' (host names are not resolved)\n"
    )
    res = run("--config", str(good), "--check")
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"{good}: OK (1 connection(s): home)\n"


# --- configuration payload (RFC 7296 §2.19, RFC 5026 §4.4) -----------------------------
def test_cp_keys() -> None:
    """7296-90: vips / request_home_prefix (initiator), assign_* (responder)."""
    import ipaddress

    assert home(cfg()).cp is None
    c = home(cfg(conn={"vips": '["::"]', "request_home_prefix": "true"})).cp
    assert c is not None and c.vips == (ipaddress.IPv6Address("::"),)
    assert c.request_home_prefix and c.requests and not c.assigns
    c = home(cfg(conn={"assign_address": '"2001:db8:1::100"',
                       "assign_home_prefix": '"2001:db8:1:1::/64"',
                       "home_prefix_lifetime": '"1h"'})).cp
    assert c is not None and c.assigns and not c.requests
    assert c.assign_address == ipaddress.IPv6Address("2001:db8:1::100")
    assert c.assign_home_prefix == ipaddress.IPv6Network("2001:db8:1:1::/64")
    assert c.home_prefix_lifetime == 3600
    assert home(cfg(conn={"assign_home_prefix": '"2001:db8:1:1::/64"'})).cp \
        .home_prefix_lifetime == 86400


@pytest.mark.parametrize(
    ("conn", "key", "problem"),
    [
        ({"vips": '["10.0.0.1"]'}, "connections.home.vips[0]",
         "only IPv6 virtual IPs are requested (INTERNAL_IP6_ADDRESS)"),
        ({"vips": '["nope"]'}, "connections.home.vips[0]",
         "'nope' is not an IP address; write \"::\""),
        ({"vips": '["fe80::1"]'}, "connections.home.vips[0]", "cannot be assigned to a host"),
        ({"vips": '["::", "::"]'}, "connections.home.vips[1]", ":: is listed twice"),
        ({"vips": "[1]"}, "connections.home.vips[0]", "must be a string"),
        ({"request_home_prefix": '"yes"'}, "connections.home.request_home_prefix",
         "must be true or false"),
        ({"assign_address": '"2001:db8::/64"'}, "connections.home.assign_address",
         "is not an IP address; write the peer's IPv6 address"),
        ({"assign_address": '"192.0.2.9"'}, "connections.home.assign_address",
         "assign a unicast, non-link-local IPv6 address"),
        ({"assign_address": '"::"'}, "connections.home.assign_address", "unicast"),
        ({"assign_home_prefix": '"2001:db8:1:1::1/64"'}, "connections.home.assign_home_prefix",
         "has host bits set; write an IPv6 prefix with zero host bits"),
        ({"assign_home_prefix": '"10.0.0.0/8"'}, "connections.home.assign_home_prefix",
         "a home prefix is a global or unique-local IPv6 prefix"),
        ({"home_prefix_lifetime": "60"}, "connections.home.home_prefix_lifetime",
         "only used with assign_home_prefix"),
        ({"assign_home_prefix": '"2001:db8:1:1::/64"', "home_prefix_lifetime": "-1"},
         "connections.home.home_prefix_lifetime", ""),
    ],
)
def test_bad_cp_values(conn: Sections, key: str, problem: str) -> None:
    fails(cfg(conn=conn), key, problem)
