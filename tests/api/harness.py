"""A live pair for the API tests: responder and initiator Daemons on loopback, the
initiator with the API (TCP on 127.0.0.1, an ephemeral port, and a UNIX socket), all in
one event loop on a background thread, so blocking clients (ikev2ctl, ApiClient,
schemathesis) can talk to it from the test thread."""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from api.client import ApiClient
from api.server import ApiServer
from ikev2.core.events import Datagram
from ikev2.daemon.runner import Daemon
from tests.daemon.helpers import make_daemon, render, v4_pair

T = TypeVar("T")
WAIT = 10.0
HOA, HA = "2001:db8:10::1", "2001:db8:20::1"  # inner addresses of the MH selector tests
RESPONDER_MIP = f"""
[connections.pair.children.mip]
local_ts = ["{HA}/128"]
remote_ts = ["{HOA}/128"]
esp_proposals = ["aes128gcm16"]
mode = "transport"
"""


def api_section(tmp: Path, *, port: int = 0, extra: str = "") -> str:
    return f"""
[api]
listen = ["127.0.0.1"]
port = {port}
unix_socket = "{tmp / 'api.sock'}"
token_file = "{tmp / 'token'}"
key_export = true
key_export_dir = "{tmp / 'keys'}"
max_body = "4k"
client_timeout = 0.5
{extra}"""


class LoopbackOnly(Daemon):
    """A Daemon that never sends to a non-loopback address (fuzzed handovers and
    connections may name any address; traffic stays on this machine)."""

    def _send(self, dgram: Datagram) -> None:
        if ipaddress.ip_address(dgram.remote[0]).is_loopback:
            super()._send(dgram)


@dataclass
class Live:
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    initiator: Daemon
    responder: Daemon
    api: ApiServer
    tmp: Path

    @property
    def url(self) -> str:
        host, port = self.api.addresses[0]
        return f"http://{host}:{port}"

    @property
    def token(self) -> str:
        return self.api.token

    @property
    def socket(self) -> str:
        return str(self.tmp / "api.sock")

    def client(self, **kw: Any) -> ApiClient:
        return ApiClient(self.url, token=self.token, **kw)

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the loop thread (engine state is the loop's)."""

        async def run() -> T:
            return fn()

        return self.run(run())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def established(self) -> list[Any]:
        return self.call(lambda: [s for s in self.initiator.engine.ike_sas()
                                  if s.state == "ESTABLISHED" and s.children])

    def stop(self) -> None:
        async def down() -> None:
            await self.api.stop()
            self.initiator.close()
            self.responder.close()
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            self.run(down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def start_live(tmp: Path, *, initiate: bool = True) -> Live:
    a, b = v4_pair()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="api-test-loop", daemon=True)
    thread.start()

    async def up() -> tuple[Daemon, Daemon, ApiServer]:
        text = render(b, a, initiate=False).replace(  # MOBIKE moves may come from anywhere
            f'remote_addrs = ["{a.address}"]', 'remote_addrs = ["%any"]', 1)
        r = make_daemon(text + RESPONDER_MIP, "responder.toml")
        r.start()
        text = render(a, b, initiate=initiate).replace(
            'listen = ["127.0.0.1"]', 'listen = ["127.0.0.1", "127.0.0.3"]', 1)
        text += api_section(tmp)
        base = make_daemon(text, "initiator.toml")
        i = LoopbackOnly(base.config, base.engine)
        server = ApiServer(i, i.config.api)
        await server.start()
        i.start()
        return i, r, server

    fut = asyncio.run_coroutine_threadsafe(up(), loop)
    i, r, server = fut.result(30)
    (tmp / "keys").mkdir(exist_ok=True)
    live = Live(loop, thread, i, r, server, tmp)
    if initiate:
        wait_until(lambda: live.established(), "the first IKE SA")
    return live


def wait_until(predicate: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)
