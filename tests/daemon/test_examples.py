"""Every file in examples/ loads; the initiator/responder pair really establishes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from ikev2.config.loader import load_config
from ikev2.config.model import DpdAction, StartAction
from tests.daemon.helpers import REPO, DaemonProcess, established, free_ports, run_cli

EXAMPLES = REPO / "examples"
EXAMPLE_PORTS = (15100, 15101)


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.toml"))


def test_examples_exist() -> None:
    names = {p.name for p in example_files()}
    assert {"initiator.toml", "responder.toml"} <= names


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_example_loads(path: Path) -> None:
    config = load_config(path)
    assert config.connections
    res = run_cli("ikev2.daemon.main", "--check", "--config", str(path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"{path}: OK")


def test_example_pair_settings() -> None:
    ini = load_config(EXAMPLES / "initiator.toml")
    res = load_config(EXAMPLES / "responder.toml")
    home, rw = ini.connection("home"), res.connection("roadwarrior")
    assert str(home.local.id) == "user@example.org" == str(rw.remote.id)
    assert str(home.remote.id) == "gw.example.org" == str(rw.local.id)
    assert home.local.psk == rw.local.psk
    assert home.children[0].start_action is StartAction.INITIATE
    assert home.dpd_action is DpdAction.RESTART and home.dpd_delay == 30.0
    assert rw.rekey_time == 4 * 3600 and rw.over_time == 600
    assert rw.children[0].life_time == 66 * 60 and rw.children[0].life_bytes == 600 << 20
    for c in (ini, res):
        assert (c.ike_port, c.natt_port) == EXAMPLE_PORTS and c.kernel == "memory"


def _rewrite(path: Path, ports: list[int], state: Path) -> str:
    """The example with free ports and a private state file (parallel runs must not clash)."""
    text = path.read_text()
    for old, new in zip(EXAMPLE_PORTS, ports, strict=True):
        text = re.sub(rf"\b{old}\b", str(new), text)
    text, n = re.subn(r'(?m)^state_file = ".*"$', f'state_file = "{state}"', text)
    assert n == 1
    return text


def test_example_pair_establishes(spawn: Callable[..., DaemonProcess], tmp_path: Path) -> None:
    ports = free_ports(("127.0.0.1", "127.0.0.2"))
    r = spawn("responder", _rewrite(EXAMPLES / "responder.toml", ports,
                                    tmp_path / "responder.json"))
    r.wait_running()
    i = spawn("initiator", _rewrite(EXAMPLES / "initiator.toml", ports,
                                    tmp_path / "initiator.json"))
    i.wait_for(lambda: established(i.sas()) and established(r.sas()),
               "the example pair to establish", others=(r,))
    sa_i, sa_r = established(i.sas()), established(r.sas())
    assert sa_i is not None and sa_r is not None
    assert (sa_i.spi_i, sa_i.spi_r) == (sa_r.spi_i, sa_r.spi_r)
    assert sa_i.name == "home" and sa_r.name == "roadwarrior"
    child = sa_i.children[0]
    assert child.local_ts == ("198.51.100.1/32",) and child.remote_ts == ("203.0.113.0/24",)
    assert sa_r.children[0].remote_ts == ("198.51.100.1/32",)  # the responder narrowed
    assert i.stop() == 0 and r.stop() == 0
    assert "Traceback" not in i.text() + r.text()
