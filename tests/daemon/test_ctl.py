"""`ikev2ctl`, the state file format and the event log lines, without sockets."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from ikev2 import ctl
from ikev2.core.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    ChildSaInfo,
    ChildSaRekeyed,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaInfo,
    IkeSaRekeyed,
)
from ikev2.daemon import statefile
from ikev2.daemon.eventlog import format_event
from ikev2.daemon.satable import format_sa_table
from ikev2.daemon.statefile import StateFileError, read_state, snapshot, write_state

CHILD = ChildSaInfo(
    child_id=3, name="net", reqid=1, protocol="esp", mode="tunnel", spi_in=0xC1234567,
    spi_out=0xC7654321, suite="aes128gcm16", local_ts=("198.51.100.1/32",),
    remote_ts=("203.0.113.1/32",), encap=True, state="INSTALLED",
    installed_at=time.monotonic(),
)
IKE = IkeSaInfo(
    ike_id=7, name="home", state="ESTABLISHED", initiator=True, local=("192.0.2.1", 4500),
    remote=("192.0.2.2", 4500), local_id="user@example.org", remote_id="gw.example.org",
    spi_i=0x0102030405060708, spi_r=0x1112131415161718,
    suite="aes128gcm16-prfsha256-x25519", nat_local=False, nat_remote=True, encap=True,
    mobike=True, established_at=time.monotonic(), children=(CHILD,),
)


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_state(path, [IKE])
    doc, sas = read_state(path)
    assert doc["running"] is True and doc["pid"] == os.getpid()
    got = sas[0]
    assert got.spi_i == IKE.spi_i and got.local == ("192.0.2.1", 4500)
    assert got.children[0].local_ts == ("198.51.100.1/32",)
    # monotonic -> UNIX (the fixtures' monotonic stamps date from collection time)
    offset = time.time() - time.monotonic()
    assert abs(got.established_at - (IKE.established_at + offset)) < 1  # type: ignore[operator]
    assert abs(got.children[0].installed_at - (CHILD.installed_at + offset)) < 1


def test_snapshot_converts_every_at_field() -> None:
    @dataclass(frozen=True)
    class Future:  # a newer core's snapshot with more timestamps
        rekey_at: float | None
        expire_at: float
        count_at_all: int

    offset = time.time() - time.monotonic()
    d = asdict(Future(None, 100.0, 5))
    statefile._to_unix(d, offset)
    assert d["rekey_at"] is None
    assert d["expire_at"] == pytest.approx(100.0 + offset)
    assert d["count_at_all"] == 5  # not a *_at field


def test_read_state_tolerates_missing_defaulted_fields() -> None:
    """An older daemon's file lacks the fields a newer core added with defaults."""

    @dataclass(frozen=True)
    class Newer:
        name: str
        ports: tuple[int, ...]
        rekey_at: float | None = None

    got = statefile._build(Newer, {"name": "x", "ports": [1, 2]})
    assert got == Newer("x", (1, 2), None)
    with pytest.raises(KeyError):
        statefile._build(Newer, {"ports": []})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "cannot read state file"),
        ('{"version": 99, "ike_sas": []}', "not an ikev2d state file"),
        ('[1, 2]', "not an ikev2d state file"),
        ('{"version": 1, "ike_sas": [{"name": "x"}]}', "malformed SA entry"),
        ('{"version": 1, "ike_sas": 5}', "malformed SA entry"),
    ],
)
def test_read_state_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(StateFileError, match=message):
        read_state(path)


def test_list_sas_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.json"
    write_state(path, [IKE])
    assert ctl.main(["list-sas", "--state-file", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.rstrip("\n") == format_sa_table(read_state(path)[1])
    assert "home[7]" in out and "net{3}" in out and "tunnel+encap" in out
    assert "0102030405060708" in out and "c1234567" in out
    assert ctl.main(["list-sas", "--state-file", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["spi_r"] == IKE.spi_r and data[0]["local"] == ["192.0.2.1", 4500]


def test_list_sas_notes_a_stopped_daemon(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.json"
    write_state(path, [], running=False)
    assert ctl.main(["list-sas", "--state-file", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "no IKE SAs"
    assert f"ikev2d (pid {os.getpid()}) has stopped" in err


def test_list_sas_notes_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = tmp_path / "s.json"
    doc = snapshot([IKE]) | {"pid": dead.pid}
    path.write_text(json.dumps(doc))
    assert ctl.main(["list-sas", "--state-file", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "home[7]" in out
    assert f"stale: ikev2d pid {dead.pid} is not running" in err


def test_list_sas_usage_and_missing_file(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["list-sas"]) == 2
    assert "--state-file" in capsys.readouterr().err
    assert ctl.main(["list-sas", "--state-file", str(tmp_path / "x.json")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_proposals_lists_keywords(capsys: pytest.CaptureFixture[str]) -> None:
    assert ctl.main(["proposals"]) == 0
    out = capsys.readouterr().out
    assert "aes128gcm16" in out and "x25519" in out and "default ike_proposals:" in out
    assert ctl.main(["proposals", "--esp", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(t["esp"] for t in data["transforms"])


def test_event_lines() -> None:
    assert format_event(IkeSaEstablished(IKE)) == (
        logging.INFO,
        "IKE_SA home[7] established 192.0.2.1[4500]-192.0.2.2[4500] "
        "user@example.org-gw.example.org SPIs 0102030405060708_i 1112131415161718_r "
        "aes128gcm16-prfsha256-x25519",
    )
    level, line = format_event(ChildSaEstablished(7, CHILD))
    assert level == logging.INFO
    assert line == ("CHILD_SA net{3} installed SPIs c1234567_i c7654321_o aes128gcm16 "
                    "TS 198.51.100.1/32 === 203.0.113.1/32 (UDP-encap)")
    assert format_event(IkeSaFailed(7, "home", "peer not responding"))[0] == logging.WARNING
    assert format_event(ChildSaFailed(7, "net", "no TS", "TS_UNACCEPTABLE"))[1].endswith(
        "failed: no TS (notify TS_UNACCEPTABLE)"
    )
    assert format_event(IkeSaDeleted(7, "home", "deleted by peer"))[1] == (
        "IKE_SA home[7] deleted: deleted by peer"
    )
    assert format_event(ChildSaDeleted(7, 3, "net", "expired"))[1] == (
        "CHILD_SA net{3} deleted: expired"
    )


def test_rekey_event_lines() -> None:
    assert format_event(IkeSaRekeyed(6, IKE)) == (
        logging.INFO,
        "IKE_SA home[6] rekeyed to home[7] 192.0.2.1[4500]-192.0.2.2[4500] "
        "user@example.org-gw.example.org SPIs 0102030405060708_i 1112131415161718_r "
        "aes128gcm16-prfsha256-x25519",
    )
    assert format_event(ChildSaRekeyed(7, 2, CHILD))[1].startswith(
        "CHILD_SA net{2} rekeyed to net{3} SPIs c1234567_i c7654321_o"
    )
    assert format_event(object())[1].startswith("event <object")


def test_update_failed_and_alive_event_lines() -> None:
    """The two events of the API's handover refusal and liveness check, in the log and in
    `ikev2ctl watch`."""
    from api.commands import _event_line
    from api.eventstream import event_body
    from ikev2.core.events import IkeSaAlive, IkeSaUpdateFailed

    failed = IkeSaUpdateFailed(7, "home", ("192.0.2.9", 4500), ("192.0.2.2", 4500),
                               "the peer refused", "UNACCEPTABLE_ADDRESSES")
    alive = IkeSaAlive(7, "home", 0.0123)
    assert format_event(failed) == (logging.INFO, "IKE_SA home[7] not moved to "
                                    "192.0.2.9[4500]-192.0.2.2[4500]: the peer refused")
    assert format_event(alive) == (logging.INFO, "IKE_SA home[7] alive: the peer answered "
                                   "the liveness check in 12.3 ms")
    lines = [_event_line({"type": t, "time": 0, **event_body(e, lambda x: x)})
             for t, e in (("ike-update-failed", failed), ("ike-alive", alive))]
    assert lines[0].endswith("ike-update-failed home[7]: the peer refused "
                             "(UNACCEPTABLE_ADDRESSES)"), lines
    assert lines[1].endswith("ike-alive    home[7] answered in 12.3 ms"), lines
