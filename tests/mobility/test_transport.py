"""BU/BA over UDP (DSMIPv6-style encapsulation, RFC 5555 §4.1; no kernel MIPv6 needed) with
RFC 6275 §11.8 retransmission, on loopback sockets (REQUIREMENTS 5555-02, 4877-11, 4877-15)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from mobility.authorization import AuthorizationMap
from mobility.binding_cache import BindingCache, policy_for
from mobility.checksum import mh_checksum
from mobility.errors import BindingAckTimeout, TransportError
from mobility.handover import FakeMover, HaDecision, home_agent_handler
from mobility.mh import BindingAck, BindingError, BindingUpdate, build_mh, parse_mh
from mobility.options import AlternateCareOfAddress, Ipv4CareOfAddress
from mobility.registry import BaStatus, BeStatus, BuFlags
from mobility.transport import (
    DSMIPV6_UDP_PORT,
    IPV6_HEADER,
    BindingUpdateClient,
    BindingUpdateServer,
    ReceivedBu,
    RetransmitPolicy,
    decapsulate,
    encapsulate,
    inner_header,
)

HOA, HA = "2001:db8:1::a", "2001:db8:1::1"
COA1, COA2 = "2001:db8:2::1", "2001:db8:3::2"
ALICE = "alice@example.org"
FAST = RetransmitPolicy(initial=0.02, maximum=0.08, initial_first_registration=0.03)
T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 10.0) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(guarded())


def ba_bu() -> BindingUpdate:
    return BindingUpdate(0, BuFlags.A | BuFlags.H | BuFlags.K, 100)


# --- encapsulation ---------------------------------------------------------------------------
def test_port_and_constants() -> None:
    """5555-02: UDP port 4191 (IANA dsmipv6) [M]; RFC 6275 §12 timers 1 s and 32 s."""
    assert DSMIPV6_UDP_PORT == 4191
    assert RetransmitPolicy() == RetransmitPolicy(1.0, 32.0, 1.5, False)


def test_encapsulation_layout() -> None:
    """UDP payload = IPv6 header (src HoA, dst HA, next header 135) + MH whose checksum
    uses those inner addresses: the HoA travels as the inner source."""
    bu = BindingUpdate(7, BuFlags.A | BuFlags.H | BuFlags.K, 100)
    data = encapsulate(bu, src=HOA, dst=HA)
    mh = build_mh(bu, src=HOA, dst=HA)
    assert data[:8] == bytes.fromhex("60000000" "0010" "87" "40")
    assert data[8:24] == ipaddress.IPv6Address(HOA).packed
    assert data[24:40] == ipaddress.IPv6Address(HA).packed
    assert data[40:] == mh and len(data) == IPV6_HEADER.size + 16
    pkt = decapsulate(data)
    assert (pkt.src, pkt.dst, pkt.msg) == (ipaddress.IPv6Address(HOA),
                                           ipaddress.IPv6Address(HA), bu)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d[:30], "too short"),
    (lambda d: b"\x40" + d[1:], "version 4"),
    (lambda d: d + b"\x00", "payload length"),
    (lambda d: d[:6] + b"\x11" + d[7:], "neither 135 .MH. nor 50 .ESP."),
])
def test_bad_encapsulations(mutate: Callable[[bytes], bytes], message: str) -> None:
    data = encapsulate(ba_bu(), src=HOA, dst=HA)
    with pytest.raises(TransportError, match=message):
        inner_header(mutate(data))


def test_esp_is_not_decapsulated_without_the_sa() -> None:
    """RFC 5555 §4.1: next header 50 is ESP; `decapsulate` (unprotected MH only) refuses
    it rather than parsing ciphertext as a Mobility Header."""
    data = encapsulate(ba_bu(), src=HOA, dst=HA)
    esp = data[:6] + b"\x32" + data[7:]
    assert inner_header(esp)[2] == 50
    with pytest.raises(TransportError, match="ESP-protected"):
        decapsulate(esp)


def test_inner_checksum_is_verified() -> None:
    data = bytearray(encapsulate(ba_bu(), src=HOA, dst=HA))
    data[8 + 15] ^= 1  # another inner source: the MH checksum no longer verifies
    with pytest.raises(ValueError, match="checksum"):
        decapsulate(bytes(data))


# --- retransmission schedule -----------------------------------------------------------------
def test_backoff_schedule() -> None:
    """RFC 6275 §11.8: 1 s, doubled each time up to MAX_BINDACK_TIMEOUT (32 s); first
    registration starts at InitialBindackTimeoutFirstReg (1.5 s, §13)."""
    assert list(RetransmitPolicy().delays()) == [1, 2, 4, 8, 16, 32]
    assert list(RetransmitPolicy().delays(first_registration=True)) == [
        1.5, 3, 6, 12, 24, 32]
    forever = RetransmitPolicy(keep_at_maximum=True).delays()
    assert [next(forever) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 32, 32, 32]
    with pytest.raises(ValueError):
        RetransmitPolicy(initial=0)
    with pytest.raises(ValueError):
        RetransmitPolicy(initial=5, maximum=1)


# --- loopback end to end ---------------------------------------------------------------------
class Ha:
    """An HA on ::1 with a binding cache, a fake mover and a hook to lose messages."""

    def __init__(self, **policy: object) -> None:
        policy.setdefault("allow_loopback_coa", True)
        self.cache = BindingCache(policy_for(["2001:db8:1::/64"], **policy),
                                  AuthorizationMap({ALICE: [HOA]}))
        self.mover = FakeMover()
        self.decisions: list[HaDecision] = []
        self.now = 0.0
        self.drop_bus = 0  # lose this many BUs before they reach the cache
        self.drop_bas = 0  # process, then lose this many BAs
        self.seen: list[int] = []
        inner = home_agent_handler(self.cache, self.mover, identity_for=lambda coa: ALICE,
                                   clock=lambda: self.now, on_decision=self.decisions.append)

        async def handler(rx: ReceivedBu) -> BindingAck | None:
            self.seen.append(rx.bu.seq)
            if self.drop_bus:
                self.drop_bus -= 1
                return None
            ba = await inner(rx)
            if self.drop_bas:
                self.drop_bas -= 1
                return None
            return ba

        self.handler = handler
        self.server: BindingUpdateServer | None = None

    async def start(self, host: str = "::1") -> BindingUpdateServer:
        self.server = await BindingUpdateServer.open((host, 0), self.handler)
        return self.server

    async def client(self, host: str = "::1", **kwargs: object) -> BindingUpdateClient:
        assert self.server is not None
        kwargs.setdefault("policy", FAST)
        return await BindingUpdateClient.open(
            hoa=HOA, ha_address=HA, ha_endpoint=self.server.local, local=(host, 0),
            **kwargs,  # type: ignore[arg-type]
        )


def test_registration_and_k_bit_move_over_loopback() -> None:
    """A BU from the MN's socket reaches the HA cache, the BA comes back with K, and a
    second BU from a new CoA (Alternate CoA option: loopback has one address) makes the HA
    move the IKE SA (4877-11) — after accepting the BU (4877-15)."""
    ha = Ha()

    async def scenario() -> tuple[BindingAck, BindingAck, BindingAck]:
        server = await ha.start()
        client = await ha.client()
        try:
            first = await client.register(ba_bu(), first_registration=True)
            moved = await client.register(BindingUpdate(
                0, BuFlags.A | BuFlags.H | BuFlags.K, 100, (AlternateCareOfAddress(COA1),)))
            again = await client.register(BindingUpdate(
                0, BuFlags.A | BuFlags.H | BuFlags.K, 100, (AlternateCareOfAddress(COA2),)))
            return first, moved, again
        finally:
            client.close()
            server.close()

    first, moved, again = run(scenario())
    assert first == BindingAck(BaStatus.ACCEPTED, 1, first.flags, 100) and first.key_mgmt
    assert (moved.seq, again.seq) == (2, 3)
    assert [c["remote"] for c in ha.mover.calls] == [COA1, COA2]
    assert all(c["identity"] == ALICE and c["mode"] == "kbit" for c in ha.mover.calls)
    assert ha.cache.primary_coa(HOA, 0) == ipaddress.ip_address(COA2)


def test_lost_bu_is_retransmitted_with_a_new_sequence_number() -> None:
    """RFC 6275 §11.8 back-off; each retransmission has a greater seq (§11.7.1), and the
    BA for the last one completes the registration."""
    ha = Ha()
    ha.drop_bus = 2

    async def scenario() -> tuple[BindingAck, list[int]]:
        server = await ha.start()
        client = await ha.client()
        try:
            ba = await client.register(ba_bu())
            return ba, [b.seq for b in client.sent]
        finally:
            client.close()
            server.close()

    ba, sent = run(scenario())
    assert sent == [1, 2, 3] and ha.seen == [1, 2, 3]
    assert ba.accepted and ba.seq == 3 and ha.cache.last_seq(HOA) == 3


def test_lost_ba_does_not_get_the_retransmission_rejected() -> None:
    """The HA accepted seq 1 but its BA was lost: the retransmission (seq 2) is still
    greater, so it is accepted rather than answered with 135."""
    ha = Ha()
    ha.drop_bas = 1

    async def scenario() -> BindingAck:
        server = await ha.start()
        client = await ha.client()
        try:
            return await client.register(ba_bu())
        finally:
            client.close()
            server.close()

    ba = run(scenario())
    assert ba.accepted and ba.seq == 2 and ha.seen == [1, 2]


def test_no_answer_ends_in_binding_ack_timeout() -> None:
    ha = Ha()
    ha.drop_bus = 100

    async def scenario() -> None:
        server = await ha.start()
        client = await ha.client()
        try:
            await client.register(ba_bu())
        finally:
            client.close()
            server.close()

    with pytest.raises(BindingAckTimeout) as err:
        run(scenario())
    assert err.value.sent == len(list(FAST.delays())) == 3
    assert ha.seen == [1, 2, 3]


def test_status_135_resynchronises_the_sequence_number() -> None:
    """RFC 6275 §11.7.3: a BA with 135 carries the HA's last accepted number; the MN goes
    on from there."""
    ha = Ha()
    ha.cache.process_bu(BindingUpdate(500, BuFlags.A | BuFlags.H, 100), hoa=HOA,
                        source="::1", identity=ALICE, now=0)

    async def scenario() -> tuple[BindingAck, list[int]]:
        server = await ha.start()
        client = await ha.client()
        try:
            ba = await client.register(ba_bu())
            return ba, [b.seq for b in client.sent]
        finally:
            client.close()
            server.close()

    ba, sent = run(scenario())
    assert sent == [1, 501] and ba.accepted and ba.seq == 501


def test_ipv4_care_of_address_registration() -> None:
    """5555-02/05: a BU over UDP/IPv4 registers an IPv4 CoA (IPv4 CoA option = the outer
    source: no NAT)."""
    ha = Ha()

    async def scenario() -> BindingAck:
        server = await ha.start("127.0.0.1")
        client = await ha.client("127.0.0.1")
        try:
            return await client.register(BindingUpdate(
                0, BuFlags.A | BuFlags.H, 100, (Ipv4CareOfAddress("127.0.0.1"),)))
        finally:
            client.close()
            server.close()

    ba = run(scenario())
    assert ba.accepted and ba.options == ()
    assert ha.cache.primary_coa(HOA, 0) == ipaddress.ip_address("127.0.0.1")
    assert not ha.decisions[0].outcome.nat_detected


def _exchange(server_endpoint: tuple[str, int], data: bytes) -> bytes | None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        s.sendto(data, server_endpoint)
        try:
            return s.recv(2048)
        except TimeoutError:
            return None


def test_server_answers_unknown_types_and_drops_junk() -> None:
    """RFC 6275 §9.2: unknown MH type → Binding Error status 2 (home address = inner src);
    bad checksum → silent drop; non-BU messages and junk → dropped."""
    ha = Ha()

    async def scenario() -> list[bytes | None]:
        server = await ha.start()
        loop = asyncio.get_running_loop()
        unknown = bytearray(encapsulate(ba_bu(), src=HOA, dst=HA))
        unknown[40 + 2] = 42  # MH type 42, then fix the checksum for it
        unknown[44:46] = mh_checksum(HOA, HA, bytes(unknown[40:])).to_bytes(2, "big")
        corrupt = bytearray(encapsulate(ba_bu(), src=HOA, dst=HA))
        corrupt[-1] ^= 0xFF
        brr_from_mn = encapsulate(BindingAck(0, 1), src=HOA, dst=HA)
        answers = []
        for data in (bytes(unknown), bytes(corrupt), brr_from_mn, b"junk"):
            answers.append(await loop.run_in_executor(None, _exchange, server.local, data))
        server.close()
        return answers

    be_data, corrupt, other, junk = run(scenario())
    assert corrupt is None and other is None and junk is None
    assert be_data is not None
    src, dst, nxt, mh = inner_header(be_data)
    assert nxt == 135
    assert (str(src), str(dst)) == (HA, HOA)
    be = parse_mh(mh, src=src, dst=dst)
    assert be == BindingError(BeStatus.UNRECOGNIZED_MH_TYPE, HOA)
    assert ha.server is not None
    assert ha.server.stats.binding_errors == 1 and ha.server.stats.dropped == 3
    assert ha.seen == []


def test_client_ignores_foreign_answers() -> None:
    """Only a BA from the HA's address to our HoA with a pending seq completes a
    registration; junk and other messages are dropped."""

    async def scenario() -> BindingAck:
        got: list[BindingAck] = []

        async def handler(rx: ReceivedBu) -> BindingAck | None:
            got.append(BindingAck(0, rx.bu.seq))
            return None

        server = await BindingUpdateServer.open(("::1", 0), handler)
        client = await BindingUpdateClient.open(hoa=HOA, ha_address=HA,
                                                ha_endpoint=server.local, local=("::1", 0),
                                                policy=RetransmitPolicy(0.2, 0.2))
        task = asyncio.ensure_future(client.register(ba_bu()))
        while not got:
            await asyncio.sleep(0.005)
        # the client's socket is connected to the HA endpoint (the kernel drops anything
        # from elsewhere), so the test sends through the server's own socket
        assert server._transport is not None
        for data in (b"junk",
                     encapsulate(BindingAck(0, 1), src=COA1, dst=HOA),  # not the HA
                     encapsulate(BindingAck(0, 1), src=HA, dst=COA1),  # not our HoA
                     encapsulate(BindingAck(0, 99), src=HA, dst=HOA),  # no such seq
                     encapsulate(BindingError(2), src=HA, dst=HOA),
                     encapsulate(BindingAck(0, 1), src=HA, dst=HOA)):
            server._transport.sendto(data, client.local)
        try:
            return await task
        finally:
            client.close()
            server.close()

    assert run(scenario()) == BindingAck(0, 1)


def test_closed_client_refuses_to_send() -> None:
    async def scenario() -> None:
        client = BindingUpdateClient(hoa=HOA, ha_address=HA, ha_endpoint=("::1", 9))
        with pytest.raises(TransportError):
            await client.register(ba_bu())
        with pytest.raises(TransportError):
            _ = client.local

    run(scenario())
