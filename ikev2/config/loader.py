"""Load and strictly validate the TOML configuration file (schema: docs/config.md).

Every problem raises `ikev2.errors.ConfigError` naming the file, the key path (e.g.
`connections.home.children.net.mode`, `connections.home.ike_proposals[0]`) and what to fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ikev2.config.model import (
    AuthConfig,
    AuthKind,
    ChildConfig,
    ConnectionConfig,
    CpConfig,
    Credential,
    DpdAction,
    EngineConfig,
    Identity,
    Mode,
    ProposalSpec,
    RetransmitConfig,
    StartAction,
    TsConfig,
)
from ikev2.daemon.settings import (
    DEFAULT_API_PORT,
    DEFAULT_TOKEN_FILE,
    KERNEL_BACKENDS,
    LOG_LEVELS,
    ApiConfig,
    DaemonConfig,
)
from ikev2.errors import ConfigError
from ikev2.protocol.enums import IdType, ProtocolId
from ikev2.protocol.ts import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_MH,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TrafficSelector,
)

__all__ = [
    "load_config",
    "load_config_text",
    "load_connection_data",
    "parse_bytes",
    "parse_duration",
    "parse_psk",
    "parse_ts",
]

ANY = "%any"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_FQDN_RE = re.compile(r"^[A-Za-z0-9_*]([A-Za-z0-9_.*-]*[A-Za-z0-9_])?\.?$")
_MISSING: Any = object()
T = TypeVar("T")

_PROTO_NAMES = {
    "tcp": IPPROTO_TCP,
    "udp": IPPROTO_UDP,
    "icmp": IPPROTO_ICMP,
    "icmpv6": IPPROTO_ICMPV6,
    "ipv6-icmp": IPPROTO_ICMPV6,
    "mh": IPPROTO_MH,
    "ipv6-mh": IPPROTO_MH,
    "sctp": 132,
    "gre": 47,
}
# protocols whose selectors carry real port numbers (TCP, UDP, DCCP, SCTP, UDP-Lite)
_PORT_PROTOCOLS = frozenset({IPPROTO_TCP, IPPROTO_UDP, 33, 132, 136})


# --- public entry points -------------------------------------------------------------
def load_config(path: str | Path) -> DaemonConfig:
    """Read and validate `path`; raises ConfigError (source=path) on any problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot read: {reason}", source=source) from None
    return load_config_text(text, source)


def load_config_text(text: str, source: str = "<config>") -> DaemonConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from None
    return _Loader(source).load(data)


def load_connection_data(
    name: str, data: object, config: DaemonConfig, source: str = "<api>",
    *, others: tuple[ConnectionConfig, ...] = (),
) -> ConnectionConfig:
    """One connection from a decoded `[connections.NAME]` table (the REST API sends it as
    JSON), checked exactly as in a file, against the daemon's listen addresses and ports.
    `others` are the connections already loaded (child names must stay unique)."""
    loader = _Loader(source)
    path = f"connections.{name}"
    if not _NAME_RE.match(name):
        raise loader.error(path, "connection names use letters, digits, '_', '.', '-' (max 64)")
    if not isinstance(data, dict):
        raise loader.error(path, f"must be a table (a JSON object), not {_describe(data)}")
    conn = loader._connection(
        _Table(loader, data, path), name, config.listen, config.ike_port, config.natt_port
    )
    owners = {c.name: o.name for o in others if o.name != name for c in o.children}
    for child in conn.children:
        if child.name in owners:
            raise loader.error(
                f"{path}.children.{child.name}",
                f"child name {child.name!r} is already used by connection "
                f"{owners[child.name]!r}; child names must be unique",
            )
    return conn


def parse_psk(text: str) -> bytes:
    """A PSK as UTF-8 text, or '0x…' hex (colons and spaces allowed between octets)."""
    if text.startswith(("0x", "0X")):
        digits = re.sub(r"[\s:]", "", text[2:])
        try:
            value = bytes.fromhex(digits)
        except ValueError:
            raise ValueError(
                "not valid hex after '0x' (write an even number of hex digits, or a text "
                "psk that does not start with 0x)"
            ) from None
    else:
        value = text.encode("utf-8")
    if not value:
        raise ValueError("the psk is empty")
    return value


_DURATION_RE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)$")
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_HINT = 'write seconds (90, 2.5) or a number with unit s, m, h or d ("90s", "30m", ' \
    '"4h", "1d")'
_SIZE_RE = re.compile(r"^(\d+)\s*(?:([kmgt])(?:i?b)?|b)?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MAX_COUNT = (1 << 64) - 1  # the kernel's byte/packet limits are 64-bit


def parse_duration(value: object) -> float:
    """Seconds from a TOML number (seconds) or a strongSwan-style string: '90', '90s',
    '30m', '4h', '1d', '1.5h'. Raises ValueError saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"must be a duration, not {_describe(value)}; {_DURATION_HINT}")
    if isinstance(value, str):
        m = _DURATION_RE.match(value.strip())
        if m is None:
            negative = value.strip().startswith("-")
            raise ValueError(
                f"{value!r} is not a duration"
                + (" (durations cannot be negative)" if negative else "")
                + f"; {_DURATION_HINT}"
            )
        return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    seconds = float(value)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a finite number of seconds")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative; durations are 0 or more seconds")
    return seconds


def parse_bytes(value: object) -> int:
    """A byte count from an integer or a string with a binary suffix: '512k', '100M',
    '4G', '1T' (also 'KiB', 'MB' spellings; 1k = 1024). Raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"must be a byte count (an integer, or a string like \"100M\"), not "
            f"{_describe(value)}"
        )
    if isinstance(value, str):
        m = _SIZE_RE.match(value.strip())
        if m is None:
            raise ValueError(
                f"{value!r} is not a byte count; write an integer or a number with suffix "
                'k, M, G or T (1k = 1024), e.g. "100M"'
            )
        value = int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]
    return _count_in_range(value)


def _count_in_range(value: int) -> int:
    if value < 0:
        raise ValueError(f"{value} is negative; use 0 for no limit")
    if value > MAX_COUNT:
        raise ValueError(f"{value} is larger than the kernel's 64-bit limit")
    return value


def format_duration(seconds: float) -> str:
    """A duration in the config syntax, for messages: '4h', '90m', '396s', '2.5s'."""
    seconds = round(seconds, 6)  # 3960.0000000000005 (rekey_time * 1.1) is 66m
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_ts(text: str) -> TsConfig:
    """'dynamic', a CIDR or address, or 'a-b', with an optional '[proto]' / '[proto/port]'
    suffix: '[tcp/80]', '[udp/1000-2000]', '[icmp/8]', '[mh/5]', '[135]'."""
    text = text.strip()
    if text == "dynamic":
        return TsConfig(dynamic=True)
    addr, proto_part = text, None
    if text.endswith("]"):
        addr, sep, proto_part = text[:-1].partition("[")
        if not sep:
            raise ValueError(f"unbalanced ']' in {text!r}")
    elif "[" in text:
        raise ValueError(f"missing ']' in {text!r}")
    addr = addr.strip()
    if not addr:
        raise ValueError(f"no address in {text!r}")
    if addr == "dynamic":
        raise ValueError(
            f"{text!r}: 'dynamic' takes no protocol or port; write this side's address "
            "with the suffix instead (e.g. '192.0.2.1[tcp/80]')"
        )
    if "-" in addr and "/" not in addr:
        start, _, end = addr.partition("-")
        try:
            a, b = ipaddress.ip_address(start.strip()), ipaddress.ip_address(end.strip())
        except ValueError:
            raise ValueError(f"{addr!r} is not an address range like 10.0.0.1-10.0.0.9") from None
        if a.version != b.version:
            raise ValueError(f"address range {addr!r} mixes IPv4 and IPv6")
        if a > b:
            raise ValueError(f"address range {addr!r} starts after it ends")
        version = a.version
        make: Callable[..., TrafficSelector] = lambda *p: TrafficSelector.from_range(  # noqa: E731
            str(a), str(b), *p
        )
    else:
        try:
            net = ipaddress.ip_network(addr, strict=True)
        except ValueError as exc:
            try:
                loose = ipaddress.ip_network(addr, strict=False)
            except ValueError:
                raise ValueError(
                    f"{addr!r} is not an address, CIDR prefix, 'a-b' range or 'dynamic'"
                ) from None
            if "host bits" in str(exc):
                raise ValueError(f"{addr!r} has host bits set (did you mean {loose}?)") from None
            raise ValueError(f"{addr!r}: {exc}") from None
        version = net.version
        make = lambda *p: TrafficSelector.from_network(str(net), *p)  # noqa: E731
    if proto_part is None:
        return TsConfig(selector=make())
    proto, ports = _parse_proto(proto_part.strip(), version)
    return TsConfig(selector=make(proto, *ports))


def _parse_proto(text: str, version: int) -> tuple[int, tuple[int, int]]:
    name, sep, port_text = text.partition("/")
    name = name.strip().lower()
    if name.isdigit():
        proto = int(name)
        if not 0 <= proto <= 255:
            raise ValueError(f"IP protocol {proto} is out of range 0-255")
    elif name in _PROTO_NAMES:
        proto = _PROTO_NAMES[name]
        if proto == IPPROTO_ICMP and version == 6:
            proto = IPPROTO_ICMPV6
        elif proto in (IPPROTO_ICMPV6, IPPROTO_MH) and version == 4:
            raise ValueError(
                f"{name!r} is an IPv6 protocol but the selector is IPv4"
                + (" (use 'icmp')" if proto == IPPROTO_ICMPV6 else "")
            )
    else:
        close = difflib.get_close_matches(name, list(_PROTO_NAMES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown protocol {name!r}{hint}; use a number 0-255 or one of "
            + ", ".join(sorted(_PROTO_NAMES))
        )
    port_text = port_text.strip()
    if not sep or port_text in ("", ANY, "any"):
        return proto, (0, 65535)
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        # RFC 4301 §4.4.1.1: ICMP type in the high octet, code in the low one
        icmp_type = _int_in(port_text, 0, 255, "ICMP type")
        return proto, (icmp_type << 8, (icmp_type << 8) | 0xFF)
    if proto == IPPROTO_MH:
        # RFC 4877 §4.3: MH type in the high octet
        mh = _int_in(port_text, 0, 255, "Mobility Header type")
        return proto, (mh << 8, mh << 8)
    if proto not in _PORT_PROTOCOLS:
        # RFC 7296 §3.13.1: protocols without ports (and protocol 0) carry 0-65535
        what = "any protocol (0)" if proto == 0 else f"IP protocol {proto}"
        raise ValueError(
            f"{what} has no ports; drop '/{port_text}' or name a protocol with ports "
            "(tcp, udp, sctp)"
        )
    lo, dash, hi = port_text.partition("-")
    start = _int_in(lo, 0, 65535, "port")
    end = _int_in(hi, 0, 65535, "port") if dash else start
    if start > end:
        raise ValueError(f"port range {port_text!r} starts after it ends")
    return proto, (start, end)


def _int_in(text: str, lo: int, hi: int, what: str) -> int:
    text = text.strip()
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise ValueError(f"{what} {text!r} is not a number {lo}-{hi}")
    return int(text)


# --- table walking -------------------------------------------------------------------
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", float: "a number",
               list: "a list", dict: "a table"}


class _Table:
    """One TOML table: typed lookups by key, then `done()` rejects the keys nobody took."""

    __slots__ = ("data", "loader", "path", "taken")

    def __init__(self, loader: _Loader, data: dict[str, Any], path: str) -> None:
        self.loader = loader
        self.data = data
        self.path = path
        self.taken: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> ConfigError:
        return self.loader.error(self.key(name), message)

    def get(self, name: str, kind: type[T], default: Any = _MISSING) -> T:
        self.taken.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.error(name, "missing (this key is required)")
            return default  # type: ignore[no-any-return]
        value = self.data[name]
        ok = isinstance(value, kind)
        if kind is int and isinstance(value, bool):
            ok = False
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.error(
                name, f"must be {_TYPE_NAMES.get(kind, kind.__name__)}, not {_describe(value)}"
            )
        return value  # type: ignore[no-any-return]

    def str_list(self, name: str, default: Any = _MISSING, *, allow_str: bool = True) -> list[str]:
        self.taken.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.error(name, "missing (this key is required)")
            return default  # type: ignore[no-any-return]
        value = self.data[name]
        if isinstance(value, str) and allow_str:
            return [value]
        if not isinstance(value, list):
            raise self.error(name, f"must be a list of strings, not {_describe(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{name}[{i}]", f"must be a string, not {_describe(item)}")
        return value

    def table(self, name: str, default: Any = _MISSING) -> _Table | None:
        raw = self.get(name, dict, default)
        if raw is None:
            return None
        return _Table(self.loader, raw, self.key(name))

    def port(self, name: str, default: int) -> int:
        value = self.get(name, int, default)
        if not 1 <= value <= 65535:
            raise self.error(name, f"port {value} is out of range 1-65535")
        return value

    def duration(self, name: str, default: Any) -> Any:
        """Seconds (float) from a number or a '30m'-style string; `default` when absent."""
        self.taken.add(name)
        if name not in self.data:
            return default
        try:
            return parse_duration(self.data[name])
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def byte_count(self, name: str, default: int = 0) -> int:
        self.taken.add(name)
        if name not in self.data:
            return default
        try:
            return parse_bytes(self.data[name])
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def count(self, name: str, default: int = 0) -> int:
        value = self.get(name, int, default)
        try:
            return _count_in_range(value)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            hint = _did_you_mean(value, choices)
            raise self.error(name, f"{value!r} is not one of {', '.join(choices)}" + hint)
        return value

    def done(self) -> None:
        for name in self.data:
            if name not in self.taken:
                known = sorted(self.taken)
                raise self.error(
                    name,
                    "unknown key" + (_did_you_mean(name, known) or
                                     f" (known keys here: {', '.join(known)})"),
                )


def _default(cls: type, name: str) -> Any:
    """A dataclass field's default (slots dataclasses keep none as class attributes)."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _did_you_mean(value: str, choices: Any) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- the schema ----------------------------------------------------------------------
class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, source=self.source, key=key)

    def load(self, data: dict[str, Any]) -> DaemonConfig:
        root = _Table(self, data, "")
        daemon = root.table("daemon", {})
        assert daemon is not None
        listen = self._listen(daemon)
        ike_port = daemon.port("ike_port", 500)
        natt_port = daemon.port("natt_port", 4500)
        if ike_port == natt_port:
            raise daemon.error("natt_port", f"must differ from ike_port ({ike_port})")
        kernel = daemon.choice("kernel", KERNEL_BACKENDS, "memory")
        log_level = daemon.choice("log_level", LOG_LEVELS, "info")
        state_file = daemon.get("state_file", str, None)
        if state_file is not None and not state_file.strip():
            raise daemon.error("state_file", "is empty (omit the key to write no state file)")
        daemon.done()

        engine = self._engine(root.table("engine", {}), ike_port, natt_port)
        conns_table = root.table("connections", {})
        assert conns_table is not None
        connections: list[ConnectionConfig] = []
        child_owner: dict[str, str] = {}
        for name in conns_table.data:
            sub = conns_table.table(name)
            assert sub is not None
            if not _NAME_RE.match(name):
                raise self.error(
                    sub.path, "connection names use letters, digits, '_', '.', '-' (max 64)"
                )
            conn = self._connection(sub, name, listen, ike_port, natt_port)
            for child in conn.children:
                if child.name in child_owner:
                    raise self.error(
                        f"{sub.path}.children.{child.name}",
                        f"child name {child.name!r} is already used by connection "
                        f"{child_owner[child.name]!r}; child names must be unique (logs and "
                        "ikev2ctl name children alone)",
                    )
                child_owner[child.name] = name
            connections.append(conn)
        api_table = root.table("api", None)
        api = self._api(api_table) if api_table is not None else ApiConfig()
        root.done()
        return DaemonConfig(
            listen=listen,
            ike_port=ike_port,
            natt_port=natt_port,
            kernel=kernel,
            log_level=log_level,
            state_file=state_file,
            engine=engine,
            connections=tuple(connections),
            source=self.source,
            api=api,
        )

    def _api(self, t: _Table) -> ApiConfig:
        """[api]: the REST API (docs/api.md); present means enabled unless enabled = false."""
        enabled = t.get("enabled", bool, True)
        raw = t.str_list("listen", ["127.0.0.1"])
        listen: list[str] = []
        for i, text in enumerate(raw):
            try:
                norm = str(ipaddress.ip_address(text.strip()))
            except ValueError:
                raise t.error(
                    f"listen[{i}]", f"{text!r} is not an IPv4 or IPv6 address (host names are "
                    "not resolved)"
                ) from None
            if norm in listen:
                raise t.error(f"listen[{i}]", f"{norm} is listed twice")
            listen.append(norm)
        port = t.get("port", int, DEFAULT_API_PORT)
        if not 0 <= port <= 65535:
            raise t.error("port", f"port {port} is out of range 0-65535 (0: any free port)")
        unix_socket = self._path(t, "unix_socket", None)
        mode = t.get("unix_socket_mode", int, 0o600)
        if not 0 <= mode <= 0o777:
            raise t.error("unix_socket_mode", f"{mode:#o} is not a file mode 0o000-0o777")
        if enabled and not listen and unix_socket is None:
            raise t.error(
                "listen", "is empty and no unix_socket is set: the API would be unreachable "
                "(set enabled = false to turn it off)"
            )
        token_file = self._path(t, "token_file", DEFAULT_TOKEN_FILE)
        max_body = t.byte_count("max_body", 1 << 20)
        if not 1024 <= max_body <= 64 << 20:
            raise t.error("max_body", f"{max_body} is out of range 1k-64M")
        timeout = self._positive(t, "client_timeout", 10.0)
        max_streams = t.get("max_streams", int, 32)
        if not 0 <= max_streams <= 10000:
            raise t.error("max_streams", f"{max_streams} is out of range 0-10000")
        key_export = t.get("key_export", bool, False)
        key_dir = self._path(t, "key_export_dir", None)
        if key_export and key_dir is None:
            raise t.error(
                "key_export_dir", "missing: key_export = true needs the directory the key "
                "files may be written to"
            )
        child_sa_keys = t.get("child_sa_keys", bool, False)
        if child_sa_keys and unix_socket is None:
            raise t.error(
                "child_sa_keys", "needs unix_socket: CHILD_SA keys are served on the UNIX "
                "socket only"
            )
        t.done()
        return ApiConfig(
            enabled=enabled, listen=tuple(listen), port=port, unix_socket=unix_socket,
            unix_socket_mode=mode, token_file=token_file, max_body=max_body,
            client_timeout=timeout, max_streams=max_streams, key_export=key_export,
            key_export_dir=key_dir, child_sa_keys=child_sa_keys,
        )

    @staticmethod
    def _path(t: _Table, name: str, default: Any) -> Any:
        value = t.get(name, str, default)
        if value is not None and (not value.strip() or "\0" in value):
            raise t.error(name, "is empty (omit the key instead)" if not value.strip()
                          else "contains a NUL character")
        return value

    def _listen(self, daemon: _Table) -> tuple[str, ...]:
        raw = daemon.str_list("listen", ["0.0.0.0", "::"])
        if not raw:
            raise daemon.error("listen", "is empty: give at least one address to bind")
        out: list[str] = []
        for i, text in enumerate(raw):
            try:
                ip = ipaddress.ip_address(text.strip())
            except ValueError:
                raise daemon.error(
                    f"listen[{i}]", f"{text!r} is not an IPv4 or IPv6 address"
                ) from None
            norm = str(ip)
            if norm in out:
                raise daemon.error(f"listen[{i}]", f"{norm} is listed twice")
            out.append(norm)
        for version, wildcard in ((4, "0.0.0.0"), (6, "::")):
            specific = [a for a in out if ipaddress.ip_address(a).version == version
                        and a != wildcard]
            if wildcard in out and specific:
                raise daemon.error(
                    "listen",
                    f"{specific[0]} is already covered by the wildcard {wildcard}; "
                    "list either the wildcard or specific addresses",
                )
        return tuple(out)

    def _engine(self, table: _Table | None, ike_port: int, natt_port: int) -> EngineConfig:
        assert table is not None
        d = EngineConfig()
        nonce = table.get("nonce_size", int, d.nonce_size)
        if not 16 <= nonce <= 256:
            raise table.error("nonce_size", "must be 16-256 octets (RFC 7296 §2.10)")
        half_open = self._positive(table, "half_open_timeout", d.half_open_timeout)
        cookie = table.get("cookie_threshold", int, d.cookie_threshold)
        if cookie < 0:
            raise table.error("cookie_threshold", "must be 0 or more")
        block = table.get("block_threshold", int, d.block_threshold)
        if block < 0:
            raise table.error("block_threshold", "must be 0 (off) or more")
        rotation = self._positive(table, "cookie_rotation", d.cookie_rotation)
        cache = self._positive(table, "response_cache_time", d.response_cache_time)
        table.done()
        return EngineConfig(
            ike_port=ike_port,
            natt_port=natt_port,
            nonce_size=nonce,
            half_open_timeout=half_open,
            cookie_threshold=cookie,
            block_threshold=block,
            cookie_rotation=rotation,
            response_cache_time=cache,
        )

    @staticmethod
    def _positive(table: _Table, name: str, default: float) -> float:
        value: float = table.duration(name, default)
        if value <= 0:
            raise table.error(name, f"must be more than 0 seconds, not {value:g}")
        return value

    def _addrs(self, table: _Table, name: str, default: Any) -> tuple[str, ...]:
        raw = table.str_list(name, default)
        if not raw:
            raise table.error(name, f"is empty (use [\"{ANY}\"] to accept any address)")
        out: list[str] = []
        for i, text in enumerate(raw):
            text = text.strip()
            if text == ANY:
                out.append(ANY)
                continue
            try:
                out.append(str(ipaddress.ip_address(text)))
            except ValueError:
                raise table.error(
                    f"{name}[{i}]",
                    f"{text!r} is not an IP address or {ANY!r} (host names are not resolved)",
                ) from None
        if ANY in out and len(out) > 1:
            raise table.error(name, f"{ANY!r} cannot be combined with other addresses")
        return tuple(out)

    def _connection(
        self, t: _Table, name: str, listen: tuple[str, ...], ike_port: int, natt_port: int
    ) -> ConnectionConfig:
        local_addrs = self._addrs(t, "local_addrs", [ANY])
        remote_addrs = self._addrs(t, "remote_addrs", _MISSING)
        concrete_local = [a for a in local_addrs if a != ANY]
        concrete_remote = [a for a in remote_addrs if a != ANY]
        for addr in concrete_local:
            version = ipaddress.ip_address(addr).version
            wildcard = "0.0.0.0" if version == 4 else "::"
            if wildcard not in listen and addr not in listen:
                raise t.error(
                    "local_addrs",
                    f"{addr} is not among daemon.listen ({', '.join(listen)}); add it there",
                )
        if concrete_local and concrete_remote:
            lv = {ipaddress.ip_address(a).version for a in concrete_local}
            rv = {ipaddress.ip_address(a).version for a in concrete_remote}
            if not lv & rv:
                raise t.error(
                    "remote_addrs", "no address family in common with local_addrs"
                )
        local_port = t.port("local_port", ike_port)
        if local_port not in (ike_port, natt_port):
            raise t.error(
                "local_port",
                f"{local_port}: ikev2d listens on daemon.ike_port ({ike_port}) and "
                f"daemon.natt_port ({natt_port}) only; use one of them or omit the key",
            )
        remote_port = t.port("remote_port", ike_port)
        ike_proposals = self._proposals(t, "ike_proposals", ProtocolId.IKE)
        encap = t.get("encap", bool, False)
        mobike = t.get("mobike", bool, True)
        fragmentation = t.get("fragmentation", bool, True)
        fragment_size = self._fragment_size(t)
        initial_contact = t.get("send_initial_contact", bool, True)
        psk_text = t.get("psk", str, None)
        psk = self._psk(t, "psk", psk_text) if psk_text is not None else None
        retransmit = self._retransmit(t.table("retransmit", {}))
        lifetimes = self._ike_lifetimes(t)
        dpd_delay: float = t.duration("dpd_delay", 0.0)
        dpd_action = DpdAction(
            t.choice("dpd_action", tuple(a.value for a in DpdAction), DpdAction.CLEAR.value)
        )
        cp = self._cp(t)

        local_t = t.table("local", {})
        remote_t = t.table("remote", {})
        assert local_t is not None and remote_t is not None
        default_local_id = concrete_local[0] if len(concrete_local) == 1 else None
        local = self._auth(local_t, psk, default_local_id, remote_side=False)
        remote = self._auth(remote_t, psk, None, remote_side=True)

        children_t = t.table("children", {})
        assert children_t is not None
        children = []
        for child_name in children_t.data:
            sub = children_t.table(child_name)
            assert sub is not None
            if not _NAME_RE.match(child_name):
                raise self.error(
                    sub.path, "child names use letters, digits, '_', '.', '-' (max 64)"
                )
            children.append(self._child(sub, child_name))
        children_t.done()
        t.done()

        if not concrete_remote and any(c.start_action is StartAction.INITIATE for c in children):
            raise t.error(
                "remote_addrs", f"start_action = \"initiate\" needs a peer address, not {ANY}"
            )
        return ConnectionConfig(
            name=name,
            local_addrs=local_addrs,
            remote_addrs=remote_addrs,
            local=local,
            remote=remote,
            ike_proposals=ike_proposals,
            children=tuple(children),
            local_port=local_port,
            remote_port=remote_port,
            encap=encap,
            mobike=mobike,
            fragmentation=fragmentation,
            fragment_size=fragment_size,
            send_initial_contact=initial_contact,
            retransmit=retransmit,
            rekey_time=lifetimes[0],
            reauth_time=lifetimes[1],
            over_time=lifetimes[2],
            rand_time=lifetimes[3],
            dpd_delay=dpd_delay,
            dpd_action=dpd_action,
            cp=cp,
        )

    @staticmethod
    def _cp(t: _Table) -> CpConfig | None:
        """The configuration payload of IKE_AUTH (RFC 7296 §2.19, RFC 5026 §4.4). Initiator:
        vips (\"::\" = any IPv6 address, else a hint), request_home_prefix. Responder:
        assign_address, assign_home_prefix, home_prefix_lifetime. None when all absent."""
        keys = ("vips", "request_home_prefix", "assign_address", "assign_home_prefix",
                "home_prefix_lifetime")
        if not any(k in t.data for k in keys):
            return None
        vips = []
        for i, text in enumerate(t.str_list("vips", [])):
            key = f"vips[{i}]"
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:
                raise t.error(key, f"{text!r} is not an IP address; write \"::\" to ask for "
                                   "any IPv6 address, or the address you want") from None
            if addr.version != 6:
                raise t.error(key, f"{text}: only IPv6 virtual IPs are requested "
                                   "(INTERNAL_IP6_ADDRESS); write \"::\" or an IPv6 address")
            if addr.is_multicast or addr.is_link_local:
                raise t.error(key, f"{text} cannot be assigned to a host; write \"::\" or a "
                                   "global/unique-local IPv6 address")
            if addr in vips:
                raise t.error(key, f"{text} is listed twice")
            vips.append(addr)
        request_prefix = t.get("request_home_prefix", bool, False)
        assign_text = t.get("assign_address", str, None)
        assign = None
        if assign_text is not None:
            try:
                assign = ipaddress.ip_address(assign_text)
            except ValueError:
                raise t.error("assign_address", f"{assign_text!r} is not an IP address; "
                              "write the peer's IPv6 address, e.g. \"2001:db8:1::100\"") \
                    from None
            if assign.version != 6 or assign.is_unspecified or assign.is_multicast \
                    or assign.is_link_local:
                raise t.error("assign_address", f"{assign_text}: assign a unicast, "
                              "non-link-local IPv6 address (INTERNAL_IP6_ADDRESS)")
        prefix_text = t.get("assign_home_prefix", str, None)
        prefix = None
        if prefix_text is not None:
            try:
                prefix = ipaddress.ip_network(prefix_text, strict=True)
            except ValueError as exc:
                raise t.error("assign_home_prefix", f"{prefix_text!r}: {exc}; write an IPv6 "
                              "prefix with zero host bits, e.g. \"2001:db8:1:1::/64\"") \
                    from None
            if prefix.version != 6 or prefix.is_link_local or prefix.is_multicast:
                raise t.error("assign_home_prefix", f"{prefix_text}: a home prefix is a "
                              "global or unique-local IPv6 prefix (RFC 5026 §4.4)")
        lifetime = t.duration("home_prefix_lifetime", None)
        if lifetime is not None:
            if prefix is None:
                raise t.error("home_prefix_lifetime", "only used with assign_home_prefix")
            if not 0 <= lifetime <= 0xFFFFFFFF:
                raise t.error("home_prefix_lifetime", "must be 0 to 4294967295 seconds")
        return CpConfig(
            vips=tuple(vips),
            request_home_prefix=request_prefix,
            assign_address=assign,
            assign_home_prefix=prefix,
            home_prefix_lifetime=int(lifetime) if lifetime is not None
            else _default(CpConfig, "home_prefix_lifetime"),
        )

    def _ike_lifetimes(self, t: _Table) -> tuple[float, float, float | None, float | None]:
        """rekey_time, reauth_time, over_time, rand_time of an IKE SA (RFC 7296 §2.8)."""
        rekey: float = t.duration("rekey_time", _default(ConnectionConfig, "rekey_time"))
        reauth: float = t.duration("reauth_time", _default(ConnectionConfig, "reauth_time"))
        over: float | None = t.duration("over_time", None)
        rand: float | None = t.duration("rand_time", None)
        renew = min((x for x in (rekey, reauth) if x > 0), default=0.0)
        if rand is not None and renew > 0 and rand >= renew:
            which = "rekey_time" if renew == rekey else "reauth_time"
            raise t.error(
                "rand_time",
                f"{format_duration(rand)} must be less than {which} "
                f"({format_duration(renew)}): the jitter is subtracted from it; lower "
                f"rand_time or raise {which}",
            )
        return rekey, reauth, over, rand

    def _retransmit(self, t: _Table | None) -> RetransmitConfig:
        assert t is not None
        d = RetransmitConfig()
        timeout = self._positive(t, "timeout", d.timeout)
        base = t.get("base", float, d.base)
        if base < 1.0:
            raise t.error("base", f"must be 1.0 or more, not {base}")
        tries = t.get("tries", int, d.tries)
        if tries < 0:
            raise t.error("tries", "must be 0 or more")
        max_interval = self._positive(t, "max_interval", d.max_interval)
        t.done()
        return RetransmitConfig(timeout, base, tries, max_interval)

    def _psk(self, t: _Table, name: str, text: str) -> bytes:
        try:
            return parse_psk(text)
        except ValueError as exc:
            raise t.error(name, str(exc)) from None

    def _auth(
        self, t: _Table, shared_psk: bytes | None, default_id: str | None, *, remote_side: bool
    ) -> AuthConfig:
        """[connections.X.local] / [connections.X.remote]: id, auth = "psk" (psk) or
        "pubkey" (local: certs, key, key_passphrase_file; remote: cacerts, crls). Files are
        read here; relative paths are relative to the config file's directory."""
        id_text = t.get("id", str, None)
        auth_text = t.choice("auth", tuple(k.value for k in AuthKind), AuthKind.PSK.value)
        auth = AuthKind(auth_text)
        psk_text = t.get("psk", str, None)
        psk = self._psk(t, "psk", psk_text) if psk_text is not None else shared_psk
        pubkey = auth is AuthKind.PUBKEY
        for name in ("certs", "key", "key_passphrase_file", "cacerts", "crls"):
            if name in t.data and not pubkey:
                raise t.error(name, f"only used with auth = \"pubkey\" (this side has auth = "
                                    f"\"{auth.value}\")")
        if pubkey and psk_text is not None:
            raise t.error("psk", "this side has auth = \"pubkey\"; its psk would be unused")
        credentials: tuple[Credential, ...] = ()
        trust = None
        if pubkey and remote_side:
            for name in ("certs", "key", "key_passphrase_file"):
                if name in t.data:
                    raise t.error(name, "our certificate and key belong in the local side; "
                                        "the remote side takes cacerts and crls")
            trust = self._trust(t)
        elif pubkey:
            for name in ("cacerts", "crls"):
                if name in t.data:
                    raise t.error(name, "the CAs we trust for the peer belong in the remote "
                                        "side; the local side takes certs and key")
            credentials = self._credentials(t)
        if id_text is None or (remote_side and id_text.strip() == ANY):
            if remote_side:
                identity = None
            elif credentials:
                # the certificate's subject DN: always bound to it (RFC 7296 §3.5)
                identity = Identity(
                    IdType.ID_DER_ASN1_DN,
                    credentials[0].chain.end_entity.subject.public_bytes(),
                )
            elif default_id is not None:
                identity = Identity.parse(default_id)
            else:
                raise t.error(
                    "id",
                    "missing: set this side's identity (it defaults to the local address only "
                    "when local_addrs holds exactly one address)",
                )
        else:
            identity = self._identity(t, id_text)
            if credentials:
                self._id_in_certificates(t, identity, credentials)
        t.done()
        if auth is AuthKind.PSK and psk is None:
            parent = t.path.rsplit(".", 1)[0]
            raise t.error("psk", f"auth = \"psk\" needs a key: set {parent}.psk (both sides) "
                                 f"or {t.path}.psk")
        return AuthConfig(id=identity, auth=auth, psk=None if pubkey else psk,
                          credentials=credentials, trust=trust)

    @staticmethod
    def _fragment_size(t: _Table) -> int | None:
        """fragment_size: the largest IP datagram of an IKE fragment (RFC 7383 §2.5.1);
        absent or 0: 1280 over IPv6, 576 over IPv4."""
        from ikev2.core.fragments import MAX_SIZE, MIN_SIZE

        value = t.get("fragment_size", int, 0)
        if value == 0:
            return None
        if not MIN_SIZE <= value <= MAX_SIZE:
            raise t.error("fragment_size", f"{value} is out of range {MIN_SIZE}-{MAX_SIZE} "
                                           "(octets of IP datagram; 0 for the default)")
        return value

    def _base_dir(self) -> Path:
        """Relative certificate/key paths resolve against the config file's directory
        (the working directory for text or API input)."""
        source = Path(self.source)
        return source.parent if source.is_file() else Path.cwd()

    def _read(self, t: _Table, key: str, path_text: str) -> tuple[bytes, str]:
        if not path_text.strip() or "\0" in path_text:
            raise t.error(key, "is empty" if not path_text.strip() else "contains a NUL")
        path = Path(path_text).expanduser()
        if not path.is_absolute():
            path = self._base_dir() / path
        try:
            return path.read_bytes(), str(path)
        except FileNotFoundError:
            raise t.error(key, f"{path}: file not found") from None
        except OSError as exc:
            raise t.error(key, f"{path}: cannot read: {exc.strerror or exc}") from None

    def _cert_files(self, t: _Table, key: str, paths: list[str]) -> list[Any]:
        from ikev2.crypto.certs import CertificateError, load_certificates

        out = []
        for i, text in enumerate(paths):
            k = f"{key}[{i}]"
            data, where = self._read(t, k, text)
            try:
                out += load_certificates(data, source=where)
            except CertificateError as exc:
                raise t.error(k, str(exc)) from None
        return out

    def _credentials(self, t: _Table) -> tuple[Credential, ...]:
        """certs = ["cert.pem", "intermediate.pem"] (end entity first; a file may hold a
        whole chain), or a list of such lists for several chains; key = "key.pem" (or a
        list: one key per distinct end-entity key); key_passphrase_file."""
        from cryptography.hazmat.primitives import serialization

        from ikev2.crypto.certs import CertChain, KeyLoadError, format_dn, load_private_key

        t.taken.update(("certs", "key"))
        raw = t.data.get("certs")
        if raw is None:
            raise t.error("certs", 'missing: auth = "pubkey" needs our certificate (and its '
                                   'intermediates), e.g. certs = ["cert.pem"]')
        if isinstance(raw, str):
            chains_raw: list[tuple[str, list[str]]] = [("certs", [raw])]
        elif isinstance(raw, list) and raw and all(isinstance(x, list) for x in raw):
            chains_raw = [(f"certs[{i}]", x) for i, x in enumerate(raw)]
        elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
            chains_raw = [("certs", raw)]
        else:
            raise t.error("certs", "must be a list of certificate files (end entity first), "
                                   "or a list of such lists, not " + _describe(raw))
        key_raw = t.data.get("key")
        if key_raw is None:
            raise t.error("key", 'missing: auth = "pubkey" needs the private key of the '
                                 'certificate, e.g. key = "key.pem"')
        key_paths = [key_raw] if isinstance(key_raw, str) else key_raw
        if not isinstance(key_paths, list) or not key_paths or not all(
            isinstance(x, str) for x in key_paths
        ):
            raise t.error("key", "must be a file name or a list of file names")
        passphrase = None
        pass_file = t.get("key_passphrase_file", str, None)
        if pass_file is not None:
            data, _ = self._read(t, "key_passphrase_file", pass_file)
            passphrase = data.rstrip(b"\r\n")
        keys = []
        for i, text in enumerate(key_paths):
            k = "key" if isinstance(key_raw, str) else f"key[{i}]"
            data, where = self._read(t, k, text)
            try:
                keys.append((k, load_private_key(data, passphrase, source=where)))
            except KeyLoadError as exc:
                raise t.error(k, str(exc)) from None

        def spki(key: Any) -> bytes:
            return key.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)

        used: set[str] = set()
        out: list[Credential] = []
        for key_name, paths in chains_raw:
            if not paths or not all(isinstance(x, str) for x in paths):
                raise t.error(key_name, "must be a non-empty list of certificate files")
            found = self._cert_files(t, key_name, paths)
            ee, rest = found[0], found[1:]
            anchor = None
            if rest and rest[-1].subject == rest[-1].issuer:
                anchor, rest = rest[-1], rest[:-1]  # a root is never sent (RFC 7296 §3.6)
            want = spki(ee.public_key())
            match = next(((k, key) for k, key in keys if spki(key.public_key()) == want), None)
            if match is None:
                where = "key" if len(keys) == 1 else "key (any of them)"
                raise t.error(where, f"the private key does not belong to the certificate "
                                     f"{format_dn(ee.subject)} of {t.key(key_name)}")
            used.add(match[0])
            chain = CertChain(ee, tuple(rest), anchor)
            out.append(Credential(chain, match[1]))
        for k, _key in keys:
            if k not in used:
                raise t.error(k, "belongs to none of the certificates in certs")
        return tuple(out)

    def _trust(self, t: _Table) -> Any:
        """cacerts = ["ca.pem", ...] (the trust anchors; a file may hold several), crls."""
        from ikev2.crypto.certs import CertificateError, TrustStore, load_crl

        paths = t.str_list("cacerts", None)
        if not paths:
            raise t.error("cacerts", 'missing: auth = "pubkey" on the remote side needs the '
                                     'CA certificates to trust, e.g. cacerts = ["ca.pem"]')
        anchors = self._cert_files(t, "cacerts", paths)
        crls = []
        for i, text in enumerate(t.str_list("crls", [])):
            data, where = self._read(t, f"crls[{i}]", text)
            try:
                crls.append(load_crl(data, source=where))
            except CertificateError as exc:
                raise t.error(f"crls[{i}]", str(exc)) from None
        return TrustStore(tuple(anchors), tuple(crls))

    @staticmethod
    def _id_in_certificates(t: _Table, identity: Identity,
                            credentials: tuple[Credential, ...]) -> None:  # fmt: skip
        """Our ID must be bound to every chain we may send, or the peer refuses it."""
        from ikev2.crypto.certs import IdentityMismatch, match_identity

        for cred in credentials:
            try:
                match_identity(cred.chain.end_entity, identity.id_type, identity.data)
            except IdentityMismatch as exc:
                raise t.error("id", f"{identity} is not in our certificate: {exc}") from None

    def _identity(self, t: _Table, text: str) -> Identity:
        try:
            identity = Identity.parse(text)
        except ValueError as exc:
            raise t.error("id", f"bad identity {text!r}: {exc}") from None
        value = identity.data.decode("utf-8", "replace")
        if identity.id_type == IdType.ID_FQDN and not _FQDN_RE.match(value):
            raise t.error(
                "id",
                f"bad identity {text!r}: not an FQDN, address or email (prefix 'keyid:' "
                "for an opaque identity)",
            )
        if identity.id_type == IdType.ID_RFC822_ADDR:
            user, _, domain = value.rpartition("@")
            if not user or not domain or any(c.isspace() for c in value):
                raise t.error("id", f"bad identity {text!r}: not an email address (user@domain)")
        if identity.id_type == IdType.ID_KEY_ID and not identity.data:
            raise t.error("id", f"bad identity {text!r}: empty key id")
        return identity

    def _proposals(self, t: _Table, name: str, protocol: ProtocolId) -> tuple[ProposalSpec, ...]:
        texts = t.str_list(name, ["default"])
        if not texts:
            raise t.error(name, 'is empty (omit it or write ["default"])')
        parse_proposal, default_proposals = _proposal_parser(self, t.key(name))
        out: list[ProposalSpec] = []
        for i, text in enumerate(texts):
            if text.strip() == "default":
                out.extend(p for p in default_proposals(protocol) if p not in out)
                continue
            try:
                spec = parse_proposal(text, protocol)
            except ValueError as exc:
                raise t.error(f"{name}[{i}]", str(exc)) from None
            if spec in out:
                raise t.error(f"{name}[{i}]", f"{text!r} repeats an earlier proposal")
            out.append(tuple(spec))
        return tuple(out)

    def _child(self, t: _Table, name: str) -> ChildConfig:
        local_ts = self._ts_list(t, "local_ts")
        remote_ts = self._ts_list(t, "remote_ts")
        mode = Mode(t.choice("mode", tuple(m.value for m in Mode), Mode.TUNNEL.value))
        esp = self._proposals(t, "esp_proposals", ProtocolId.ESP)
        start = StartAction(
            t.choice("start_action", tuple(s.value for s in StartAction), StartAction.NONE.value)
        )
        replay = t.get("replay_window", int, 32)
        if not 0 <= replay <= 4096:
            raise t.error("replay_window", f"{replay} is out of range 0-4096")
        install_policies = t.get("install_policies", bool, True)
        rekey, life, rand = self._child_lifetimes(t)
        rekey_bytes, life_bytes = self._limits(t, "bytes", t.byte_count)
        rekey_packets, life_packets = self._limits(t, "packets", t.count)
        t.done()
        return ChildConfig(
            name=name,
            local_ts=local_ts,
            remote_ts=remote_ts,
            mode=mode,
            esp_proposals=esp,
            start_action=start,
            replay_window=replay,
            install_policies=install_policies,
            rekey_time=rekey,
            life_time=life,
            rand_time=rand,
            rekey_bytes=rekey_bytes,
            rekey_packets=rekey_packets,
            life_bytes=life_bytes,
            life_packets=life_packets,
        )

    @staticmethod
    def _child_lifetimes(t: _Table) -> tuple[float, float | None, float | None]:
        """rekey_time, life_time, rand_time of a CHILD_SA (RFC 7296 §2.8, RFC 4301 §4.4.2.1)."""
        rekey: float = t.duration("rekey_time", _default(ChildConfig, "rekey_time"))
        life: float | None = t.duration("life_time", None)
        rand: float | None = t.duration("rand_time", None)
        if rekey > 0 and life is not None and life <= rekey:
            raise t.error(
                "life_time",
                f"{format_duration(life)} must be greater than rekey_time "
                f"({format_duration(rekey)}), or the CHILD_SA expires before it is rekeyed; "
                "raise life_time or lower rekey_time",
            )
        if rekey > 0 and rand is not None:
            if rand >= rekey:
                raise t.error(
                    "rand_time",
                    f"{format_duration(rand)} must be less than rekey_time "
                    f"({format_duration(rekey)}): the jitter is subtracted from it",
                )
            window = round((life if life is not None else rekey * 1.1) - rekey, 6)
            if rand > window:
                default = "" if life is not None else ", with the default life_time of 110 % " \
                    "of rekey_time; set life_time to widen it"
                raise t.error(
                    "rand_time",
                    f"{format_duration(rand)} is more than life_time - rekey_time "
                    f"({format_duration(window)}{default}); lower rand_time",
                )
        return rekey, life, rand

    @staticmethod
    def _limits(t: _Table, unit: str, read: Callable[[str], int]) -> tuple[int, int]:
        """rekey_<unit>, life_<unit>: soft and hard volume limits (0: none)."""
        soft, hard = read(f"rekey_{unit}"), read(f"life_{unit}")
        if soft and hard and hard <= soft:
            raise t.error(
                f"life_{unit}",
                f"{hard} must be greater than rekey_{unit} ({soft}), or the CHILD_SA expires "
                f"before it is rekeyed; raise life_{unit} or lower rekey_{unit}",
            )
        return soft, hard

    def _ts_list(self, t: _Table, name: str) -> tuple[TsConfig, ...]:
        texts = t.str_list(name, ["dynamic"])
        if not texts:
            raise t.error(name, 'is empty (omit it or write ["dynamic"])')
        out = []
        for i, text in enumerate(texts):
            try:
                out.append(parse_ts(text))
            except ValueError as exc:
                raise t.error(f"{name}[{i}]", str(exc)) from None
        return tuple(out)


def _proposal_parser(loader: _Loader, key: str) -> tuple[Any, Any]:
    try:
        from ikev2.crypto.proposals import default_proposals, parse_proposal
    except ImportError as exc:
        raise loader.error(
            key, f"cannot check algorithm proposals: ikev2.crypto.proposals unavailable ({exc})"
        ) from None
    return parse_proposal, default_proposals
