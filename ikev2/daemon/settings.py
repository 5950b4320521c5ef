"""Daemon-level settings: what the asyncio adapter needs beyond the core's own config."""

from __future__ import annotations

from dataclasses import dataclass, field

from ikev2.config.model import ConnectionConfig, EngineConfig

LOG_LEVELS = ("debug", "info", "warning", "error")
KERNEL_BACKENDS = ("memory", "xfrm")
DEFAULT_TOKEN_FILE = "/etc/ikev2d/api.token"
DEFAULT_API_PORT = 7296


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The [api] section (docs/config.md, docs/api.md). Off unless the section exists."""

    enabled: bool = False
    listen: tuple[str, ...] = ("127.0.0.1",)  # TCP addresses; () = UNIX socket only
    port: int = DEFAULT_API_PORT  # 0: any free port (logged)
    unix_socket: str | None = None
    unix_socket_mode: int = 0o600
    token_file: str = DEFAULT_TOKEN_FILE
    max_body: int = 1 << 20  # octets of a request body
    client_timeout: float = 10.0  # seconds to send a request body
    max_streams: int = 32  # concurrent event streams
    key_export: bool = False  # Wireshark key files (docs/api.md); secrets leave the daemon
    key_export_dir: str | None = None  # where key files may be written
    # GET /child-sas/{id}/keys on the UNIX socket only, for local agents (docs/api.md);
    # key_export also enables it
    child_sa_keys: bool = False


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """A fully validated configuration file (built by `ikev2.config.loader`)."""

    listen: tuple[str, ...] = ("0.0.0.0", "::")
    ike_port: int = 500
    natt_port: int = 4500
    kernel: str = "memory"
    log_level: str = "info"
    state_file: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    connections: tuple[ConnectionConfig, ...] = ()
    source: str = ""
    api: ApiConfig = field(default_factory=ApiConfig)

    def connection(self, name: str) -> ConnectionConfig:
        for conn in self.connections:
            if conn.name == name:
                return conn
        raise KeyError(name)
