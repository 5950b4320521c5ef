"""The state file: a JSON snapshot of `engine.ike_sas()`, replaced atomically, so scripts
(and `ikev2ctl list-sas`, `ikev2d demo`) can read the SA table without an API.

    {"version": 1, "pid": 1234, "running": true, "written_at": 1715000000.0,
     "ike_sas": [ {IkeSaInfo fields..., "children": [ {ChildSaInfo fields...} ]} ]}

SPIs are integers; endpoints are [address, port] lists; every `*_at` field is a UNIX time
(or null). When the daemon stops it writes `"running": false` and no SAs.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

from ikev2.core.events import ChildSaInfo, IkeSaInfo

FORMAT_VERSION = 1


def snapshot(ike_sas: Iterable[IkeSaInfo], *, running: bool = True) -> dict[str, Any]:
    """The document; the engine's monotonic timestamps (`*_at`) become UNIX times."""
    now = time.time()
    offset = now - time.monotonic()
    out = []
    for sa in ike_sas:
        d = asdict(sa)
        _to_unix(d, offset)
        for c in d["children"]:
            _to_unix(c, offset)
        out.append(d)
    return {
        "version": FORMAT_VERSION,
        "pid": os.getpid(),
        "running": running,
        "written_at": now,
        "ike_sas": out,
    }


def _to_unix(d: dict[str, Any], offset: float) -> None:
    for key, value in d.items():
        if key.endswith("_at") and isinstance(value, int | float) and not isinstance(value, bool):
            d[key] = value + offset


def write_state(path: str | Path, ike_sas: Iterable[IkeSaInfo], *, running: bool = True) -> None:
    write_text_atomic(path, json.dumps(snapshot(ike_sas, running=running), indent=1))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a temp file in the same directory, then rename it over `path`: readers see
    the old or the new file, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class StateFileError(Exception):
    pass


def read_state(path: str | Path) -> tuple[dict[str, Any], list[IkeSaInfo]]:
    """(the raw document, the IKE SAs as IkeSaInfo values). Raises StateFileError."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateFileError(f"{path}: no such file (is ikev2d running with state_file set?)") \
            from None
    except (OSError, ValueError) as exc:
        raise StateFileError(f"{path}: cannot read state file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
        raise StateFileError(f"{path}: not an ikev2d state file (version {FORMAT_VERSION})")
    try:
        sas = [ike_from_dict(d) for d in doc["ike_sas"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"{path}: malformed SA entry: {exc!r}") from None
    return doc, sas


def _build(cls: type, data: dict[str, Any]) -> Any:
    """A dataclass from its dict; fields with defaults may be missing (older writers)."""
    kwargs = {}
    for f in fields(cls):
        if f.name not in data and (f.default is not MISSING or f.default_factory is not MISSING):
            continue
        value = data[f.name]
        if isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def ike_from_dict(data: dict[str, Any]) -> IkeSaInfo:
    children = tuple(_build(ChildSaInfo, c) for c in data["children"])
    return _build(IkeSaInfo, {**data, "children": children})  # type: ignore[no-any-return]
