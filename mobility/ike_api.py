"""What the mobility agents ask of the local ikev2d, over its REST API (docs/api.md).

`IkeApi` is the small interface the agents use; `RestIkeApi` implements it with
api.client.AsyncApiClient (UNIX socket or TCP + token), `FakeIkeApi` in memory for tests.
IKE SAs are the API's JSON views (VICI names: `uniqueid`, `local-host`, `remote-host`,
`remote-id`, `mobike`, `initiator`, `child-sas`, ...).

`ApiMover` is the `mobility.handover.Mover` over an IkeApi: `handover(identity=...)` finds
the IKE SAs of that peer identity (`GET /ike-sas?peer_id=...&state=ESTABLISHED`) and moves
each one not already there (`POST /ike-sas/{id}/handover`).

For the ESP of the BU/BA SA (mobility/protection.py) the agents also ask which CHILD_SA
protects a BU (`GET /child-sas/lookup`), its keys (`GET /child-sas/{id}/keys`, UNIX socket
and api.child_sa_keys), rekey it (`POST /child-sas/{id}/rekey`) and follow the child
events (`GET /events`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

IkeView = dict[str, Any]


class IkeApi(Protocol):
    async def ike_sas(self, **filters: str) -> list[IkeView]: ...
    async def handover(self, ike_id: int, *, local: str | None = None,
                       remote: str | None = None, mode: str = "auto") -> dict[str, Any]: ...
    async def terminate(self, ike_id: int) -> dict[str, Any]: ...
    async def initiate(self, name: str, *, local: str | None = None,
                       timeout: float = 10.0) -> dict[str, Any]: ...
    async def lookup(self, **query: Any) -> list[dict[str, Any]]: ...
    async def child_keys(self, child_id: int) -> dict[str, Any]: ...
    async def rekey_child(self, child_id: int) -> dict[str, Any]: ...
    def events(self, types: list[str]) -> AsyncIterator[dict[str, Any]]: ...
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

    async def lookup(self, **query: Any) -> list[dict[str, Any]]:
        return await self.client.lookup(**query)  # type: ignore[no-any-return]

    async def child_keys(self, child_id: int) -> dict[str, Any]:
        return await self.client.child_keys(child_id)  # type: ignore[no-any-return]

    async def rekey_child(self, child_id: int) -> dict[str, Any]:
        return await self.client.rekey_child(  # type: ignore[no-any-return]
            child_id, wait=True, timeout=self.timeout)

    def events(self, types: list[str]) -> AsyncIterator[dict[str, Any]]:
        return self.client.events(types)  # type: ignore[no-any-return]

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
@dataclass(frozen=True, slots=True)
class FakeBuKeys:
    """The SPIs and keys of one BU/BA CHILD_SA as both ends' daemons hold them (tests):
    `_ir` is the initiator's (the MN's) outbound direction, `spi_r` the SPI it has at the
    responder. AES-GCM-16/128 unless told otherwise."""

    spi_i: int
    spi_r: int
    encr_ir: bytes
    encr_ri: bytes
    integ_ir: bytes = b""
    integ_ri: bytes = b""
    encr_id: int = 20  # ENCR_AES_GCM_16
    encr_keysize: int | None = 128
    integ_id: int = 0
    esn: bool = False

    @classmethod
    def random(cls, *, encr_id: int = 20, encr_keysize: int | None = 128, integ_id: int = 0,
               esn: bool = False) -> FakeBuKeys:
        from ikev2.crypto import get_encr, get_integ

        ek = get_encr(encr_id, encr_keysize).key_size
        ik = get_integ(integ_id).key_size if integ_id else 0
        spi_i, spi_r = (int.from_bytes(os.urandom(4), "big") | 0x100 for _ in range(2))
        return cls(spi_i, spi_r, os.urandom(ek), os.urandom(ek), os.urandom(ik),
                   os.urandom(ik), encr_id, encr_keysize, integ_id, esn)

    def side(self, initiator: bool) -> dict[str, Any]:
        """The fields of `GET /child-sas/{id}/keys` for one end."""
        mine = {"spi": f"{self.spi_i:08x}", "encr-key": self.encr_ri.hex(),
                "integ-key": self.integ_ri.hex()}
        theirs = {"spi": f"{self.spi_r:08x}", "encr-key": self.encr_ir.hex(),
                  "integ-key": self.integ_ir.hex()}
        inbound, outbound = (mine, theirs) if initiator else (theirs, mine)
        return {"encr-id": self.encr_id, "encr-keysize": self.encr_keysize,
                "integ-id": self.integ_id, "esn": self.esn, "replay-window": 32,
                "in": inbound, "out": outbound}


@dataclass
class FakeIkeApi:
    """An IkeApi without a daemon: IKE SA views in a dict; handover moves them (and their
    CHILD_SAs that rode the IKE addresses, as the engine does); every call is recorded.
    The BU/BA CHILD_SA of `add(hoa=, ha=, bu_keys=)` has keys (`child_keys`, unless
    `keys_off`); `peer` links the other end's fake, so `rekey_child` replaces the child on
    both (the old one stays REKEYED until `delete_child`); `publish` feeds `events`."""

    sas: dict[int, IkeView] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail_handover: Exception | None = None
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[int, tuple[FakeBuKeys, bool]] = field(default_factory=dict)  # child: (, init)
    handouts: dict[int, int] = field(default_factory=dict)
    keys_off: bool = False
    peer: FakeIkeApi | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _child_ids: Any = field(default_factory=lambda: itertools.count(1000))
    _queues: list[asyncio.Queue[dict[str, Any]]] = field(default_factory=list)

    def add(self, *, name: str, local: str, remote: str, remote_id: str,
            local_id: str = "", initiator: bool = True, mobike: bool = False,
            hoa: str | None = None, ha: str | None = None,
            bu_keys: FakeBuKeys | None = None) -> IkeView:
        """A new ESTABLISHED IKE SA; with `hoa`/`ha` a HoA-bound BU/BA transport child and a
        tunnel child on the IKE addresses (the RFC 4877 layout in miniature)."""
        ike_id = next(self._ids)
        children = []
        if hoa is not None and ha is not None:
            mine, peer = (hoa, ha) if initiator else (ha, hoa)
            children = [
                self._bu_child(ike_id, name, mine, peer, initiator,
                               bu_keys or FakeBuKeys.random()),
                {"uniqueid": ike_id * 10 + 2, "name": f"{name}-payload", "mode": "TUNNEL",
                 "state": "INSTALLED", "ike-sa": ike_id, "spi-in": f"{ike_id:08x}",
                 "spi-out": f"{ike_id + 1000:08x}",
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

    def _bu_child(self, ike_id: int, name: str, mine: str, peer: str, initiator: bool,
                  keys: FakeBuKeys) -> dict[str, Any]:
        child_id = next(self._child_ids)
        self.keys[child_id] = (keys, initiator)
        spis = (keys.spi_i, keys.spi_r) if initiator else (keys.spi_r, keys.spi_i)
        return {"uniqueid": child_id, "name": f"{name}-bu", "mode": "TRANSPORT",
                "state": "INSTALLED", "ike-sa": ike_id, "protocol": "ESP",
                "local-ts": [f"{mine}/128[mh/{5 if initiator else 6}]"],
                "remote-ts": [f"{peer}/128[mh/{6 if initiator else 5}]"],
                "local-host": mine, "remote-host": peer,
                "spi-in": f"{spis[0]:08x}", "spi-out": f"{spis[1]:08x}"}

    def _child(self, child_id: int) -> tuple[IkeView, dict[str, Any]]:
        for sa in self.sas.values():
            for child in sa["child-sas"]:
                if child["uniqueid"] == child_id:
                    return sa, child
        from api.client import ApiClientError

        raise ApiClientError(404, f"CHILD_SA {child_id} does not exist")

    async def lookup(self, **query: Any) -> list[dict[str, Any]]:
        """As `GET /child-sas/lookup` (api.selectors.match on the fake children)."""
        from api.selectors import Packet, match, protocol_number

        self.calls.append(("lookup", query))
        proto = protocol_number(query["protocol"]) if "protocol" in query else None
        port = query["mh_type"] << 8 if "mh_type" in query else None
        pkt = Packet(ipaddress.ip_address(query["src"]), ipaddress.ip_address(query["dst"]),
                     proto, port, None)
        out = []
        for sa in self.sas.values():
            for child in sa["child-sas"]:
                info = SimpleNamespace(local_ts=tuple(child["local-ts"]),
                                       remote_ts=tuple(child["remote-ts"]))
                for direction in match(info, pkt):  # type: ignore[arg-type]
                    out.append({"direction": direction, "child-sa": dict(child),
                                "spi": child["spi-out" if direction == "out" else "spi-in"]})
        return out

    async def child_keys(self, child_id: int) -> dict[str, Any]:
        self.calls.append(("child_keys", {"child_id": child_id}))
        from api.client import ApiClientError

        if self.keys_off:
            raise ApiClientError(403, "handing out CHILD_SA keys is off; set "
                                 "api.child_sa_keys = true", {"status": 403})
        sa, child = self._child(child_id)
        if child_id not in self.keys:
            raise ApiClientError(409, f"CHILD_SA {child_id} has no keys in this fake")
        keys, initiator = self.keys[child_id]
        handed_out = self.handouts.get(child_id, 0)
        self.handouts[child_id] = handed_out + 1
        return {**child, "local-id": sa["local-id"], "remote-id": sa["remote-id"],
                "outbound": True, "handed-out": handed_out, **keys.side(initiator)}

    async def rekey_child(self, child_id: int) -> dict[str, Any]:
        """A new BU/BA CHILD_SA on both ends; the old one stays (REKEYED)."""
        self.calls.append(("rekey_child", {"child_id": child_id}))
        new_keys = FakeBuKeys.random()
        answer = {}
        for api in (self, self.peer) if self.peer is not None else (self,):
            old_id = child_id if api is self else next(
                (c for c, (k, _) in api.keys.items()
                 if k == self.keys[child_id][0]), None)
            if old_id is None:
                continue
            sa, old = api._child(old_id)
            old["state"] = "REKEYED"
            initiator = api.keys[old_id][1]
            mine, peer = old["local-host"], old["remote-host"]
            new = api._bu_child(sa["uniqueid"], sa["name"], mine, peer, initiator, new_keys)
            sa["child-sas"].insert(0, new)
            api.publish("child-rekey", **{"ike-sa": sa["uniqueid"], "old-uniqueid": old_id,
                                         "child-sa": dict(new)})
            if api is self:
                answer = {"outcome": "child-rekey", "uniqueid": new["uniqueid"]}
        return answer

    def delete_child(self, child_id: int) -> None:
        sa, child = self._child(child_id)
        sa["child-sas"].remove(child)
        self.publish("child-down", **{"ike-sa": sa["uniqueid"], "uniqueid": child_id,
                                      "name": child["name"], "reason": "deleted"})

    def publish(self, type_: str, **body: Any) -> None:
        for q in self._queues:
            q.put_nowait({"type": type_, **body})

    async def events(self, types: list[str]) -> AsyncIterator[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues.append(q)
        try:
            while True:
                event = await q.get()
                if event["type"] in types:
                    yield event
        finally:
            self._queues.remove(q)

    async def close(self) -> None:
        self.calls.append(("close", {}))

    def call_names(self) -> list[str]:
        return [c[0] for c in self.calls]
