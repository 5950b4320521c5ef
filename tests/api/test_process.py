"""`ikev2d --config` with an [api] section: the API comes up with the daemon and goes with
it; an unusable token file or API address stops the start with exit code 1."""

from __future__ import annotations

import socket
from pathlib import Path

from api.client import ApiClient, ApiClientError
from tests.daemon.helpers import DaemonProcess, free_ports

CONFIG = """\
[daemon]
listen = ["127.0.0.1"]
ike_port = {ike}
natt_port = {natt}
state_file = "{state}"

[api]
listen = []
unix_socket = "{sock}"
"""


def _config(tmp: Path, **extra: str) -> str:
    ike, natt = free_ports(("127.0.0.1",))
    text = CONFIG.format(ike=ike, natt=natt, state=tmp / "d.json", sock=tmp / "api.sock")
    for key, value in extra.items():
        text += f"{key} = {value}\n"
    return text


def test_daemon_serves_the_api_until_sigterm(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path, "d", _config(tmp_path))
    try:
        d.wait_running()
        client = ApiClient(unix_socket=str(tmp_path / "api.sock"))

        def up() -> bool:
            try:
                return client.health()["status"] == "ok"
            except ApiClientError:
                return False

        d.wait_for(up, "the API")
        assert client.list_ike_sas() == []
        assert d.stop() == 0
        assert not (tmp_path / "api.sock").exists()
    finally:
        d.kill()


def test_bad_token_file_stops_the_start(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("!\n")
    text = _config(tmp_path).replace("listen = []", 'listen = ["127.0.0.1"]\nport = 0')
    d = DaemonProcess(tmp_path, "d", text + f'token_file = "{token}"\n')
    try:
        assert d.proc.wait(20) == 1
        assert "does not hold a token" in d.text() and "api.token_file" in d.text()
    finally:
        d.kill()


def test_api_port_in_use_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        text = _config(tmp_path).replace("listen = []", f'listen = ["127.0.0.1"]\nport = {port}')
        d = DaemonProcess(tmp_path, "d", text + f'token_file = "{tmp_path / "t"}"\n')
        try:
            assert d.proc.wait(20) == 1
            assert f"cannot start the API on 127.0.0.1:{port}" in d.text()
        finally:
            d.kill()
