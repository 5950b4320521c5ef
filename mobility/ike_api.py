"""What the mobility agents ask of the local ikev2d, over its REST API (docs/api.md).

`IkeApi` is the small interface the agents use; `RestIkeApi` implements it with
api.client.AsyncApiClient (UNIX socket or TCP + token), `FakeIkeApi` in memory for tests.
IKE SAs are the API's JSON views (VICI names: `uniqueid`, `local-host`, `remote-host`,
`remote-id`, `mobike`, `initiator`, `child-sas`, ...).

`ApiMover` is the `mobility.handover.Mover` over an IkeApi: `handover(identity=...)` finds
the IKE SAs of that peer identity (`GET /ike-sas?peer_id=...&state=ESTABLISHED`) and moves
each one not already there (`POST /ike-sas/{id}/handover`).
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from typing import Any, Protocol

IkeView = dict[str, Any]


class IkeApi(Protocol):
    async def ike_sas(self, **filters: str) -> list[IkeView]: ...
    async def handover(self, ike_id: int, *, local: str | None = None,
                       remote: str | None = None, mode: str = "auto") -> dict[str, Any]: ...
    async def terminate(self, ike_id: int) -> dict[str, Any]: ...
    async def initiate(self, name: str, *, local: str | None = None,
                       timeout: float = 10.0) -> dict[str, Any]: ...
    async def close(self) -> None: ...


class RestIkeApi:
    """IkeApi over api.client.AsyncApiClient (aiohttp: one keep-alive connection)."""

    def __init__(self, client: Any, *, timeout: float = 10.0) -> None:
        self.client = client
        self.timeout = timeout

    async def ike_sas(self, **filters: str) -> list[IkeView]:
        return await self.client.list_ike_sas(**filters)  # type: ignore[no-any-return]

    async def handover(self, ike_id: int, *, local: str | None = None,
                       remote: str | None = None, mode: str = "auto") -> dict[str, Any]:
        return await self.client.handover(  # type: ignore[no-any-return]
            ike_id, local=local, remote=remote, mode=mode, wait=True, timeout=self.timeout)

    async def terminate(self, ike_id: int) -> dict[str, Any]:
        # wait=false: after a move the old path is gone, the delete may never be answered
        return await self.client.terminate_ike(  # type: ignore[no-any-return]
            ike_id, wait=False)

    async def initiate(self, name: str, *, local: str | None = None,
                       timeout: float = 10.0) -> dict[str, Any]:
        """A new IKE SA of connection `name`, from the address `local` (the CoA) if given,
        waited for (ike-up; ApiClientError 502 if it failed, 422 if ikev2d cannot send
        from `local`)."""
        return await self.client.initiate(  # type: ignore[no-any-return]
            name, local=local, wait=True, timeout=timeout)

    async def close(self) -> None:
        await self.client.close()


def established(sas: list[IkeView]) -> list[IkeView]:
    return [s for s in sas if s.get("state") == "ESTABLISHED"]


def ts_covers(ts: str, address: str) -> bool:
    """Does a traffic selector as the API writes it ('2001:db8:1::100/128[mh/5]',
    '2001:db8:1::/64', '::/0') contain `address`?"""
    net_text = ts.split("[", 1)[0]
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(net_text, strict=False)
    except ValueError:
        return False


def holds_home_address(sa: IkeView, hoa: str) -> bool:
    """The IKE SA has a CHILD_SA whose peer-side selector is bound to `hoa` (a host or home
    prefix selector, not ::/0): the SA a Binding Update from `hoa` would use (4877-05)."""
    for child in sa.get("child-sas") or ():
        for ts in [*child.get("remote-ts", ()), *child.get("local-ts", ())]:
            net_text = ts.split("[", 1)[0]
            try:
                net = ipaddress.ip_network(net_text, strict=False)
            except ValueError:
                continue
            if net.prefixlen > 0 and ts_covers(ts, hoa):
                return True
    return False


@dataclass
class ApiMover:
    """mobility.handover.Mover over an IkeApi."""

    api: IkeApi

    async def handover(
        self, *, ike_sa: int | None, identity: str | None, local: str | None,
        remote: str | None, mode: str,
    ) -> dict[str, Any]:
        if ike_sa is not None:
            ids = [ike_sa]
        elif identity is not None:
            sas = established(await self.api.ike_sas(peer_id=identity, state="ESTABLISHED"))
            ids = [s["uniqueid"] for s in sas
                   if (remote is None or s["remote-host"] != remote)
                   and (local is None or s["local-host"] != local)]
            if not sas:
                raise LookupError(f"no established IKE SA of {identity}")
        else:
            raise ValueError("handover needs ike_sa or identity")
        answers = [await self.api.handover(i, local=local, remote=remote, mode=mode)
                   for i in ids]
        return {"moved": [a.get("uniqueid") for a in answers if a.get("moved")],
                "answers": answers}


# --- in memory -------------------------------------------------------------------------------
@dataclass
class FakeIkeApi:
    """An IkeApi without a daemon: IKE SA views in a dict; handover moves them (and their
    CHILD_SAs that rode the IKE addresses, as the engine does); every call is recorded."""

    sas: dict[int, IkeView] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail_handover: Exception | None = None
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def add(self, *, name: str, local: str, remote: str, remote_id: str,
            local_id: str = "", initiator: bool = True, mobike: bool = False,
            hoa: str | None = None, ha: str | None = None) -> IkeView:
        """A new ESTABLISHED IKE SA; with `hoa`/`ha` a HoA-bound BU/BA transport child and a
        tunnel child on the IKE addresses (the RFC 4877 layout in miniature)."""
        ike_id = next(self._ids)
        children = []
        if hoa is not None and ha is not None:
            mine, peer = (hoa, ha) if initiator else (ha, hoa)
            children = [
                {"uniqueid": ike_id * 10 + 1, "name": f"{name}-bu", "mode": "TRANSPORT",
                 "local-ts": [f"{mine}/128[mh/{5 if initiator else 6}]"],
                 "remote-ts": [f"{peer}/128[mh/{6 if initiator else 5}]"],
                 "local-host": mine, "remote-host": peer},
                {"uniqueid": ike_id * 10 + 2, "name": f"{name}-payload", "mode": "TUNNEL",
                 "local-ts": [f"{hoa}/128" if initiator else "::/0"],
                 "remote-ts": ["::/0" if initiator else f"{hoa}/128"],
                 "local-host": local, "remote-host": remote},
            ]
        sa = {"uniqueid": ike_id, "name": name, "state": "ESTABLISHED",
              "initiator": initiator, "local-host": local, "remote-host": remote,
              "local-id": local_id, "remote-id": remote_id, "mobike": mobike,
              "initiator-spi": f"{ike_id:016x}", "responder-spi": f"{ike_id + 1000:016x}",
              "child-sas": children}
        self.sas[ike_id] = sa
        return sa

    async def ike_sas(self, **filters: str) -> list[IkeView]:
        self.calls.append(("ike_sas", filters))
        keys = {"connection": "name", "peer_id": "remote-id", "peer_addr": "remote-host",
                "state": "state"}
        out = []
        for sa in self.sas.values():
            if all(sa[keys[k]] == v for k, v in filters.items()):
                out.append(dict(sa))
        return out

    async def handover(self, ike_id: int, *, local: str | None = None,
                       remote: str | None = None, mode: str = "auto") -> dict[str, Any]:
        self.calls.append(("handover", {"ike_id": ike_id, "local": local, "remote": remote,
                                        "mode": mode}))
        if self.fail_handover is not None:
            raise self.fail_handover
        sa = self.sas.get(ike_id)
        if sa is None:
            from api.client import ApiClientError

            raise ApiClientError(404, f"IKE SA {ike_id} not found")
        old = (sa["local-host"], sa["remote-host"])
        new = (local or old[0], remote or old[1])
        if new == old:
            return {"uniqueid": ike_id, "moved": False, "mode": "none", "ike-sa": dict(sa)}
        for child in sa["child-sas"]:
            if (child["local-host"], child["remote-host"]) == old:
                child["local-host"], child["remote-host"] = new
        sa["local-host"], sa["remote-host"] = new
        used = mode if mode != "auto" else ("mobike" if sa["mobike"] else "kbit")
        return {"uniqueid": ike_id, "moved": True, "mode": used, "ike-sa": dict(sa)}

    async def terminate(self, ike_id: int) -> dict[str, Any]:
        self.calls.append(("terminate", {"ike_id": ike_id}))
        self.sas.pop(ike_id, None)
        return {"outcome": "pending", "uniqueid": ike_id}

    async def initiate(self, name: str, *, local: str | None = None,
                       timeout: float = 10.0) -> dict[str, Any]:
        """A new SA of `connections[name]`, from `local` if given, else from that entry's
        "local" (what ikev2d's routing lookup would pick)."""
        self.calls.append(("initiate", {"name": name, "local": local}))
        conn = self.connections.get(name)
        if conn is None:
            from api.client import ApiClientError

            raise ApiClientError(404, f"connection {name} not found")
        sa = self.add(name=name, **{**conn, **({"local": local} if local else {})})
        return {"outcome": "ike-up", "uniqueid": sa["uniqueid"]}

    async def close(self) -> None:
        self.calls.append(("close", {}))

    def call_names(self) -> list[str]:
        return [c[0] for c in self.calls]
