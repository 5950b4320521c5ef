"""The bearer token: made on first start (mode 0600), read afterwards; checked on every TCP
request but GET /health. The UNIX socket is guarded by its file mode instead."""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import socket
import stat
from pathlib import Path

from aiohttp import web

from api.problems import ApiError

log = logging.getLogger("ikev2d.api")
TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/-]{16,512}=*$")  # RFC 6750 b64token, not too short
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="ikev2d"'}


class TokenError(Exception):
    """The token file cannot be made or read (the daemon does not start)."""


def load_or_create_token(path: str | Path) -> str:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return _read(path)
    except OSError as exc:
        raise TokenError(f"cannot create token file {path}: {exc.strerror or exc}") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(token + "\n")
    log.info("API token written to %s (mode 0600)", path)
    return token


def _read(path: Path) -> str:
    try:
        st = path.stat()
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read token file {path}: {exc}") from None
    if not TOKEN_RE.match(text):
        raise TokenError(
            f"token file {path} does not hold a token (16-512 characters of A-Z a-z 0-9 "
            "-._~+/); delete it and a new one is made at start"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        log.warning("token file %s is readable by others (mode %o); chmod 600 it", path,
                    stat.S_IMODE(st.st_mode))
    return text


def read_token(path: str | Path) -> str:
    """The token of a token file (the client side)."""
    return _read(Path(path))


def over_unix_socket(request: web.Request) -> bool:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


def authorize(request: web.Request, token: str) -> None:
    """Raise ApiError(401) unless the request is on the UNIX socket or has the token."""
    if over_unix_socket(request):
        return
    header = request.headers.get("Authorization")
    if header is None:
        raise ApiError(401, "unauthorized", "missing header 'Authorization: Bearer TOKEN' "
                       "(the token is in the daemon's api.token_file)",
                       field="header.Authorization", headers=_CHALLENGE)
    scheme, _, given = header.strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not TOKEN_RE.match(given):
        raise ApiError(401, "unauthorized", "malformed Authorization header; expected "
                       "'Bearer TOKEN'", field="header.Authorization", headers=_CHALLENGE)
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "wrong token", field="header.Authorization",
                       headers=_CHALLENGE)
