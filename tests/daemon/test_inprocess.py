"""Two `ikev2.daemon.runner.Daemon`s in one asyncio loop, on real loopback UDP sockets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import struct
import time
from pathlib import Path

import pytest

from ikev2.daemon.demo import check_agreement
from ikev2.daemon.runner import Daemon
from tests.daemon.helpers import (
    Side,
    established,
    make_daemon,
    render,
    until,
    v4_pair,
    v6_pair,
)


def both_up(i: Daemon, r: Daemon) -> bool:
    return bool(established(i.engine.ike_sas()) and established(r.engine.ike_sas()))


async def start_pair(a: Side, b: Side, *, mobike: bool = True,
                     state_file: Path | None = None) -> tuple[Daemon, Daemon]:
    """Responder on b, then initiator on a (start_action = initiate)."""
    r = make_daemon(render(b, a, initiate=False, mobike=mobike), "responder.toml")
    r.start()
    i = make_daemon(
        render(a, b, initiate=True, mobike=mobike, state_file=state_file), "initiator.toml"
    )
    try:
        i.start()
    except BaseException:
        r.close()
        raise
    return i, r


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}" for r in caplog.records
        if r.exc_info or r.levelno >= logging.ERROR
    ]


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_pair_establishes_and_shutdown_deletes_on_peer(
    family: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # two daemons on ::1 differ in ports (see test_v6_same_address_with_mobike)
    a, b = v4_pair() if family == "ipv4" else v6_pair()
    mobike = family == "ipv4"

    async def scenario() -> None:
        i, r = await start_pair(a, b, mobike=mobike)
        try:
            await until(lambda: both_up(i, r), "IKE SA + CHILD_SA on both sides")
            sa_i, sa_r = established(i.engine.ike_sas()), established(r.engine.ike_sas())
            assert sa_i is not None and sa_r is not None
            assert check_agreement(sa_i, sa_r) == []
            assert sa_i.initiator and not sa_r.initiator
            assert sa_i.local[0] == a.address and sa_i.remote[0] == b.address
            assert sa_i.local_id == "user@example.org" and sa_i.remote_id == "gw.example.org"
            assert sa_i.children[0].local_ts == ("198.51.100.1/32",)
            assert sa_i.children[0].remote_ts == ("203.0.113.1/32",)
            if not mobike:
                assert sa_i.local == (a.address, a.ike_port)
                assert sa_i.remote == (b.address, b.ike_port)
            await i.shutdown(timeout=5.0)
            assert i.engine.ike_sas() == []
            await until(lambda: not r.engine.ike_sas(), "the responder to drop the IKE SA")
        finally:
            i.close()
            r.close()

    asyncio.run(scenario())
    assert "deleted by peer" in caplog.text
    assert "ikev2d stopped" in caplog.text
    assert no_tracebacks(caplog) == []


def test_v6_same_address_with_mobike() -> None:
    a, b = v6_pair()

    async def scenario() -> None:
        i, r = await start_pair(a, b, mobike=True)
        try:
            # the peer is not on our IKE port: no float to NAT-T, IKE_AUTH goes to its port
            await until(lambda: both_up(i, r), "IKE SA + CHILD_SA on both sides")
            sa = i.engine.ike_sas()[0]
            assert sa.remote == (b.address, b.ike_port) and sa.local != sa.remote
        finally:
            i.close()
            r.close()

    asyncio.run(scenario())


def _ike_header(spi_i: bytes, exchange: int, flags: int, msg_id: int, length: int,
                next_payload: int = 33) -> bytes:
    return spi_i + b"\0" * 8 + struct.pack("!BBBBII", next_payload, 0x20, exchange, flags,
                                           msg_id, length)


def garbage(rng: random.Random) -> tuple[list[bytes], list[bytes]]:
    """(datagrams for the IKE port, datagrams for the NAT-T port)."""
    spi = rng.randbytes(8)
    ike = [
        b"",
        b"\x00",
        rng.randbytes(3),
        _ike_header(spi, 34, 0x08, 0, 28)[:10],  # truncated header
        _ike_header(spi, 34, 0x08, 0, 28)[:27],
        _ike_header(spi, 34, 0x08, 0, 28),  # IKE_SA_INIT with no payloads
        _ike_header(spi, 34, 0x08, 0, 500) + rng.randbytes(40),  # length beyond the datagram
        _ike_header(spi, 34, 0x08, 0, 28 + 40) + rng.randbytes(40),  # garbage payloads
        _ike_header(spi, 34, 0x08, 0, 20),  # length shorter than the header
        _ike_header(spi, 35, 0x08, 1, 28 + 32, 46) + rng.randbytes(32),  # SK for no SA
        _ike_header(spi, 37, 0x20, 5, 28),  # response to nothing
        _ike_header(spi, 99, 0x08, 0, 28),  # unknown exchange
        spi + b"\0" * 8 + bytes([33, 0x30, 34, 0x08]) + b"\0" * 4 + struct.pack("!I", 28),  # v3
    ]
    ike += [rng.randbytes(rng.randrange(1, 400)) for _ in range(40)]
    natt = [
        b"\xff",  # NAT-keepalive (RFC 3948 §2.3)
        b"\x00",
        b"\x00\x00\x00",
        b"\x00\x00\x00\x00",  # a marker and nothing
        b"\x00\x00\x00\x00" + _ike_header(spi, 34, 0x08, 0, 28)[:12],
        rng.randbytes(60),  # "ESP" without the marker
        b"\x12\x34\x56\x78" + rng.randbytes(40),
    ]
    natt += [b"\x00\x00\x00\x00" + d for d in ike]
    return ike, natt


def test_garbage_on_both_ports_then_establish(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    a, b = v4_pair()
    ike_data, natt_data = garbage(random.Random(7296))

    async def scenario() -> None:
        r = make_daemon(render(b, a, initiate=False), "responder.toml")
        r.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((a.address, 0))
                for d in ike_data:
                    s.sendto(d, (b.address, b.ike_port))
                for d in natt_data:
                    s.sendto(d, (b.address, b.natt_port))
                # an echo through the responder's sockets proves they were all read
                await asyncio.sleep(0)
                await until(lambda: _drained(r), "the responder to read the garbage")
            assert r.dropped == 0
            i = make_daemon(render(a, b, initiate=True), "initiator.toml")
            i.start()
            try:
                await until(lambda: both_up(i, r), "an IKE SA after the garbage")
            finally:
                i.close()
        finally:
            r.close()

    asyncio.run(scenario())
    assert no_tracebacks(caplog) == []
    assert "Traceback" not in caplog.text
    assert "NAT-keepalive" in caplog.text  # the NAT-T port classified what it ignored


def _drained(d: Daemon) -> bool:
    """True when no socket of `d` has a datagram queued."""
    assert d.sockets is not None
    for us in d.sockets.sockets:
        try:
            us.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        return False
    return True


def test_state_file_while_running_and_after_stop(tmp_path: Path) -> None:
    a, b = v4_pair()
    state = tmp_path / "i.json"
    before = time.time()

    def doc() -> dict:
        return json.loads(state.read_text())

    async def scenario() -> None:
        i, r = await start_pair(a, b, state_file=state)
        try:
            await until(lambda: both_up(i, r), "IKE SA + CHILD_SA")
            await until(lambda: state.exists() and doc()["ike_sas"], "the state file")
            d = doc()
            assert d["version"] == 1
            assert d["running"] is True
            assert d["pid"] == os.getpid()
            sa = d["ike_sas"][0]
            assert sa["state"] == "ESTABLISHED"
            assert isinstance(sa["spi_i"], int) and isinstance(sa["spi_r"], int)
            assert sa["local"][0] == "127.0.0.1" and sa["remote"][0] == "127.0.0.2"
            child = sa["children"][0]
            # UNIX times (not the engine's monotonic clock): between test start and now
            for t in (d["written_at"], sa["established_at"], child["installed_at"]):
                assert before - 1 <= t <= time.time() + 1
            # deadlines too: default IKE rekey 4h (jitter 24m), CHILD rekey 1h (6m)
            assert before + 3.5 * 3600 <= sa["rekey_at"] <= time.time() + 4 * 3600 + 1
            assert sa["expire_at"] > sa["rekey_at"]
            assert before + 0.8 * 3600 <= child["rekey_at"] <= time.time() + 3600 + 1
            assert child["expire_at"] > child["rekey_at"]
            await i.shutdown(timeout=5.0)
        finally:
            i.close()
            r.close()

    asyncio.run(scenario())
    d = doc()
    assert d["running"] is False
    assert d["ike_sas"] == []
    assert not list(tmp_path.glob(".*.tmp"))  # atomic replace left no temp file


def test_shutdown_with_silent_peer_gives_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    a, b = v4_pair()

    async def scenario() -> None:
        i, r = await start_pair(a, b)
        try:
            await until(lambda: both_up(i, r), "IKE SA + CHILD_SA")
            r.close()  # the peer vanishes without a word
            await i.shutdown(timeout=0.3)
        finally:
            i.close()
            r.close()

    asyncio.run(scenario())
    assert "no answer to 1 delete(s)" in caplog.text
    assert no_tracebacks(caplog) == []


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    a, b = v4_pair()

    async def scenario() -> None:
        d = make_daemon(render(a, b, initiate=False, state_file=tmp_path / "s.json"))
        d.start()
        d.close()
        d.close()

    asyncio.run(scenario())
    assert json.loads((tmp_path / "s.json").read_text())["running"] is False


def test_initiate_from_a_local_address_is_checked_against_sockets_and_host() -> None:
    """initiate_sa(local=...): a wildcard socket sends from any address this host has
    (IP_PKTINFO); one it lacks, one of the other family and a non-address are refused with
    what to change, and nothing is initiated (no socket at all: tests/api)."""
    from ikev2.errors import UnusableAddress
    from tests.daemon.helpers import free_ports

    ports = free_ports(("0.0.0.0", "127.0.0.2"), 4)
    a = Side("127.0.0.1", ports[0], ports[1], "user@example.org", "198.51.100.1/32")
    b = Side("127.0.0.2", ports[2], ports[3], "gw.example.org", "203.0.113.1/32")

    async def scenario() -> None:
        r = make_daemon(render(b, a, initiate=False, mobike=False), "responder.toml")
        r.start()
        text = render(a, b, initiate=False, mobike=False).replace(
            'listen = ["127.0.0.1"]', 'listen = ["0.0.0.0"]', 1).replace(
            'local_addrs = ["127.0.0.1"]', 'local_addrs = ["%any"]', 1)
        i = make_daemon(text, "initiator.toml")
        try:
            i.start()
            for local, words in (
                ("192.0.2.55", "192.0.2.55 is not an address of this host (cannot assign "
                               "requested address); configure it on an interface first"),
                ("::1", "::1 is IPv6 but connection 'pair' initiates to 127.0.0.2"),
                ("127.0.0.one", "'127.0.0.one' is not an IP address"),
            ):
                with pytest.raises(UnusableAddress) as err:
                    i.initiate_sa("pair", local=local)
                assert words in str(err.value), err.value
            assert i.engine.ike_sas() == [] and not i.initiated_at
            with pytest.raises(KeyError):  # an unknown connection stays the engine's error
                i.initiate_sa("nope", local="127.0.0.1")
            ike_id = i.initiate_sa("pair", local="127.0.0.1")
            await until(lambda: both_up(i, r), "IKE SA + CHILD_SA from 127.0.0.1")
            sa = i.engine.ike_sa(ike_id)
            assert sa is not None and sa.local == ("127.0.0.1", a.ike_port)
            assert sa.children[0].local == "127.0.0.1"
        finally:
            i.close()
            r.close()

    asyncio.run(scenario())
