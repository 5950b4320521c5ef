"""`ikev2-mip6`: the Mobile IPv6 agents next to ikev2d (docs/mobility.md "Agents").

    ikev2-mip6 mn --config mn.toml [--log-level info]     # mobile node agent
    ikev2-mip6 ha --config ha.toml [--log-level info]     # home agent
    ikev2-mip6 layout --config FILE                       # its ikev2d [connections] (TOML)
    ikev2-mip6 check --config FILE                        # validate the file
    ikev2-mip6 bindings [--status FILE] [--json]          # as `ikev2ctl bindings`

Exit codes: 0 ok (an agent stopped by SIGTERM/SIGINT), 1 runtime failure (API or socket),
2 bad command line or config.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence

from mobility.agent_config import (
    AgentConfig,
    AgentConfigError,
    HaAgentConfig,
    load_agent_config,
)
from mobility.errors import MobilityError

PROG = "ikev2-mip6"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Mobile IPv6 agents (RFC 4877 K bit, "
                                "MH over UDP) driving ikev2d through its REST API.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_ in (("mn", "run the mobile node agent"), ("ha", "run the home agent"),
                        ("layout", "print the ikev2d connection(s) for this config"),
                        ("check", "validate the config file")):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", required=True, metavar="FILE")
        if name in ("mn", "ha"):
            sp.add_argument("--log-level", default="info",
                            choices=("debug", "info", "warning", "error"))
    b = sub.add_parser("bindings", help="print the binding cache / BUL from a status file")
    b.add_argument("--status", metavar="FILE")
    b.add_argument("--json", action="store_true")
    return p


async def _run(cfg: AgentConfig) -> int:
    from mobility.ha_agent import HomeAgent
    from mobility.ike_api import RestIkeApi
    from mobility.mn_agent import MobileNode

    api = RestIkeApi(cfg.api.client(), timeout=cfg.api.timeout)
    agent: HomeAgent | MobileNode = (
        HomeAgent(cfg, api) if isinstance(cfg, HaAgentConfig) else MobileNode(cfg, api))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(agent.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # stopped while waiting for the IKE SA
        starting.cancel()
    await asyncio.wait({starting})
    if not starting.cancelled() and starting.exception() is not None:
        stopping.cancel()
        exc = starting.exception()
        print(f"{PROG}: {exc}", file=sys.stderr)
        await agent.close()
        return EXIT_FAILURE
    # the start-up objects (pyroute2, aiohttp, ...) never die: keep them out of the cyclic
    # collector's full passes, which otherwise stall a handover now and then
    gc.collect()
    gc.freeze()
    await stopping
    logging.getLogger("ikev2-mip6").info("stopping")
    await agent.close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command == "bindings":
        from mobility.status import bindings_command

        return bindings_command(args.status, args.json)
    try:
        cfg = load_agent_config(args.config)
    except AgentConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "check":
        print(f"{args.config}: OK ({'home agent' if cfg.role == 'ha' else 'mobile node'})")
        return EXIT_OK
    if args.command == "layout":
        from mobility.layout import Role, connection_toml, home_agent_toml

        try:
            if isinstance(cfg, HaAgentConfig):
                print(home_agent_toml(cfg.mobility_configs()), end="")
            else:
                print(connection_toml(cfg.mobility_config(), Role.MN), end="")
        except MobilityError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    if cfg.role != args.command:
        print(f"{PROG}: {args.config} configures a "
              f"{'home agent' if cfg.role == 'ha' else 'mobile node'}, not `{args.command}`",
              file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return asyncio.run(_run(cfg))
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
