"""Suite-wide pytest wiring.

Markers:
  root     needs root and network namespaces
  interop  needs strongSwan (charon + swanctl)

Outside CI such tests skip with a printed reason ("-ra" is in addopts). Under CI (CI=true)
a skipped root/interop test is reported as a FAILURE: CI machines are set up by
scripts/setup-debian.sh to run everything, so a skip there means lost coverage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Generator

import pytest

CHARON = os.environ.get("CHARON", "/usr/lib/ipsec/charon")
_STRICT_MARKERS = ("root", "interop")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def pytest_configure(config: pytest.Config) -> None:
    # also declared in pyproject.toml; repeated so this file works on its own
    config.addinivalue_line("markers", "root: needs root and network namespaces")
    config.addinivalue_line("markers", "interop: needs strongSwan charon")


def _why_not_root() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) not installed"
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "util-linux unshare/nsenter not installed"
    return None


def _why_no_strongswan() -> str | None:
    if not os.access(CHARON, os.X_OK):
        return f"charon not installed ({CHARON})"
    if shutil.which("swanctl") is None:
        return "swanctl not installed"
    return None


_netns_ok: bool | None = None


def _netns_usable() -> bool:
    """One real check that this process may create a network namespace."""
    global _netns_ok
    if _netns_ok is None:
        try:
            r = subprocess.run(
                ["unshare", "--net", "true"], capture_output=True, timeout=10, check=False
            )
            _netns_ok = r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _netns_ok = False
    return _netns_ok


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None:
        reason = _why_not_root()
        if reason is None and not _netns_usable():
            reason = "cannot create network namespaces (unshare --net failed)"
        if reason:
            pytest.skip(reason)
    if item.get_closest_marker("interop") is not None:
        reason = _why_no_strongswan()
        if reason:
            pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    rep: pytest.TestReport = outcome.get_result()  # type: ignore[assignment]
    if not (rep.skipped and in_ci()):
        return
    if hasattr(rep, "wasxfail"):  # an expected failure is not a lost test
        return
    marks = [m for m in _STRICT_MARKERS if item.get_closest_marker(m) is not None]
    if not marks:
        return
    reason = ""
    if isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3:
        reason = str(rep.longrepr[2]).removeprefix("Skipped: ")
    elif rep.longrepr is not None:
        reason = str(rep.longrepr)
    rep.outcome = "failed"
    rep.longrepr = f"CI=true: a {'/'.join(marks)} test may not skip (skip reason: {reason or '?'})"
