"""A small client of the ikev2d API, shared by `ikev2ctl` and `mobility/`.

    client = ApiClient("http://127.0.0.1:7296", token="...")      # TCP + bearer token
    client = ApiClient(unix_socket="/run/ikev2d/api.sock")         # UNIX socket, no token
    client = ApiClient.from_config("/etc/ikev2d/ikev2d.toml")     # what the [api] says
    client.handover(3, local="2001:db8:2::10")                    # a CoA change
    client.initiate("home", local="2001:db8:2::10")               # from that address
    client.liveness(3, timeout=5)                                 # 504 if no answer
    client.child_keys(5)                        # UNIX socket + api.child_sa_keys only

`ApiClient` is synchronous (stdlib http.client); `AsyncApiClient` does the same over
aiohttp for code already in an event loop (the mobility daemon). Errors raise
ApiClientError carrying the RFC 9457 problem.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

DEFAULT_URL = "http://127.0.0.1:7296"


class ApiClientError(Exception):
    """An error answer (status >= 400; `problem` is its body) or no answer (status 0)."""

    def __init__(self, status: int, message: str, problem: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _query(params: dict[str, Any]) -> str:
    pairs = []
    for k, v in params.items():
        if v is None:
            continue
        pairs.append((k, str(v).lower() if isinstance(v, bool) else str(v)))
    return "?" + urllib.parse.urlencode(pairs) if pairs else ""


def _error(status: int, text: str) -> ApiClientError:
    try:
        problem = json.loads(text)
    except ValueError:
        problem = None
    if isinstance(problem, dict) and "detail" in problem:
        return ApiClientError(status, str(problem["detail"]), problem)
    return ApiClientError(status, f"HTTP {status}: {text[:200]}")


def _sse_line(raw: bytes, data: list[str]) -> dict[str, Any] | None:
    """One line of a Server-Sent Events stream: `data:` lines gather in `data`; the empty
    line that ends an event gives its JSON body (and empties `data`)."""
    line = raw.decode("utf-8", "replace").rstrip("\r\n")
    if line.startswith("data:"):
        data.append(line[5:].lstrip())
    elif not line and data:
        body: dict[str, Any] = json.loads("\n".join(data))
        data.clear()
        return body
    return None


class _Paths:
    """Path and query of each call, shared by the sync and async clients."""

    @staticmethod
    def command(wait: bool, timeout: float | None, **extra: Any) -> str:
        return _query({**extra, "wait": wait, "timeout": timeout if wait else None})

    @staticmethod
    def initiate(name: str, local: str | None, wait: bool, timeout: float) -> str:
        return (f"/connections/{urllib.parse.quote(name)}/initiate"
                + _Paths.command(wait, timeout, local=local))

    @staticmethod
    def liveness(ike_id: int, timeout: float) -> str:
        return f"/ike-sas/{ike_id}/liveness" + _query({"timeout": timeout})


class ApiClient:
    def __init__(
        self, url: str | None = None, *, token: str | None = None,
        unix_socket: str | None = None, timeout: float = 30.0,
    ) -> None:
        self.unix_socket = unix_socket
        self.token = token
        self.timeout = timeout
        parsed = urllib.parse.urlsplit(url or DEFAULT_URL)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"{url!r}: the API URL must be http://HOST:PORT")
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.prefix = parsed.path.rstrip("/")

    @classmethod
    def from_config(cls, path: str, *, prefer_socket: bool = True,
                    timeout: float = 30.0) -> ApiClient:
        """The API a daemon config describes; its token file must be readable."""
        import os

        from api.auth import read_token
        from ikev2.config.loader import load_config

        api = load_config(path).api
        if not api.enabled:
            raise ValueError(f"{path}: the [api] section is missing or api.enabled = false")
        if api.unix_socket and (prefer_socket or not api.listen) and (
                os.path.exists(api.unix_socket) or not api.listen):
            return cls(unix_socket=api.unix_socket, timeout=timeout)
        host = api.listen[0]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        url = f"http://[{host}]:{api.port}" if ":" in host else f"http://{host}:{api.port}"
        return cls(url, token=read_token(api.token_file), timeout=timeout)

    # --- transport ---------------------------------------------------------------------
    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.unix_socket:
            return _UnixConnection(self.unix_socket, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _open(self, method: str, path: str, body: Any, timeout: float | None,
              extra: dict[str, str] | None = None,
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        headers = {"Accept": "application/json", **(extra or {})}
        if self.token and not self.unix_socket:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = self._connection(timeout or self.timeout)
        try:
            conn.request(method, self.prefix + path, body=data, headers=headers)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            where = f"unix:{self.unix_socket}" if self.unix_socket else \
                f"http://{self.host}:{self.port}"
            raise ApiClientError(0, f"cannot reach the ikev2d API at {where}: {exc}") from None

    def request(self, method: str, path: str, body: Any = None,
                timeout: float | None = None) -> Any:
        """Send one request; the decoded JSON (or text) of a 2xx answer."""
        conn, resp = self._open(method, path, body, timeout)
        try:
            text = resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
        if resp.status >= 400:
            raise _error(resp.status, text)
        if resp.headers.get_content_type().endswith("json"):
            return json.loads(text)
        return text

    # --- calls -------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.request("GET", "/health")  # type: ignore[no-any-return]

    def list_ike_sas(self, **filters: str | None) -> list[dict[str, Any]]:
        return self.request("GET", "/ike-sas" + _query(filters))  # type: ignore[no-any-return]

    def ike_sa(self, ike_id: int) -> dict[str, Any]:
        return self.request("GET", f"/ike-sas/{ike_id}")  # type: ignore[no-any-return]

    def terminate_ike(self, ike_id: int, *, wait: bool = True,
                      timeout: float = 10.0) -> dict[str, Any]:
        return self.request("DELETE", f"/ike-sas/{ike_id}" + _Paths.command(wait, timeout),
                            timeout=timeout + 5)  # type: ignore[no-any-return]

    def rekey_ike(self, ike_id: int, *, reauth: bool = False, wait: bool = True,
                  timeout: float = 10.0) -> dict[str, Any]:
        q = _Paths.command(wait, timeout, reauth=reauth or None)
        return self.request("POST", f"/ike-sas/{ike_id}/rekey" + q,
                            timeout=timeout + 5)  # type: ignore[no-any-return]

    def handover(self, ike_id: int, *, local: str | None = None, remote: str | None = None,
                 mode: str = "auto", wait: bool = True, timeout: float = 10.0
                 ) -> dict[str, Any]:
        """Move an IKE SA (a CoA change); "moved" in the answer says whether it is done."""
        body = {k: v for k, v in (("local", local), ("remote", remote), ("mode", mode)) if v}
        return self.request("POST", f"/ike-sas/{ike_id}/handover"  # type: ignore
                            + _Paths.command(wait, timeout), body, timeout=timeout + 5)

    def list_child_sas(self, **filters: Any) -> list[dict[str, Any]]:
        return self.request("GET", "/child-sas" + _query(filters))  # type: ignore[no-any-return]

    def child_sa(self, child_id: int) -> dict[str, Any]:
        return self.request("GET", f"/child-sas/{child_id}")  # type: ignore[no-any-return]

    def child_keys(self, child_id: int) -> dict[str, Any]:
        """SPIs, algorithms and keys of a CHILD_SA (secrets; UNIX socket only, 403 unless
        the daemon has api.child_sa_keys or api.key_export)."""
        return self.request("GET", f"/child-sas/{child_id}/keys")  # type: ignore[no-any-return]

    def terminate_child(self, child_id: int, *, wait: bool = True,
                        timeout: float = 10.0) -> dict[str, Any]:
        return self.request("DELETE", f"/child-sas/{child_id}" + _Paths.command(wait, timeout),
                            timeout=timeout + 5)  # type: ignore[no-any-return]

    def rekey_child(self, child_id: int, *, wait: bool = True,
                    timeout: float = 10.0) -> dict[str, Any]:
        return self.request("POST", f"/child-sas/{child_id}/rekey"
                            + _Paths.command(wait, timeout),
                            timeout=timeout + 5)  # type: ignore[no-any-return]

    def lookup(self, **query: Any) -> list[dict[str, Any]]:
        """Which CHILD_SA/SPI protects a packet: src, dst, protocol, mh_type, icmp_type,
        src_port, dst_port."""
        return self.request("GET", "/child-sas/lookup"  # type: ignore[no-any-return]
                            + _query(query))

    def list_connections(self) -> list[dict[str, Any]]:
        return self.request("GET", "/connections")  # type: ignore[no-any-return]

    def load_connection(self, name: str, table: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", f"/connections/{urllib.parse.quote(name)}",
                            table)  # type: ignore[no-any-return]

    def unload_connection(self, name: str, *, terminate: bool = False) -> dict[str, Any]:
        return self.request("DELETE", f"/connections/{urllib.parse.quote(name)}"
                            + _query({"terminate": terminate or None}))  # type: ignore

    def initiate(self, name: str, *, local: str | None = None, wait: bool = True,
                 timeout: float = 10.0) -> dict[str, Any]:
        """Start an IKE SA of connection `name` (from the address `local`, if given)."""
        return self.request("POST", _Paths.initiate(name, local, wait, timeout),
                            timeout=timeout + 5)  # type: ignore[no-any-return]

    def liveness(self, ike_id: int, *, timeout: float = 10.0) -> dict[str, Any]:
        """Check that the peer of an IKE SA answers: {"ike-sa", "alive", "rtt-ms"};
        ApiClientError 504 if it did not within `timeout` seconds."""
        return self.request("POST", _Paths.liveness(ike_id, timeout),
                            timeout=timeout + 5)  # type: ignore[no-any-return]

    def metrics(self) -> str:
        return self.request("GET", "/metrics")  # type: ignore[no-any-return]

    def export_keys(self, esp_file: str | None = None, ike_file: str | None = None
                    ) -> dict[str, Any]:
        body = {k: v for k, v in (("esp_file", esp_file), ("ike_file", ike_file)) if v}
        return self.request("POST", "/keys/export", body)  # type: ignore[no-any-return]

    def events(self, types: list[str] | None = None, *, limit: int | None = None,
               duration: float | None = None, last_id: int | None = None
               ) -> Iterator[dict[str, Any]]:
        """Yield events (their JSON bodies) as they come; ends with the stream."""
        q = _query({"types": ",".join(types) if types else None, "limit": limit,
                    "duration": duration})
        extra = {"Last-Event-ID": str(last_id)} if last_id is not None else None
        conn, resp = self._open("GET", "/events" + q, None, None, extra)
        try:
            if resp.status >= 400:
                raise _error(resp.status, resp.read().decode("utf-8", "replace"))
            if conn.sock is not None:
                conn.sock.settimeout(None)  # events may be far apart
            data: list[str] = []
            for raw in resp:
                event = _sse_line(raw, data)
                if event is not None:
                    yield event
        finally:
            conn.close()


class AsyncApiClient:
    """The same calls over aiohttp, for code running in an event loop (mobility/)."""

    def __init__(self, url: str | None = None, *, token: str | None = None,
                 unix_socket: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or DEFAULT_URL).rstrip("/")
        self.token = token
        self.unix_socket = unix_socket
        self.timeout = timeout
        self._session: Any = None

    async def _get_session(self) -> Any:
        import aiohttp

        if self._session is None:
            connector = aiohttp.UnixConnector(self.unix_socket) if self.unix_socket else None
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._session = aiohttp.ClientSession(
                connector=connector, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    async def request(self, method: str, path: str, body: Any = None,
                      timeout: float | None = None) -> Any:
        """Send one request (within `timeout` seconds, else the client's); the decoded JSON
        (or text) of a 2xx answer."""
        import aiohttp

        session = await self._get_session()
        base = "http://localhost" if self.unix_socket else self.url
        limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else None
        try:
            async with session.request(method, base + path, json=body,
                                       timeout=limit) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise _error(resp.status, text)
                return json.loads(text) if resp.content_type.endswith("json") else text
        except aiohttp.ClientError as exc:
            raise ApiClientError(0, f"cannot reach the ikev2d API: {exc}") from None

    async def handover(self, ike_id: int, *, local: str | None = None,
                       remote: str | None = None, mode: str = "auto", wait: bool = True,
                       timeout: float = 10.0) -> dict[str, Any]:
        body = {k: v for k, v in (("local", local), ("remote", remote), ("mode", mode)) if v}
        return await self.request(  # type: ignore[no-any-return]
            "POST", f"/ike-sas/{ike_id}/handover" + _Paths.command(wait, timeout), body,
            timeout + 5)

    async def initiate(self, name: str, *, local: str | None = None, wait: bool = True,
                       timeout: float = 10.0) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "POST", _Paths.initiate(name, local, wait, timeout), None, timeout + 5)

    async def terminate_ike(self, ike_id: int, *, wait: bool = True,
                            timeout: float = 10.0) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "DELETE", f"/ike-sas/{ike_id}" + _Paths.command(wait, timeout), None, timeout + 5)

    async def liveness(self, ike_id: int, *, timeout: float = 10.0) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "POST", _Paths.liveness(ike_id, timeout), None, timeout + 5)

    async def list_ike_sas(self, **filters: str | None) -> list[dict[str, Any]]:
        return await self.request("GET", "/ike-sas" + _query(filters))  # type: ignore

    async def lookup(self, **query: Any) -> list[dict[str, Any]]:
        return await self.request("GET", "/child-sas/lookup" + _query(query))  # type: ignore

    async def child_keys(self, child_id: int) -> dict[str, Any]:
        return await self.request("GET", f"/child-sas/{child_id}/keys")  # type: ignore

    async def rekey_child(self, child_id: int, *, wait: bool = True,
                          timeout: float = 10.0) -> dict[str, Any]:
        return await self.request(  # type: ignore[no-any-return]
            "POST", f"/child-sas/{child_id}/rekey" + _Paths.command(wait, timeout), None,
            timeout + 5)

    async def events(self, types: list[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yield events (their JSON bodies) as they come, until the stream ends; raises
        ApiClientError when it cannot be opened or breaks."""
        import aiohttp

        session = await self._get_session()
        base = "http://localhost" if self.unix_socket else self.url
        q = _query({"types": ",".join(types) if types else None})
        try:
            async with session.get(base + "/events" + q,
                                   timeout=aiohttp.ClientTimeout(total=None)) as resp:
                if resp.status >= 400:
                    raise _error(resp.status, await resp.text())
                data: list[str] = []
                async for raw in resp.content:
                    event = _sse_line(raw, data)
                    if event is not None:
                        yield event
        except aiohttp.ClientError as exc:
            raise ApiClientError(0, f"the ikev2d event stream broke: {exc}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
