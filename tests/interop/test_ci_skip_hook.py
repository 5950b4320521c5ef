"""tests/conftest.py turns a skipped root/interop test into a failure under CI=true.

Runs pytest in a subprocess on a tiny suite that uses a copy of the real conftest, once with
CI=true and once without, and checks each test's outcome (from a JUnit XML report).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

SUITE = """
import pytest

@pytest.fixture
def needs_thing():
    pytest.skip("thing missing")

@pytest.mark.root
def test_root_skip_in_body():
    pytest.skip("not root")

@pytest.mark.interop
@pytest.mark.skipif(True, reason="charon not installed")
def test_interop_skipif():
    pass

@pytest.mark.root
@pytest.mark.interop
def test_root_skip_in_fixture(needs_thing):
    pass

@pytest.mark.root
@pytest.mark.xfail(reason="known bug", run=True)
def test_root_xfail():
    assert False

@pytest.mark.root
def test_root_pass():
    pass

def test_plain_skip():
    pytest.skip("unmarked tests may skip")

@pytest.mark.interop
class TestClassMarked:
    def test_in_class(self):
        pytest.skip("class-level marker counts")
"""


def _outcomes(tmp_path: Path, ci: str | None) -> dict[str, str]:
    work = tmp_path / ("ci" if ci else "dev")
    work.mkdir()
    shutil.copy(CONFTEST, work / "conftest.py")
    (work / "test_suite.py").write_text(SUITE)
    (work / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    xml = work / "report.xml"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
         "-c", str(work / "pytest.ini"), "--rootdir", str(work), str(work / "test_suite.py")],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert xml.exists(), r.stdout + r.stderr
    out: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = case.get("name", "")
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            out[name] = "failed"
        elif "skipped" in kinds:
            sk = case.find("skipped")
            is_xfail = sk is not None and sk.get("type") == "pytest.xfail"
            out[name] = "xfailed" if is_xfail else "skipped"
        else:
            out[name] = "passed"
    out["__rc__"] = str(r.returncode)
    out["__stdout__"] = r.stdout
    return out


@pytest.mark.parametrize("ci", ["true", "1"])
def test_skips_fail_under_ci(tmp_path: Path, ci: str) -> None:
    o = _outcomes(tmp_path, ci)
    assert o["test_root_skip_in_body"] == "failed", o["__stdout__"]
    assert o["test_interop_skipif"] == "failed"
    assert o["test_root_skip_in_fixture"] == "failed"
    assert o["test_in_class"] == "failed"
    assert o["test_root_xfail"] == "xfailed"
    assert o["test_root_pass"] == "passed"
    assert o["test_plain_skip"] == "skipped"
    assert o["__rc__"] == "1"
    # the failure names the original skip reason
    assert "may not skip (skip reason: charon not installed)" in o["__stdout__"]


def test_skips_stay_skips_outside_ci(tmp_path: Path) -> None:
    o = _outcomes(tmp_path, None)
    for name in ("test_root_skip_in_body", "test_interop_skipif", "test_root_skip_in_fixture",
                 "test_in_class", "test_plain_skip"):  # fmt: skip
        assert o[name] == "skipped", (name, o["__stdout__"])
    assert o["test_root_xfail"] == "xfailed"
    assert o["test_root_pass"] == "passed"
    assert o["__rc__"] == "0"
