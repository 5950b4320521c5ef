"""`ikev2ctl` over the API, via main(argv), against a live pair; exit codes 0/1/2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ikev2 import ctl
from tests.api.harness import Live, wait_until
from tests.daemon.helpers import PSK


def api(live: Live) -> list[str]:
    return ["--api", live.url, "--token", live.token]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = ctl.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_sas_and_conns(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list-sas", *api(live))
    assert code == 0 and "pair[" in out and "ESTABLISHED" in out and "net{" in out
    code, out, _ = run(capsys, "list-sas", "--json", *api(live))
    assert code == 0 and json.loads(out)[0]["name"] == "pair"
    code, out, _ = run(capsys, "list-sas", "--socket", live.socket, "--connection", "none")
    assert code == 0 and out.strip() == "no IKE SAs"
    code, out, _ = run(capsys, "list-conns", "--socket", live.socket)
    assert code == 0 and out.splitlines()[0].startswith("NAME") and "pair" in out
    code, out, _ = run(capsys, "list-conns", "--json", *api(live))
    assert code == 0 and json.loads(out)[0]["remote-id"] == "gw.example.org"


def test_config_lookup(live: Live, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    conf = tmp_path / "ikev2d.toml"
    host, port = live.api.addresses[0]
    conf.write_text(f'[api]\nlisten = ["{host}"]\nport = {port}\n'
                    f'token_file = "{live.tmp / "token"}"\n')
    code, out, _ = run(capsys, "list-sas", "--config", str(conf))
    assert code == 0 and "pair[" in out
    sock_conf = tmp_path / "sock.toml"
    sock_conf.write_text(f'[api]\nlisten = []\nunix_socket = "{live.socket}"\n')
    code, out, _ = run(capsys, "list-conns", "--config", str(sock_conf))
    assert code == 0 and "pair" in out


def test_usage_and_failures(live: Live, capsys: pytest.CaptureFixture[str],
                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IKEV2D_API", raising=False)
    monkeypatch.setattr("api.commands.DEFAULT_CONFIG", str(tmp_path / "absent.toml"))
    code, _, err = run(capsys, "list-conns")
    assert code == 2 and "--api URL" in err
    code, _, err = run(capsys, "terminate", *api(live))
    assert code == 2 and "--child" in err
    code, _, err = run(capsys, "handover", "1", *api(live))
    assert code == 2
    code, _, _ = run(capsys, "initiate")  # argparse: missing NAME
    assert code == 2
    code, _, err = run(capsys, "terminate", "99999", *api(live))
    assert code == 1 and "IKE SA 99999 does not exist" in err
    code, _, err = run(capsys, "initiate", "nope", *api(live))
    assert code == 1 and "does not exist" in err
    code, _, err = run(capsys, "list-sas", "--api", live.url, "--token", "x" * 30)
    assert code == 1 and "wrong token" in err
    code, _, err = run(capsys, "list-sas", "--api", "http://127.0.0.1:1")
    assert code == 1 and "cannot reach" in err
    code, _, err = run(capsys, "list-sas", "--api", "ftp://x")
    assert code == 2


def test_load_initiate_rekey_handover_terminate(live: Live, capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    toml = tmp_path / "extra.toml"
    toml.write_text(f"""
[connections.extra]
local_addrs = ["127.0.0.1"]
remote_addrs = ["127.0.0.2"]
remote_port = {live.responder.config.ike_port}
send_initial_contact = false  # or the responder drops the pair's IKE SA (same identities)
psk = "{PSK}"
[connections.extra.local]
id = "user@example.org"
[connections.extra.remote]
id = "gw.example.org"
[connections.extra.children.extra-net]
local_ts = ["198.51.100.1/32"]
remote_ts = ["203.0.113.1/32"]
""")
    code, out, err = run(capsys, "load-conn", str(toml), *api(live))
    assert code == 0 and "loaded connection extra" in out, err
    bad = tmp_path / "bad.toml"
    bad.write_text('[connections.worse]\nremote_addrs = ["x"]\n')
    code, _, err = run(capsys, "load-conn", str(bad), *api(live))
    assert code == 1 and "remote_addrs[0]" in err
    code, _, err = run(capsys, "initiate", "extra", "--local", "127.0.0.3", *api(live))
    assert code == 1 and "not in the local_addrs of connection 'extra'" in err, err
    code, out, err = run(capsys, "initiate", "extra", "--local", "127.0.0.1", *api(live))
    assert code == 0 and "established 127.0.0.1-127.0.0.2" in out, err
    sa = live.client().list_ike_sas(connection="extra")[0]
    ike, child = sa["uniqueid"], sa["child-sas"][0]["uniqueid"]
    code, out, err = run(capsys, "rekey", "--child", str(child), *api(live))
    assert code == 0 and "child-rekey" in out, err
    code, out, err = run(capsys, "rekey", str(ike), *api(live))
    assert code == 0 and "ike-rekey" in out, err
    ike = live.client().list_ike_sas(connection="extra", state="ESTABLISHED")[0]["uniqueid"]
    code, out, err = run(capsys, "lookup", "--src", "198.51.100.1", "--dst", "203.0.113.1",
                         *api(live))
    assert code == 0 and "out SPI" in out
    code, out, err = run(capsys, "handover", str(ike), "--local", "127.0.0.3", "--mode",
                         "kbit", *api(live))
    assert code == 0 and "moved to 127.0.0.3" in out, err
    code, out, err = run(capsys, "liveness", str(ike), "--timeout", "5", *api(live))
    assert code == 0 and f"IKE_SA [{ike}]: the peer is alive (answered in" in out, err
    code, _, err = run(capsys, "liveness", "424242", *api(live))
    assert code == 1 and "IKE SA 424242 does not exist" in err
    code, _, err = run(capsys, "liveness", "--timeout", "0", str(ike), *api(live))
    assert code == 1 and "query.timeout: 0.0 must be more than 0" in err
    code, _, _ = run(capsys, "liveness", "three", *api(live))
    assert code == 2
    code, out, err = run(capsys, "terminate", str(ike), *api(live))
    assert code == 0 and "ike-down" in out, err
    code, out, _ = run(capsys, "unload-conn", "extra", *api(live))
    assert code == 0
    wait_until(lambda: not live.client().list_ike_sas(connection="extra"), "extra to go")


def test_watch(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    import threading

    sa = live.client().list_ike_sas(connection="pair", state="ESTABLISHED")[0]
    child = sa["child-sas"][0]["uniqueid"]

    def rekey_soon() -> None:
        wait_until(lambda: live.api.ctx.hub.subscribers, "watch to subscribe")  # type: ignore
        live.client().rekey_child(child)

    t = threading.Thread(target=rekey_soon)
    t.start()
    code, out, _ = run(capsys, "watch", "--type", "child-rekey", "--count", "1",
                       "--duration", "10", *api(live))
    t.join()
    assert code == 0 and "child-rekey" in out and f"(was {{{child}}})" in out
