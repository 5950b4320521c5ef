"""Fixtures for the interop tests: a private netns sandbox, peer.sh charons, ikev2d runs.

Everything started here is stopped here by PID (and by harness.reap_all at session end).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import harness
import pytest


@pytest.fixture(scope="session", autouse=True)
def _reap_leftovers() -> Iterator[None]:
    yield
    killed = harness.reap_all()
    if killed:
        print(f"\ninterop: killed leftover processes {killed}")


def _peer(
    tmp_path_factory: pytest.TempPathFactory, only: str, **knobs: str
) -> Iterator[harness.Peer]:
    if os.geteuid() != 0:
        pytest.skip("not root")
    if not harness.PEER_SH.exists():
        pytest.skip(f"{harness.PEER_SH} not found")
    sandbox = harness.Sandbox()
    peer = harness.Peer(sandbox, tmp_path_factory.mktemp(f"peer-{only}"))
    try:
        peer.start(only=only, **knobs)
        yield peer
    finally:
        try:
            peer.stop()
        finally:
            sandbox.close()


@pytest.fixture(scope="module")
def peer_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Peer]:
    """charon responder in ss-b only (ikev2d goes into ss-a)."""
    yield from _peer(tmp_path_factory, "b")


@pytest.fixture(scope="module")
def peer_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Peer]:
    """charon initiator in ss-a only (ikev2d goes into ss-b)."""
    yield from _peer(tmp_path_factory, "a")


@pytest.fixture
def ikev2d_runs(tmp_path: Path) -> Iterator[Callable[..., harness.Ikev2d]]:
    """Factory: ikev2d_runs(sandbox, ns, listen, conns) -> a started Ikev2d; all stopped
    (SIGTERM, then SIGKILL) when the test ends."""
    started: list[harness.Ikev2d] = []

    def make(sandbox: harness.Sandbox, ns: str, listen: list[str],
             conns: list[harness.Ikev2dConn]) -> harness.Ikev2d:  # fmt: skip
        d = harness.Ikev2d(sandbox, ns, tmp_path / f"ikev2d-{len(started)}", listen, conns)
        started.append(d)
        d.start()
        return d

    yield make
    for d in started:
        d.stop()
