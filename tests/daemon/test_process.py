"""`ikev2d` as a real process: signals, exit codes, bind errors, garbage, `ikev2ctl`
(`ikev2d demo`: tests/daemon/test_demo.py)."""

from __future__ import annotations

import json
import random
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.helpers import (
    DaemonProcess,
    Side,
    established,
    free_ports,
    render,
    run_cli,
    v4_pair,
    v6_pair,
)
from tests.daemon.test_inprocess import garbage

Spawn = Callable[..., DaemonProcess]


def pair(spawn: Spawn, tmp_path: Path, a: Side, b: Side, *, mobike: bool = True
         ) -> tuple[DaemonProcess, DaemonProcess]:
    """Responder (b) running, then initiator (a); both established."""
    r = spawn("responder", render(b, a, initiate=False, mobike=mobike,
                                  state_file=tmp_path / "responder.json"))
    r.wait_running()
    i = spawn("initiator", render(a, b, initiate=True, mobike=mobike,
                                  state_file=tmp_path / "initiator.json"))
    i.wait_for(lambda: established(i.sas()) and established(r.sas()),
               "IKE SA + CHILD_SA on both sides", others=(r,))
    return i, r


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_deletes_sas_and_exits_0(spawn: Spawn, tmp_path: Path,
                                        sig: signal.Signals) -> None:
    a, b = v4_pair()
    i, r = pair(spawn, tmp_path, a, b)
    assert i.stop(sig) == 0
    r.wait_for(lambda: r.sas() == [], "the responder to drop the IKE SA")
    assert i.doc()["running"] is False and i.sas() == []
    ilog, rlog = i.text(), r.text()
    assert f"{sig.name} received" in ilog
    assert "deleting 1 IKE_SA(s)" in ilog
    assert "IKE_SA pair[1] deleted: deleted by peer" in rlog
    assert "ikev2d stopped" in ilog
    assert "Traceback" not in ilog + rlog
    assert r.stop() == 0  # the responder, now idle, stops as cleanly
    assert "deleting 0 IKE_SA(s)" in r.text()


def test_ipv6_pair_on_two_ports(spawn: Spawn, tmp_path: Path) -> None:
    a, b = v6_pair()
    i, r = pair(spawn, tmp_path, a, b, mobike=False)
    sa = established(i.sas())
    assert sa is not None
    assert tuple(sa.local) == ("::1", a.ike_port) and tuple(sa.remote) == ("::1", b.ike_port)
    assert r.stop() == 0  # this time the responder deletes
    i.wait_for(lambda: i.sas() == [], "the initiator to drop the IKE SA")
    assert "deleted by peer" in i.text()
    assert i.stop() == 0


def test_garbage_then_establish(spawn: Spawn, tmp_path: Path) -> None:
    a, b = v4_pair()
    r = spawn("responder", render(b, a, initiate=False, log_level="debug",
                                  state_file=tmp_path / "responder.json"))
    r.wait_running()
    ike_data, natt_data = garbage(random.Random(4306))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((a.address, 0))
        for d in ike_data:
            s.sendto(d, (b.address, b.ike_port))
        for d in natt_data:
            s.sendto(d, (b.address, b.natt_port))
    i = spawn("initiator", render(a, b, initiate=True, state_file=tmp_path / "initiator.json"))
    i.wait_for(lambda: established(i.sas()) and established(r.sas()),
               "an IKE SA after the garbage", others=(r,))
    assert i.stop() == 0 and r.stop() == 0
    rlog = r.text()
    assert "Traceback" not in rlog
    assert " ERROR " not in rlog
    assert "ignored NAT-keepalive" in rlog


@pytest.mark.parametrize("which", ["ike_port", "natt_port"])
def test_port_in_use_exits_1_naming_address_and_port(tmp_path: Path, which: str) -> None:
    ike, natt = free_ports(("127.0.0.1",))
    busy = ike if which == "ike_port" else natt
    a = Side("127.0.0.1", ike, natt, "user@example.org", "198.51.100.1/32")
    b = Side("127.0.0.2", ike, natt, "gw.example.org", "203.0.113.1/32")
    cfg = tmp_path / "busy.toml"
    cfg.write_text(render(a, b, initiate=False, state_file=tmp_path / "busy.json"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", busy))
        res = run_cli("ikev2.daemon.main", "--config", str(cfg))
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert f"127.0.0.1:{busy}" in lines[0]
    assert "address already in use" in lines[0]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "busy.json").exists()  # never started


def test_unwritable_state_file_exits_1(tmp_path: Path) -> None:
    a, b = v4_pair()
    cfg = tmp_path / "state.toml"
    state = tmp_path / "no" / "such" / "dir" / "s.json"
    cfg.write_text(render(a, b, initiate=True, state_file=state))
    res = run_cli("ikev2.daemon.main", "--config", str(cfg))
    assert res.returncode == 1, res.stderr
    assert res.stderr == (
        f"ikev2d: cannot write state file {state}: no such file or directory "
        "(check daemon.state_file)\n"
    )


def test_bad_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[daemon]\nike_port = "five hundred"\n')
    res = run_cli("ikev2.daemon.main", "--config", str(cfg))
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"ikev2d: {cfg}:daemon.ike_port: must be an integer, not str 'five hundred'"
    )


def test_ikev2ctl_list_sas(spawn: Spawn, tmp_path: Path) -> None:
    a, b = v4_pair()
    i, _r = pair(spawn, tmp_path, a, b)
    sa = established(i.sas())
    assert sa is not None
    table = run_cli("ikev2.ctl", "list-sas", "--state-file", str(i.state))
    assert table.returncode == 0, table.stderr
    assert table.stderr == ""
    out = table.stdout
    assert out.splitlines()[0].split()[:3] == ["IKE_SA", "STATE", "ROLE"]
    assert "pair[1]" in out and "ESTABLISHED" in out and "init" in out
    assert f"127.0.0.1[{a.natt_port}]" in out and f"127.0.0.2[{b.natt_port}]" in out
    assert "user@example.org" in out and "gw.example.org" in out
    assert f"{sa.spi_i:016x}" in out and f"{sa.spi_r:016x}" in out
    assert "net{1}" in out and "198.51.100.1/32" in out and "203.0.113.1/32" in out
    assert f"{sa.children[0].spi_in:08x}" in out

    js = run_cli("ikev2.ctl", "list-sas", "--state-file", str(i.state), "--json")
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    assert [d["spi_i"] for d in data] == [sa.spi_i]
    assert data[0]["children"][0]["spi_out"] == sa.children[0].spi_out
    assert data[0]["established_at"] <= time.time()

    assert i.stop() == 0
    after = run_cli("ikev2.ctl", "list-sas", "--state-file", str(i.state))
    assert after.returncode == 0
    assert after.stdout.strip() == "no IKE SAs"
    assert "has stopped" in after.stderr


def test_ikev2ctl_missing_state_file(tmp_path: Path) -> None:
    res = run_cli("ikev2.ctl", "list-sas", "--state-file", str(tmp_path / "none.json"))
    assert res.returncode == 1
    assert "no such file" in res.stderr

