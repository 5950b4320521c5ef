"""`ikev2d demo` (ikev2/daemon/demo.py), the README's main job: two daemons on loopback
bring up an IKE SA and a CHILD_SA, then A moves from 127.0.0.1 to 127.0.0.3 and back with
MOBIKE through its REST API. Run as a subprocess on random free ports, as a user would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ikev2.daemon import demo
from tests.daemon.helpers import free_ports, run_cli

A, B, A2 = "127.0.0.1", "127.0.0.2", "127.0.0.3"
SPIS = re.compile(r"same IKE SPIs ([0-9a-f]{16})/([0-9a-f]{16}), "
                  r"same CHILD_SA SPIs ([0-9a-f]{8})/([0-9a-f]{8})")


def _run_demo(tmp_path: Path, *extra: str) -> tuple[str, int, int]:
    ike, natt = free_ports((A, B, A2))
    res = run_cli("ikev2.daemon.main", "demo", "--ike-port", str(ike), "--natt-port",
                  str(natt), "--dir", str(tmp_path), *extra)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("a", "b"):
        assert "Traceback" not in (tmp_path / f"{name}.log").read_text()
    return res.stdout, ike, natt


def test_demo_brings_up_moves_and_moves_back(tmp_path: Path) -> None:
    out, ike, natt = _run_demo(tmp_path)
    assert "OK: both sides agree" in out
    assert f"{B}[{ike}]" in out
    assert f"on {A}[{ike}] and {A2}[{ike}]" in out  # A listens on both addresses

    handovers = [line for line in out.splitlines() if line.startswith("handover: ")]
    assert len(handovers) == 2, out
    there, back = handovers
    assert f"A {A}[{natt}] -> {A2}[{natt}] by MOBIKE" in there
    assert f"A {A2}[{natt}] -> {A}[{natt}] by MOBIKE" in back
    for line in handovers:
        assert re.search(r" in \d+\.\d ms \(from the API call until both sides report", line)
    # the SPIs named after each move are those of the tables before it: moved, not
    # re-created
    spis = SPIS.findall(out)
    assert len(spis) == 2 and spis[0] == spis[1], out
    before, after_move = out.split(there)
    for spi in spis[0]:
        assert spi in before and spi in after_move

    # the tables after the first move: B sees A at 127.0.0.3 on the NAT-T port
    tables = after_move.split("\nAnd back to")[0]
    assert f"== daemon A ({A2}," in tables
    b_table = tables.split("== daemon B")[1]
    assert f"{B}[{natt}]  {A2}[{natt}]" in b_table
    assert "OK: the same IKE SA and CHILD_SA" in tables
    assert f"OK: A is at {A}[{natt}] again" in out
    assert "both daemons stopped cleanly" in out

    a_cfg = (tmp_path / "a.toml").read_text()
    assert f'listen = ["{A}", "{A2}"]' in a_cfg
    assert f'remote_addrs = ["{A}", "{A2}"]' in (tmp_path / "b.toml").read_text()
    assert "moved" in (tmp_path / "b.log").read_text()


def test_demo_no_handover(tmp_path: Path) -> None:
    out, ike, _ = _run_demo(tmp_path, "--no-handover")
    assert f"on {A}[{ike}], ID" in out  # A listens on 127.0.0.1 only
    assert "OK: both sides agree" in out
    assert "handover:" not in out
    assert "both daemons stopped cleanly" in out
    assert A2 not in (tmp_path / "a.toml").read_text()


@pytest.mark.parametrize("argv", [
    ["--ike-port", "80"],
    ["--ike-port", "15000", "--natt-port", "15000"],
    ["--move-to", A],
    ["--move-to", "::1"],
    ["--addr-b", "gw.example.org"],
    ["--timeout", "0"],
    ["--no-such-option"],
])
def test_demo_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(argv) == 2
    assert "ikev2d demo" in capsys.readouterr().err
