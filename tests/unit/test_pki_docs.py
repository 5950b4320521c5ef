"""docs/pki.md's testbed script runs as written: every `ikev2-pki` line through
certs.cli.main in a temporary directory (lines with `|| ...` must fail, the others pass)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from certs.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "pki.md"


def _script_commands() -> list[tuple[list[str], bool]]:
    text = DOC.read_text()
    m = re.search(r"```sh\n(.*?)```", text, re.S)
    assert m, "docs/pki.md has no sh block"
    script = m.group(1).replace("\\\n", " ")
    out = []
    for line in script.splitlines():
        line = line.strip()
        if not line.startswith("ikev2-pki "):
            continue
        cmd, sep, _rest = line.partition("||")
        out.append((shlex.split(cmd)[1:], not sep))
    return out


def test_doc_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    commands = _script_commands()
    assert len(commands) >= 10
    for argv, should_pass in commands:
        rc = main(argv)
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        assert (rc == 0) == should_pass, f"ikev2-pki {shlex.join(argv)} → {rc}: {out}{err}"
    for f in ("pki/mn/chain.pem", "pki/ha/key.pem", "pki/cn/cert.pem", "pki/sub/crl.pem",
              "pki/ca/crl.pem"):
        assert (tmp_path / f).is_file()
