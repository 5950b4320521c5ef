"""The API's pieces without sockets: the [api] config section, the request validator, the
selector lookup, the Wireshark key files, the SA table's event bookkeeping."""

from __future__ import annotations

import pytest

from api import keyexport, selectors
from api.core_adapter import IkeKeyMaterial
from api.problems import ApiError
from api.validation import check, coerce
from ikev2.config.loader import load_config_text, load_connection_data
from ikev2.core.events import ChildSaInfo
from ikev2.errors import ConfigError
from ikev2.kernel.base import ChildSaSpec


# --- [api] ---------------------------------------------------------------------------------
def test_api_section_defaults_and_absence() -> None:
    assert load_config_text("").api.enabled is False
    api = load_config_text("[api]\n").api
    assert api.enabled and api.listen == ("127.0.0.1",) and api.port == 7296
    assert api.max_body == 1 << 20 and api.key_export is False and api.child_sa_keys is False
    api = load_config_text('[api]\nunix_socket = "/run/x.sock"\nchild_sa_keys = true\n').api
    assert api.child_sa_keys and api.unix_socket == "/run/x.sock"
    api = load_config_text('[api]\nlisten = ["::1"]\nport = 0\nunix_socket = "/run/x.sock"\n'
                           'unix_socket_mode = 0o660\nmax_body = "64k"\n').api
    assert api.listen == ("::1",) and api.unix_socket_mode == 0o660 and api.max_body == 65536


@pytest.mark.parametrize(("text", "key", "words"), [
    ('listen = ["localhost"]', "api.listen[0]", "not an IPv4 or IPv6 address"),
    ("port = 70000", "api.port", "out of range"),
    ("listen = []", "api.listen", "unreachable"),
    ("key_export = true", "api.key_export_dir", "missing"),
    ('max_body = "1G"', "api.max_body", "out of range"),
    ("client_timeout = 0", "api.client_timeout", "more than 0"),
    ('token_file = ""', "api.token_file", "empty"),
    ("enable = true", "api.enable", "did you mean 'enabled'"),
    ("unix_socket_mode = 0o7777", "api.unix_socket_mode", "file mode"),
    ("child_sa_keys = true", "api.child_sa_keys", "needs unix_socket"),
])
def test_api_section_errors_name_the_key(text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config_text(f"[api]\n{text}\n", "d.toml")
    assert err.value.key == key and words in str(err.value), str(err.value)


def test_connection_from_json_uses_the_file_rules() -> None:
    cfg = load_config_text('[daemon]\nlisten = ["192.0.2.1"]\n')
    conn = load_connection_data("x", {"remote_addrs": "192.0.2.2", "psk": "k",
                                      "local": {"id": "a@b.c"},
                                      "children": {"c": {"local_ts": ["10.0.0.0/8"]}}}, cfg)
    assert conn.remote_addrs == ("192.0.2.2",) and conn.children[0].name == "c"
    with pytest.raises(ConfigError) as err:
        load_connection_data("x", {"remote_addrs": ["192.0.2.2"], "rekey_time": "soon"}, cfg)
    assert err.value.key == "connections.x.rekey_time"
    with pytest.raises(ConfigError) as err:
        load_connection_data("bad name", {}, cfg)
    assert err.value.key == "connections.bad name"
    with pytest.raises(ConfigError, match="must be a table"):
        load_connection_data("x", [1], cfg)


# --- validation ----------------------------------------------------------------------------
def test_validator_names_the_field() -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["a"],
              "properties": {"a": {"type": "integer", "minimum": 1},
                             "b": {"anyOf": [{"type": "string", "format": "ipv4"},
                                             {"type": "string", "format": "ipv6"}]}}}
    check({"a": 1, "b": "::1"}, schema, "body")
    for value, field in (({}, "body.a"), ({"a": 0}, "body.a"), ({"a": True}, "body.a"),
                         ({"a": 1, "b": "x"}, "body.b"), ({"a": 1, "c": 1}, "body.c"),
                         ([], "body")):
        with pytest.raises(ApiError) as err:
            check(value, schema, "body")
        assert err.value.field == field and err.value.status == 400
    assert coerce("12", {"type": "integer"}, "q") == 12
    assert coerce("true", {"type": "boolean"}, "q") is True
    for text, schema2 in (("1.5", {"type": "integer"}), ("yes", {"type": "boolean"}),
                          ("nan", {"type": "number"})):
        with pytest.raises(ApiError):
            coerce(text, schema2, "q")


# --- selectors -----------------------------------------------------------------------------
def _child(local: tuple[str, ...], remote: tuple[str, ...]) -> ChildSaInfo:
    return ChildSaInfo(1, "c", 1, "esp", "transport", 0xC0000001, 0xC0000002, "aes128gcm16",
                       local, remote, False, "INSTALLED", 0.0)


def test_selector_parse_is_the_inverse_of_str() -> None:
    from ikev2.protocol.ts import TrafficSelector

    for ts in (TrafficSelector.from_network("10.0.0.0/8"),
               TrafficSelector.mh_type("2001:db8::1/128", 5),
               TrafficSelector.from_network("10.0.0.1/32", 17, 53, 53),
               TrafficSelector.from_network("10.0.0.1/32", 6, 1000, 2000),
               TrafficSelector.from_network("10.0.0.1/32", 47),
               TrafficSelector.from_range("10.0.0.1", "10.0.0.5")):
        r = selectors.parse_selector(str(ts))
        assert (r.proto, r.port_lo, r.port_hi) == (ts.ip_proto, ts.start_port, ts.end_port)
        assert (r.start, r.end) == (int(ts.start), int(ts.end))


def test_lookup_puts_the_type_on_the_source_side() -> None:
    import ipaddress

    c = _child(("2001:db8::10/128[mh/5]",), ("2001:db8::1/128[mh/6]",))
    hoa, ha = ipaddress.ip_address("2001:db8::10"), ipaddress.ip_address("2001:db8::1")
    bu = selectors.Packet(hoa, ha, 135, 5 << 8, None)
    ba = selectors.Packet(ha, hoa, 135, 6 << 8, None)
    assert selectors.match(c, bu) == ["out"]
    assert selectors.match(c, ba) == ["in"]
    assert selectors.match(c, selectors.Packet(hoa, ha, 135, 6 << 8, None)) == []
    assert selectors.match(c, selectors.Packet(hoa, None, 17, None, None)) == []
    icmp = _child(("10.0.0.1/32[1/2048-2303]",), ("10.0.0.2/32",))  # echo request, any code
    ping = selectors.Packet(ipaddress.ip_address("10.0.0.1"), None, 1, 8 << 8, None)
    assert selectors.match(icmp, ping) == ["out"]
    assert selectors.protocol_number("MH") == 135
    with pytest.raises(ValueError):
        selectors.protocol_number("warp")


# --- key files -----------------------------------------------------------------------------
def _spec(**kw: object) -> ChildSaSpec:
    base = dict(reqid=1, protocol=3, mode="tunnel", local="192.0.2.1", remote="192.0.2.2",
                spi_in=0xC0000001, spi_out=0xC0000002, encr_id=12, encr_key_bits=128,
                integ_id=12, esn=False, encr_key_in=b"\x01" * 16, encr_key_out=b"\x02" * 16,
                integ_key_in=b"\x03" * 32, integ_key_out=b"\x04" * 32, local_ts=(),
                remote_ts=())
    base.update(kw)
    return ChildSaSpec(**base)  # type: ignore[arg-type]


def test_esp_sa_lines() -> None:
    text, why = keyexport.esp_lines(_spec())
    assert why is None
    inbound, outbound = text.splitlines()
    assert inbound == ('"IPv4","192.0.2.2","192.0.2.1","0xc0000001","AES-CBC [RFC3602]","0x'
                       + "01" * 16 + '","HMAC-SHA-256-128 [RFC4868]","0x' + "03" * 32 + '"')
    assert outbound.startswith('"IPv4","192.0.2.1","192.0.2.2","0xc0000002"')
    v6, _ = keyexport.esp_lines(_spec(local="2001:db8::1", remote="2001:db8::2", encr_id=20,
                                      integ_id=0, integ_key_in=b"", integ_key_out=b""))
    assert v6.startswith('"IPv6"') and '"AES-GCM with 16 octet ICV [RFC4106]"' in v6
    assert v6.splitlines()[0].endswith('"NULL",""')
    _, why = keyexport.esp_lines(_spec(encr_id=28, integ_id=0))
    assert why is not None and "Wireshark" in why


def test_ike_table_line() -> None:
    keys = IkeKeyMaterial(bytes(range(8)), bytes(range(8, 16)), 20, 256, 0, b"\xaa" * 36,
                          b"\xbb" * 36, b"", b"")
    line, why = keyexport.ike_line(keys)
    assert why is None
    assert line == ('"0001020304050607","08090a0b0c0d0e0f","' + "aa" * 36 + '","' + "bb" * 36
                    + '","AES-GCM-256 with 16 octet ICV [RFC5282]","","","NONE [RFC4306]"\n')
    files = keyexport.build([_spec()], [keys], ike_missing=2)
    assert files.esp_sas == 2 and files.ike_sas == 1 and "2 IKE SA(s)" in files.skipped[0]


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", ".x", "a/b", "", "a" * 129, "..",
                                  "a..b", "x\0"])
def test_key_file_names_stay_in_the_directory(name: str) -> None:
    assert keyexport.check_file_name(name) is not None
    assert keyexport.check_file_name("esp_sa.2") is None


# --- IKE SA view: configuration payload ----------------------------------------------------
def test_7296_90_ike_view_shows_vips_and_home_prefix(tmp_path) -> None:
    """The assigned address as VICI's local-vips / remote-vips, the home prefix as
    home-prefix; both survive the state file."""
    from api import schemas, views
    from ikev2.core.events import IkeSaInfo
    from ikev2.daemon import statefile

    def info(**kw: object) -> IkeSaInfo:
        return IkeSaInfo(1, "home", "ESTABLISHED", True, ("2001:db8::1", 500),
                         ("2001:db8::2", 500), "mn@example.org", "ha.example.org", 1, 2,
                         "aes128gcm16-prfsha256-x25519", False, False, False, True, 5.0, (),
                         **kw)  # type: ignore[arg-type]

    sa = info(local_vips=("2001:db8:5::100",), home_prefix="2001:db8:5:1::/64")
    d = views.ike_view(sa, lambda t: t)
    assert d["local-vips"] == ["2001:db8:5::100"] and d["remote-vips"] == []
    assert d["home-prefix"] == "2001:db8:5:1::/64"
    for key in ("local-vips", "remote-vips", "home-prefix"):  # documented in the schema
        check(d[key], schemas.IKE_SA["properties"][key], key)
    plain = views.ike_view(info(), lambda t: t)
    assert plain["local-vips"] == [] and "home-prefix" not in plain
    statefile.write_state(tmp_path / "state.json", [sa])
    _, (back,) = statefile.read_state(tmp_path / "state.json")
    assert back.local_vips == ("2001:db8:5::100",) and back.home_prefix == "2001:db8:5:1::/64"
