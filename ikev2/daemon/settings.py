"""Daemon-level settings: what the asyncio adapter needs beyond the core's own config."""

from __future__ import annotations

from dataclasses import dataclass, field

from ikev2.config.model import ConnectionConfig, EngineConfig

LOG_LEVELS = ("debug", "info", "warning", "error")
KERNEL_BACKENDS = ("memory", "xfrm")


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

    def connection(self, name: str) -> ConnectionConfig:
        for conn in self.connections:
            if conn.name == name:
                return conn
        raise KeyError(name)
