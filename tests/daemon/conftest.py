"""Fixtures of the daemon tests: subprocess daemons that are always reaped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.helpers import DaemonProcess


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """spawn(name, config_text) starts `ikev2d --config` in tmp_path; killed at teardown."""
    started: list[DaemonProcess] = []

    def _spawn(name: str, text: str | None = None, **kw: Any) -> DaemonProcess:
        d = DaemonProcess(tmp_path, name, text, **kw)
        started.append(d)
        return d

    yield _spawn
    for d in started:
        d.kill()
