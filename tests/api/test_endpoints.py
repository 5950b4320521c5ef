"""Every endpoint against a live pair: happy paths, problems (RFC 9457), auth, the UNIX
socket, limits; the daemon keeps serving IKE throughout."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from api.client import ApiClient, ApiClientError
from api.server import ApiServer
from ikev2.kernel.base import ChildSaStats
from tests.api.harness import HA, HOA, Live, wait_until
from tests.daemon.helpers import PSK
from tests.tshark import decode_esp


def raw(live: Live, method: str, path: str, *, token: str | None = "", body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    host, port = live.api.addresses[0]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    h = dict(headers or {})
    if token == "":
        token = live.token
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    ctype = resp.headers.get_content_type()
    value = json.loads(data) if ctype.endswith("json") else data.decode()
    return resp.status, {k.lower(): v for k, v in resp.headers.items()}, value


def problem(status: int, headers: dict[str, str], body: Any, want: int) -> dict[str, Any]:
    assert status == want, body
    assert headers["content-type"].startswith("application/problem+json")
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == want
    return body  # type: ignore[no-any-return]


def first_sa(live: Live) -> dict[str, Any]:
    return live.client().list_ike_sas(state="ESTABLISHED")[0]


# --- auth --------------------------------------------------------------------------------
def test_health_needs_no_token_everything_else_does(live: Live) -> None:
    status, _, body = raw(live, "GET", "/health", token=None)
    assert status == 200 and body["status"] == "ok" and body["ike-sas"] >= 1
    for path in ("/ike-sas", "/openapi.json", "/metrics", "/connections", "/events"):
        p = problem(*raw(live, "GET", path, token=None), 401)
        assert p["field"] == "header.Authorization" and "Bearer" in p["detail"]
    p = problem(*raw(live, "GET", "/ike-sas", token="x" * 40), 401)
    assert p["detail"] == "wrong token"
    for bad in ("Basic abc", "Bearer", "Bearer a b c", "Bearer short", "Bearer " + "é" * 20):
        status, headers, body = raw(live, "GET", "/ike-sas", token=None,
                                    headers={"Authorization": bad})
        assert problem(status, headers, body, 401)["detail"].startswith(
            ("malformed", "wrong")), bad
        assert headers["www-authenticate"].startswith("Bearer")


def test_token_file_is_private_and_reused(live: Live, tmp_path: Path) -> None:
    from api.auth import TokenError, load_or_create_token, read_token

    mode = stat.S_IMODE(os.stat(live.tmp / "token").st_mode)
    assert mode == 0o600
    assert read_token(live.tmp / "token") == live.token
    path = tmp_path / "sub" / "t"
    first = load_or_create_token(path)
    assert load_or_create_token(path) == first and len(first) >= 32
    path.write_text("not a token!\n")
    with pytest.raises(TokenError, match="does not hold a token"):
        load_or_create_token(path)


def test_unix_socket_needs_no_token(live: Live) -> None:
    mode = stat.S_IMODE(os.stat(live.socket).st_mode)
    assert stat.S_ISSOCK(os.stat(live.socket).st_mode) and mode == 0o600
    client = ApiClient(unix_socket=live.socket)
    assert client.list_ike_sas()[0]["state"] == "ESTABLISHED"
    assert client.health()["status"] == "ok"


# --- IKE SAs -----------------------------------------------------------------------------
def test_list_and_filter_ike_sas(live: Live) -> None:
    c = live.client()
    sa = first_sa(live)
    assert sa["name"] == "pair" and sa["version"] == 2 and sa["initiator"] is True
    assert sa["local-host"] == "127.0.0.1" and sa["remote-host"] == "127.0.0.2"
    assert sa["remote-id"] == "gw.example.org" and len(sa["initiator-spi"]) == 16
    assert sa["encr-alg"] == "AES_GCM_16" and sa["encr-keysize"] == 128
    assert sa["dh-group"] == "CURVE25519" and sa["prf-alg"] == "HMAC_SHA2_256"
    assert abs(sa["established-at"] - time.time()) < 120
    child = sa["child-sas"][0]
    assert child["local-ts"] == ["198.51.100.1/32"] and child["mode"] == "TUNNEL"
    assert (child["local-host"], child["remote-host"]) == ("127.0.0.1", "127.0.0.2")
    assert c.list_ike_sas(connection="pair") and not c.list_ike_sas(connection="nope")
    assert c.list_ike_sas(peer_id="gw.example.org")
    assert c.list_ike_sas(peer_addr="127.0.0.2") and not c.list_ike_sas(peer_addr="::1")
    assert not c.list_ike_sas(state="CONNECTING")
    for query, field in (("state=UP", "query.state"), ("peer_addr=nope", "query.peer_addr"),
                         ("state=ESTABLISHED&state=CREATED", "query.state")):
        p = problem(*raw(live, "GET", f"/ike-sas?{query}"), 400)
        assert p["field"] == field, p


def test_one_ike_sa_and_its_counters(live: Live) -> None:
    sa = first_sa(live)
    child = sa["child-sas"][0]

    def set_stats() -> None:
        kernel = live.initiator.engine.kernel  # type: ignore[attr-defined]
        kernel.stats[int(child["spi-in"], 16)] = ChildSaStats(1000, 2000, 10, 20)

    live.call(set_stats)
    got = live.client().ike_sa(sa["uniqueid"])
    c = got["child-sas"][0]
    assert (c["bytes-in"], c["bytes-out"], c["packets-in"], c["packets-out"]) == (
        1000, 2000, 10, 20)
    one = live.client().child_sa(child["uniqueid"])
    assert one["bytes-in"] == 1000 and one["ike-sa"] == sa["uniqueid"]
    assert (one["local-host"], one["remote-host"]) == (sa["local-host"], sa["remote-host"])
    p = problem(*raw(live, "GET", "/ike-sas/999999"), 404)
    assert p["field"] == "path.ike_id" and p["instance"] == "/ike-sas/999999"
    for bad in ("abc", "0", "-3", "1e3", "99999999999999999999"):
        assert problem(*raw(live, "GET", f"/ike-sas/{bad}"), 400)["field"] == "path.ike_id"


def test_child_sa_list_and_unknown_ids(live: Live) -> None:
    c = live.client()
    sa = first_sa(live)
    kids = c.list_child_sas(ike_sa=sa["uniqueid"])
    assert [k["uniqueid"] for k in kids] == [k["uniqueid"] for k in sa["child-sas"]]
    assert c.list_child_sas(name="net") and not c.list_child_sas(name="other")
    assert not c.list_child_sas(state="REKEYING")
    for method, path in (("GET", "/child-sas/424242"), ("DELETE", "/child-sas/424242"),
                         ("POST", "/child-sas/424242/rekey"), ("DELETE", "/ike-sas/424242"),
                         ("POST", "/ike-sas/424242/rekey"),
                         ("POST", "/connections/nope/initiate"),
                         ("GET", "/connections/nope"), ("DELETE", "/connections/nope")):
        problem(*raw(live, method, path), 404)
    problem(*raw(live, "GET", "/no/such/path"), 404)
    p = problem(*raw(live, "PATCH", "/ike-sas"), 405)
    assert "GET" in p.get("detail", "") or True


def test_handover_errors(live: Live) -> None:
    sa = first_sa(live)
    path = f"/ike-sas/{sa['uniqueid']}/handover"
    for body, field in (({}, "body.local"), ({"local": "not-an-ip"}, "body.local"),
                        ({"local": "::1"}, "body.local"), ({"remote": "1.2.3.4", "x": 1}, "body.x"),
                        ({"local": "127.0.0.3", "mode": "teleport"}, "body.mode"),
                        ({"local": "127.0.0.1"}, None)):
        status, headers, got = raw(live, "POST", path, body=json.dumps(body).encode(),
                                   headers={"Content-Type": "application/json"})
        if field is None:  # already there
            assert status == 200 and got["moved"] is False and got["mode"] == "none"
            continue
        assert problem(status, headers, got, 400)["field"] == field, got
    problem(*raw(live, "POST", "/ike-sas/31337/handover", body=b'{"local":"127.0.0.3"}',
                 headers={"Content-Type": "application/json"}), 404)


def _extra_conn(live: Live, name: str, **table: Any) -> dict[str, Any]:
    """A connection to the pair's responder (its `pair` takes user@example.org from any
    address) with a child of its own name; `table` adds or replaces keys."""
    conn: dict[str, Any] = {
        "local_addrs": ["127.0.0.1"], "remote_addrs": ["127.0.0.2"],
        "remote_port": live.responder.config.ike_port, "psk": PSK,
        "send_initial_contact": False,  # or the responder drops the pair's IKE SA
        "local": {"id": "user@example.org"}, "remote": {"id": "gw.example.org"},
        "children": {f"{name}-net": {"local_ts": ["198.51.100.1/32"],
                                     "remote_ts": ["203.0.113.1/32"]}},
    }
    conn.update(table)
    live.client().load_connection(name, conn)
    return conn


def test_liveness(live: Live) -> None:
    sa = first_sa(live)
    r = live.client().liveness(sa["uniqueid"], timeout=5)
    assert r["ike-sa"] == sa["uniqueid"] and r["alive"] is True
    assert 0 <= r["rtt-ms"] < 5000
    problem(*raw(live, "POST", "/ike-sas/424242/liveness"), 404)
    path = f"/ike-sas/{sa['uniqueid']}/liveness"
    for query, words in (("timeout=0", "0.0 must be more than 0"),
                         ("timeout=-1", "must be more than 0"),
                         ("timeout=121", "121.0 is more than 120.0"),
                         ("timeout=soon", "'soon' is not a number"),
                         ("wait=true", "unknown parameter (known: timeout)")):
        p = problem(*raw(live, "POST", f"{path}?{query}"), 400)
        assert p["field"] == f"query.{query.split('=')[0]}" and words in p["detail"], p


def test_liveness_unanswered_is_504_then_502_when_the_sa_goes(live: Live) -> None:
    """The peer stops answering: an IKE SA moved (K bit, here only) to an address the test
    daemon never sends to. Fast retransmissions (0.5 s, one retry) delete it in ~1 s."""
    c = live.client()
    _extra_conn(live, "mute", retransmit={"timeout": 0.5, "base": 1.0, "tries": 1})
    try:
        ids = [c.initiate("mute", wait=True)["uniqueid"] for _ in range(2)]
        for ike_id, peer in zip(ids, ("192.0.2.1", "192.0.2.2"), strict=True):
            assert c.handover(ike_id, remote=peer, mode="kbit")["moved"]
        p = problem(*raw(live, "POST", f"/ike-sas/{ids[0]}/liveness?timeout=0.1"), 504)
        assert p["type"].endswith(":no-answer") and p["ike-sa"] == ids[0]
        assert p["alive"] is False and "within 0.1 s" in p["detail"]
        p = problem(*raw(live, "POST", f"/ike-sas/{ids[1]}/liveness?timeout=10"), 502)
        assert p["type"].endswith(":ike-sa-deleted") and p["uniqueid"] == ids[1]
        assert "before the peer answered" in p["detail"]
        assert "peer not responding (INFORMATIONAL" in p["detail"]
        wait_until(lambda: not c.list_ike_sas(connection="mute"), "both mute IKE SAs to go")
        problem(*raw(live, "POST", f"/ike-sas/{ids[0]}/liveness"), 404)
    finally:
        c.unload_connection("mute", terminate=True)


def test_initiate_from_a_local_address(live: Live) -> None:
    c = live.client()
    ct = {"Content-Type": "application/json"}
    _extra_conn(live, "from3", local_addrs=["%any"])
    try:
        r = c.initiate("from3", local="127.0.0.3")
        assert r["outcome"] == "ike-up", r
        ike = r["event"]["ike-sa"]
        assert ike["local-host"] == "127.0.0.3" and ike["remote-host"] == "127.0.0.2"
        assert [k["local-host"] for k in ike["child-sas"]] == ["127.0.0.3"]
        status, _, got = raw(live, "POST", "/connections/from3/initiate?local=127.0.0.3",
                             body=b'{"local": "127.0.0.3"}', headers=ct)  # the same, twice
        assert status == 200 and got["event"]["ike-sa"]["local-host"] == "127.0.0.3", got
        status, _, got = raw(live, "POST", "/connections/from3/initiate",
                             body=b'{"local": "127.0.0.1"}', headers=ct)
        assert status == 200 and got["event"]["ike-sa"]["local-host"] == "127.0.0.1", got
        before = {s["uniqueid"] for s in c.list_ike_sas()}
        for path, body, status, field, words in (
            ("from3/initiate?local=127.0.0.9", None, 422, "query.local",
             "query.local: ikev2d has no socket to send from 127.0.0.9: it is not among "
             "daemon.listen (127.0.0.1, 127.0.0.3); add it there"),
            ("from3/initiate", {"local": "::1"}, 422, "body.local",
             "body.local: ::1 is IPv6 but connection 'from3' initiates to 127.0.0.2; give "
             "an IPv4 address"),
            ("pair/initiate?local=127.0.0.3", None, 422, "query.local",
             "127.0.0.3 is not in the local_addrs of connection 'pair' (127.0.0.1)"),
            ("from3/initiate?local=224.0.0.1", None, 422, "query.local",
             "cannot be the source of an IKE SA"),
            ("from3/initiate?local=here", None, 400, "query.local", "'here' is not an IP"),
            ("from3/initiate?local=127.0.0.3", {"local": "127.0.0.1"}, 400, "query.local",
             "query.local (127.0.0.3) and body.local (127.0.0.1) differ"),
            ("from3/initiate", {"local": 3}, 400, "body.local", "body.local"),
            ("from3/initiate", {"source": "127.0.0.3"}, 400, "body.source", "unknown member"),
        ):
            p = problem(*raw(live, "POST", f"/connections/{path}", headers=ct,
                             body=json.dumps(body).encode() if body is not None else None),
                        status)
            assert p["field"] == field and words in p["detail"], (path, p)
            if status == 422:
                assert p["type"].endswith(":unusable-address") and p["address"]
        problem(*raw(live, "POST", "/connections/nope/initiate?local=127.0.0.3"), 404)
        assert {s["uniqueid"] for s in c.list_ike_sas()} == before  # nothing initiated
    finally:
        c.unload_connection("from3", terminate=True)
        wait_until(lambda: not c.list_ike_sas(connection="from3"), "from3's IKE SAs to go")


def test_async_client_and_the_mobility_agents_ike_api(live: Live) -> None:
    """AsyncApiClient's initiate(local=), liveness and terminate_ike, as the MN agent uses
    them through mobility.ike_api.RestIkeApi (UNIX socket)."""
    import asyncio

    from api.client import AsyncApiClient
    from mobility.ike_api import RestIkeApi

    _extra_conn(live, "async3", local_addrs=["%any"])

    async def scenario() -> None:
        client = AsyncApiClient(unix_socket=live.socket)
        rest = RestIkeApi(client, timeout=10)
        try:
            up = await rest.initiate("async3", local="127.0.0.3")
            assert up["outcome"] == "ike-up" and up["event"]["ike-sa"]["local-host"] == (
                "127.0.0.3")
            ike_id = up["uniqueid"]
            alive = await client.liveness(ike_id, timeout=5)
            assert alive["alive"] and alive["ike-sa"] == ike_id
            with pytest.raises(ApiClientError) as err:
                await client.initiate("async3", local="127.0.0.9")
            assert err.value.status == 422 and err.value.problem["field"] == "query.local"
            gone = await rest.terminate(ike_id)
            assert gone == {"outcome": "pending", "uniqueid": ike_id,
                            "href": f"/ike-sas/{ike_id}"}
            with pytest.raises(ApiClientError) as err:
                await client.terminate_ike(424242, wait=True, timeout=1)
            assert err.value.status == 404
        finally:
            await rest.close()

    try:
        asyncio.run(scenario())
        wait_until(lambda: not live.client().list_ike_sas(connection="async3"), "async3 gone")
    finally:
        live.client().unload_connection("async3", terminate=True)


def test_handover_refused_by_the_peer_is_502_and_kernel_refusal_409(live: Live) -> None:
    """The responder takes strict@example.org from 127.0.0.1 only: a MOBIKE update to
    127.0.0.3 gets UNACCEPTABLE_ADDRESSES (RFC 4555 §3.5) and the SA stays."""
    from ikev2.config.loader import load_connection_data

    c = live.client()
    strict = {"local_addrs": ["127.0.0.2"], "remote_addrs": ["127.0.0.1"], "psk": PSK,
              "local": {"id": "gw.example.org"}, "remote": {"id": "strict@example.org"},
              "children": {"strict-net": {"local_ts": ["203.0.113.1/32"],
                                          "remote_ts": ["198.51.100.1/32"]}}}
    r = live.responder
    live.call(lambda: r.load_connection(load_connection_data(
        "strict", strict, r.config, "test", others=tuple(r.connections.values()))))
    _extra_conn(live, "strict", local={"id": "strict@example.org"})
    try:
        ike = c.initiate("strict")["event"]["ike-sa"]
        assert ike["mobike"] and ike["local-host"] == "127.0.0.1"
        ike_id = ike["uniqueid"]
        with pytest.raises(ApiClientError) as err:
            c.handover(ike_id, local="127.0.0.3", timeout=5)
        p = err.value.problem
        assert err.value.status == 502 and p["type"].endswith(":handover-refused")
        assert p["notify"] == "UNACCEPTABLE_ADDRESSES" and p["mode"] == "mobike"
        assert "stays at 127.0.0.1[" in p["detail"] and "127.0.0.3[" in p["detail"]
        now = c.ike_sa(ike_id)
        assert now["local-host"] == "127.0.0.1" and now["child-sas"][0]["local-host"] == (
            "127.0.0.1")
        assert [s["local-host"] for s in c.list_ike_sas(connection="strict")] == ["127.0.0.1"]
        # a K-bit move the kernel refuses: 409, nothing moved
        kernel = live.initiator.engine.kernel  # type: ignore[attr-defined]
        live.call(lambda: setattr(kernel, "fail_migrate", "EPERM from the test"))
        try:
            with pytest.raises(ApiClientError) as err:
                c.handover(ike_id, local="127.0.0.3", mode="kbit")
        finally:
            live.call(lambda: setattr(kernel, "fail_migrate", None))
        assert err.value.status == 409 and "EPERM from the test" in str(err.value)
        assert c.ike_sa(ike_id)["local-host"] == "127.0.0.1"
        assert c.liveness(ike_id)["alive"]  # and the SA still works where it is
    finally:
        c.unload_connection("strict", terminate=True)
        live.call(lambda: r.unload_connection("strict"))
        wait_until(lambda: not c.list_ike_sas(connection="strict"), "strict's IKE SA to go")


# --- bodies ------------------------------------------------------------------------------
def test_bad_bodies_are_4xx(live: Live) -> None:
    ct = {"Content-Type": "application/json"}
    for body, want, field in (
        (b"{", 400, "body"), (b"[1,2]", 400, "body"), (b'{"remote_addrs": NaN}', 400, "body"),
        (b"\xff\xfe", 400, "body"), (b"[" * 5000 + b"]" * 5000, 413, None),
        (b'{"remote_addrs": 5}', 400, "body.remote_addrs"),
        (b'{"remote_addrs": ["127.0.0.2"], "bogus": 1}', 400, "body.bogus"),
        (b'{"remote_addrs": ["127.0.0.2"], "mobike": "yes"}', 400, "body.mobike"),
        (b"", 400, "body"),
    ):
        p = problem(*raw(live, "PUT", "/connections/x", body=body, headers=ct), want)
        if field:
            assert p["field"] == field, (body[:40], p)
    p = problem(*raw(live, "PUT", "/connections/x", body=b"{}",
                     headers={"Content-Type": "multipart/form-data"}), 415)
    assert p["field"] == "header.Content-Type"
    big = json.dumps({"remote_addrs": ["127.0.0.2"], "psk": "x" * 5000}).encode()
    problem(*raw(live, "PUT", "/connections/x", body=big, headers=ct), 413)
    problem(*raw(live, "PUT", "/connections/bad%2Fname", body=b"{}", headers=ct), 400)


def test_slow_body_times_out_and_ike_keeps_working(live: Live) -> None:
    host, port = live.api.addresses[0]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"PUT /connections/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                  + live.token.encode() + b"\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"remote")
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 408") and "api.client_timeout" in reply
    # the daemon kept serving IKE: a CHILD_SA rekey goes through
    sa = first_sa(live)
    r = live.client().rekey_child(sa["child-sas"][0]["uniqueid"], wait=True)
    assert r["outcome"] == "child-rekey"


# --- connections -------------------------------------------------------------------------
MIP = {
    "local_addrs": ["127.0.0.1"], "remote_addrs": ["127.0.0.2"], "psk": PSK,
    "ike_proposals": ["aes128gcm16-prfsha256-x25519"], "send_initial_contact": False,
    "local": {"id": "user@example.org"}, "remote": {"id": "gw.example.org"},
    "children": {"mip": {"local_ts": [f"{HOA}/128[mh/5]"],
                         "remote_ts": [f"{HA}/128[mh/6]"],
                         "esp_proposals": ["aes128gcm16"], "mode": "transport"}},
}


def test_load_initiate_lookup_unload(live: Live) -> None:
    c = live.client()
    conn = dict(MIP, remote_port=live.responder.config.ike_port)
    loaded = c.load_connection("mip", conn)
    assert loaded["name"] == "mip" and loaded["children"][0]["local-ts"] == [
        f"{HOA}/128[mh/5]"]
    assert c.load_connection("mip", conn)["name"] == "mip"  # replace: 200
    assert {x["name"] for x in c.list_connections()} >= {"pair", "mip"}
    r = c.initiate("mip", wait=True)
    assert r["outcome"] == "ike-up", r
    ike = r["event"]["ike-sa"]
    mip = ike["child-sas"][0]
    assert mip["mode"] == "TRANSPORT"
    # which SPI protects MH type 5 from the HoA? our outbound SPI of that CHILD_SA
    found = c.lookup(src=HOA, protocol="mh", mh_type=5)
    assert [(m["child-sa"]["name"], m["direction"], m["spi"]) for m in found] == [
        ("mip", "out", mip["spi-out"])]
    back = c.lookup(src=HA, dst=HOA, mh_type=6)
    assert [(m["child-sa"]["name"], m["direction"], m["spi"]) for m in back] == [
        ("mip", "in", mip["spi-in"])]
    assert not c.lookup(src=HOA, mh_type=7)  # the selector is for MH type 5 only
    assert not c.lookup(src=HOA, protocol="udp")
    assert not c.lookup(src="192.0.2.99")
    net = c.lookup(src="198.51.100.1", dst="203.0.113.1", protocol="udp", dst_port=53)
    assert [(m["child-sa"]["name"], m["direction"]) for m in net] == [("net", "out")]
    for query, field in (("", "query.src"), ("src=1.2.3.4&protocol=warp", "query.protocol"),
                         ("src=1.2.3.4&protocol=udp&mh_type=5", "query.mh_type"),
                         ("src=1.2.3.4&icmp_type=3", "query.icmp_type"),
                         ("src=1.2.3.4&mh_type=300", "query.mh_type")):
        assert problem(*raw(live, "GET", f"/child-sas/lookup?{query}"), 400)["field"] == field
    # unload with its SAs
    got = c.unload_connection("mip", terminate=True)
    assert got["terminated"] == [ike["uniqueid"]]
    wait_until(lambda: not c.list_ike_sas(connection="mip"), "mip's IKE SA to go")


def test_load_connection_config_errors_name_the_key(live: Live) -> None:
    ct = {"Content-Type": "application/json"}
    cases = (
        ({"remote_addrs": ["127.0.0.2"], "psk": PSK, "local": {"id": "a@b.c"},
          "children": {"x": {"mode": "tunel"}}}, "body.children.x.mode", "did you mean"),
        ({"remote_addrs": ["nope"], "psk": PSK}, "body.remote_addrs[0]", "not an IP address"),
        ({"remote_addrs": ["127.0.0.2"], "local_addrs": ["127.0.0.9"], "psk": PSK},
         "body.local_addrs", "daemon.listen"),
        ({"remote_addrs": ["127.0.0.2"], "psk": PSK, "local": {"id": "a@b.c"},
          "children": {"net": {}}}, "body.children.net", "already used"),
    )
    for table, field, words in cases:
        p = problem(*raw(live, "PUT", "/connections/broken", body=json.dumps(table).encode(),
                         headers=ct), 422)
        assert p["field"] == field and words in p["detail"], p
    assert "broken" not in {x["name"] for x in live.client().list_connections()}


# --- metrics, openapi, keys ---------------------------------------------------------------
def test_metrics_and_openapi(live: Live) -> None:
    text = live.client().metrics()
    assert 'ikev2_ike_sas{state="ESTABLISHED"}' in text
    assert 'ikev2_events_total{type="ike-up"}' in text
    assert "ikev2_handshake_seconds_count 1" in text or "ikev2_handshake_seconds_count" in text
    assert "ikev2_datagrams_received_total" in text
    doc = live.client().request("GET", "/openapi.json")
    assert doc["openapi"].startswith("3.1") and "/ike-sas/{ike_id}/handover" in doc["paths"]


def test_key_export(live: Live) -> None:
    c = live.client()
    text = c.request("GET", "/keys/esp_sa")
    sa = first_sa(live)
    child = sa["child-sas"][0]
    assert f'"0x{child["spi-in"]}","AES-GCM with 16 octet ICV [RFC4106]","0x' in text
    assert text.count("\n") >= 2 and text.startswith('"IPv4","127.0.0.2","127.0.0.1"')
    r = c.export_keys(esp_file="run1.esp", ike_file="run1.ike")
    assert r["esp-sas"] >= 2 and not r["skipped"]
    ike = (live.tmp / "keys" / "run1.ike").read_text()
    assert f'"{sa["initiator-spi"]}","{sa["responder-spi"]}",' in ike
    path = live.tmp / "keys" / "run1.esp"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and path.read_text() == text
    for name in ("../evil", "/etc/passwd", ".hidden", "a/b", "..", "x" * 200, ""):
        status, headers, body = raw(live, "POST", "/keys/export",
                                    body=json.dumps({"esp_file": name}).encode(),
                                    headers={"Content-Type": "application/json"})
        assert problem(status, headers, body, 400)["field"] == "body.esp_file", name
    assert not (live.tmp / "evil").exists()
    problem(*raw(live, "GET", "/keys/other"), 400)


def test_key_export_is_off_by_default(live: Live) -> None:
    cfg = dataclasses.replace(live.api.config, key_export=False, unix_socket=None)
    server = ApiServer(live.initiator, cfg)
    live.run(server.start())
    try:
        host, port = server.addresses[0]
        client = ApiClient(f"http://{host}:{port}", token=server.token)
        with pytest.raises(ApiClientError) as err:
            client.request("GET", "/keys/esp_sa")
        assert err.value.status == 403 and "api.key_export" in str(err.value)
    finally:
        live.run(server.stop())


def test_child_sa_keys_over_the_unix_socket_only(live: Live) -> None:
    """GET /child-sas/{id}/keys (docs/api.md "CHILD_SA keys", for the Mobile IPv6 agents'
    user-space ESP, REQUIREMENTS 4877-01): never over TCP, even with the token; on the UNIX
    socket the engine's SPIs and keys, the peer's inbound SA being our outbound one (a
    packet sealed with the answer opens with the responder's keys), and a count of the
    earlier answers (an agent that restarts sees its keys were handed out before)."""
    from api import core_adapter
    from mobility.esp import EspKeys, EspReceiver, EspSender, EspTransform

    sa = first_sa(live)
    child = sa["child-sas"][0]
    path = f"/child-sas/{child['uniqueid']}/keys"
    p = problem(*raw(live, "GET", path), 403)
    assert p["type"].endswith(":unix-socket-only") and "UNIX socket" in p["detail"]
    unix = ApiClient(unix_socket=live.socket)
    first = unix.child_keys(child["uniqueid"])
    again = unix.child_keys(child["uniqueid"])
    assert again["handed-out"] == first["handed-out"] + 1
    from api.schemas import COMPONENTS
    from api.validation import check

    check(first, COMPONENTS["ChildSaKeys"], "answer")  # what the OpenAPI document says
    assert {k: first[k] for k in ("uniqueid", "spi-in", "spi-out", "local-ts", "remote-ts")} \
        == {k: child[k] for k in ("uniqueid", "spi-in", "spi-out", "local-ts", "remote-ts")}
    assert (first["in"]["spi"], first["out"]["spi"]) == (child["spi-in"], child["spi-out"])
    assert (first["local-id"], first["remote-id"]) == (sa["local-id"], sa["remote-id"])
    assert (first["encr-id"], first["encr-keysize"], first["integ-id"], first["esn"]) == (
        20, 128, 0, False)
    assert first["outbound"] and first["replay-window"] == 32
    assert len(bytes.fromhex(first["out"]["encr-key"])) == 20  # key | 4-octet salt
    peer = live.call(lambda: next(
        spec for s in live.responder.engine.ike_sas() for c in s.children
        if (spec := core_adapter.child_spec(live.responder.engine, s.ike_id, c.child_id))
        and spec.spi_in == int(child["spi-out"], 16)))
    assert bytes.fromhex(first["out"]["encr-key"]) == peer.encr_key_in
    assert bytes.fromhex(first["in"]["encr-key"]) == peer.encr_key_out
    transform = EspTransform(20, 128, 0, False)
    sealed = EspSender(transform, EspKeys(int(first["out"]["spi"], 16), bytes.fromhex(
        first["out"]["encr-key"]))).seal(b"a Mobility Header", 135)
    opened = EspReceiver(transform, EspKeys(peer.spi_in, peer.encr_key_in)).open(sealed)
    assert (opened.next_header, opened.payload) == (135, b"a Mobility Header")
    with pytest.raises(ApiClientError) as err:
        unix.child_keys(424242)
    assert err.value.status == 404


def test_child_sa_keys_are_off_by_default(live: Live, tmp_path: Path) -> None:
    """Without api.child_sa_keys (or key_export) the keys endpoint answers 403 naming the
    setting, on the UNIX socket too; api.child_sa_keys alone turns it on."""
    child_id = first_sa(live)["child-sas"][0]["uniqueid"]
    for on in (False, True):
        sock = tmp_path / f"k{int(on)}.sock"
        cfg = dataclasses.replace(live.api.config, key_export=False, child_sa_keys=on,
                                  listen=(), unix_socket=str(sock))
        server = ApiServer(live.initiator, cfg)
        live.run(server.start())
        try:
            client = ApiClient(unix_socket=str(sock))
            if on:
                assert client.child_keys(child_id)["uniqueid"] == child_id
                continue
            with pytest.raises(ApiClientError) as err:
                client.child_keys(child_id)
            assert err.value.status == 403 and "api.child_sa_keys = true" in str(err.value)
            assert err.value.problem["type"].endswith(":child-sa-keys-off")
        finally:
            live.run(server.stop())


def test_too_many_streams(live: Live) -> None:
    cfg = dataclasses.replace(live.api.config, max_streams=0, unix_socket=None)
    server = ApiServer(live.initiator, cfg)
    live.run(server.start())
    try:
        host, port = server.addresses[0]
        client = ApiClient(f"http://{host}:{port}", token=server.token)
        with pytest.raises(ApiClientError) as err:
            next(iter(client.events(limit=1)))
        assert err.value.status == 429
    finally:
        live.run(server.stop())


def _ip4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    import ipaddress as ipa
    import struct

    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                    ipa.ip_address(src).packed, ipa.ip_address(dst).packed)
    words = sum(struct.unpack("!10H", h))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    return h[:10] + struct.pack("!H", ~words & 0xFFFF) + h[12:] + payload


def test_tshark_decrypts_with_the_esp_sa_file(live: Live, tmp_path: Path) -> None:
    """The served esp_sa line, given to tshark as is, decrypts an ESP packet sealed with
    the CHILD_SA's outbound key (AES-GCM-16: key | 4-octet salt, RFC 4106)."""
    import struct

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    spi_out = first_sa(live)["child-sas"][0]["spi-out"]
    text = live.client().request("GET", "/keys/esp_sa")
    line = next(x for x in text.splitlines() if f'"0x{spi_out}"' in x)
    key = bytes.fromhex(line.split(",")[5].strip('"')[2:])
    inner = _ip4("198.51.100.1", "203.0.113.1", 17,
                 struct.pack("!HHHH", 1234, 5678, 13, 0) + b"hello")
    pad = (4 - (len(inner) + 2) % 4) % 4
    plain = inner + bytes(range(1, pad + 1)) + bytes([pad, 4])
    head = struct.pack("!II", int(spi_out, 16), 1)
    iv = b"\x07" * 8
    esp = head + iv + AESGCM(key[:-4]).encrypt(key[-4:] + iv, plain, head)
    text = decode_esp(_ip4("127.0.0.1", "127.0.0.2", 50, esp), line, tmp_path)
    assert "Src Port: 1234, Dst Port: 5678" in text, text[-2000:]
