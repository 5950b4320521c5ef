"""`ikev2d` command line: run the daemon, check a config, or run the two-daemon demo.

    ikev2d --config FILE [--log-level LEVEL] [--check]
    ikev2d demo [--ike-port N] [--natt-port N] [--timeout S] [--keep] [--dir DIR]
                [--no-handover] [--move-to ADDR]

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from ikev2.daemon.settings import LOG_LEVELS, DaemonConfig
from ikev2.errors import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = "/etc/ikev2d/ikev2d.toml"
PROG = "ikev2d"


class StartupError(Exception):
    """A runtime failure before the daemon could run (exit code 1)."""


def make_kernel(config: DaemonConfig) -> object:
    """The configured kernel backend. Raises ConfigError for an unusable choice.

    xfrm: constructing it only checks that NETLINK_XFRM is usable (so `--check` changes
    nothing); stale entries of a crashed ikev2d go on first use, and everything ikev2d
    installed goes at exit (docs/kernel.md)."""
    if config.kernel == "memory":
        from ikev2.kernel.memory import MemoryKernel

        return MemoryKernel(random_bytes=os.urandom)
    if config.kernel == "xfrm":
        import atexit
        import errno

        from ikev2.errors import KernelError
        from ikev2.kernel.xfrm import XfrmKernel

        try:
            kernel = XfrmKernel()
        except KernelError as exc:
            why = (
                "needs root (CAP_NET_ADMIN) to program IPsec SAs and policies"
                if exc.errno == errno.EPERM
                else f"cannot use the kernel's XFRM netlink interface ({exc})"
            )
            raise ConfigError(
                f'kernel = "xfrm" {why}; run ikev2d as root on a kernel with '
                'CONFIG_XFRM_USER, or use kernel = "memory" (no kernel IPsec)',
                source=config.source,
                key="daemon.kernel",
            ) from None
        atexit.register(kernel.close)
        return kernel
    raise ConfigError(
        f"{config.kernel} backend not available (use kernel = \"memory\" or \"xfrm\")",
        source=config.source,
        key="daemon.kernel",
    )


def check_config(path: str) -> DaemonConfig:
    """Everything `--check` verifies: the file, and that its kernel backend exists."""
    from ikev2.config.loader import load_config

    config = load_config(path)
    make_kernel(config)
    return config


def source_address(remote: str) -> str:
    """The local address the routing table picks to reach `remote` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in remote else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((remote, 9))
        except OSError:
            return "::" if family == socket.AF_INET6 else "0.0.0.0"
        return str(s.getsockname()[0])


def make_engine(config: DaemonConfig, kernel: object) -> object:
    try:
        from ikev2.core.engine import Engine
    except ImportError as exc:
        raise StartupError(f"the IKE engine cannot be loaded: {exc}") from None
    import time  # wall clock for certificate validity; the engine's `now` is monotonic

    return Engine(config.engine, kernel, os.urandom, source_address,  # type: ignore[arg-type]
                  wall_time=time.time)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


async def serve(config: DaemonConfig, engine: object) -> int:
    """Run until SIGINT/SIGTERM, then shut down cleanly. Returns the exit code."""
    from ikev2.daemon.runner import Daemon, StartError
    from ikev2.daemon.sockets import BindError

    daemon = Daemon(config, engine)  # type: ignore[arg-type]
    try:
        daemon.open_sockets()
    except BindError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    api = None
    try:
        if config.api.enabled:
            api = await start_api(daemon, config)
            if api is None:
                return EXIT_FAILURE
        try:
            daemon.start()
        except StartError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        await stop.wait()
        logging.getLogger("ikev2d").info("%s received", received[0])
        await daemon.shutdown()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if api is not None:
            await api.stop()
        daemon.close()
    return EXIT_OK


async def start_api(daemon: object, config: DaemonConfig) -> object | None:
    """The REST API server ([api] section, docs/api.md), or None after printing why not."""
    from api.auth import TokenError
    from api.server import ApiServer

    api = ApiServer(daemon, config.api)
    try:
        await api.start()
    except TokenError as exc:
        print(f"{PROG}: {exc} (check api.token_file)", file=sys.stderr)
        return None
    except OSError as exc:
        where = ", ".join(f"{a}:{config.api.port}" for a in config.api.listen)
        if config.api.unix_socket:
            where += f" / {config.api.unix_socket}"
        print(f"{PROG}: cannot start the API on {where}: "
              f"{(exc.strerror or str(exc)).lower()} (check api.listen, api.port, "
              "api.unix_socket)", file=sys.stderr)
        return None
    return api


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="IKEv2 (RFC 7296) daemon. `ikev2d demo --help` for the two-daemon demo.",
    )
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG,
                   help=f"TOML configuration file (default {DEFAULT_CONFIG}; see docs/config.md)")
    p.add_argument("--log-level", choices=LOG_LEVELS,
                   help="override daemon.log_level from the config")
    p.add_argument("--check", action="store_true",
                   help="validate the configuration and exit (0 valid, 2 invalid)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["demo"]:
        from ikev2.daemon.demo import main as demo_main

        return demo_main(args_list[1:])
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        config = check_config(args.config)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        names = ", ".join(c.name for c in config.connections) or "none"
        print(f"{args.config}: OK ({len(config.connections)} connection(s): {names})")
        return EXIT_OK
    setup_logging(args.log_level or config.log_level)
    try:
        engine = make_engine(config, make_kernel(config))
        return asyncio.run(serve(config, engine))
    except StartupError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
