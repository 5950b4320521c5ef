"""Loss, duplication, reordering, retransmission and the responder's replay cache
(RFC 7296 §2.1-§2.4; REQUIREMENTS A3)."""

from __future__ import annotations

from ikev2.config.model import EngineConfig, RetransmitConfig
from ikev2.core.events import ChildSaEstablished, IkeSaEstablished, IkeSaFailed
from ikev2.protocol.codec import parse_message
from ikev2.protocol.enums import ExchangeType, NotifyType
from ikev2.protocol.header import parse_header
from ikev2.protocol.payloads import Notify
from tests.core.harness import Pair, make_conn


def _drop_nth(n_list: set[int]):
    seen = {"n": 0}

    def f(d, sender):
        seen["n"] += 1
        return [] if seen["n"] in n_list else [d]

    return f


def test_7296_38_lost_init_request_is_retransmitted() -> None:
    pair = Pair()
    pair.filter = _drop_nth({1})
    pair.connect(make_conn())
    assert not pair.a.of(IkeSaEstablished)
    pair.advance(5)
    assert pair.a.of(IkeSaEstablished) and pair.b.of(IkeSaEstablished)


def test_7296_40_retransmission_is_identical_bytes() -> None:
    pair = Pair()
    pair.filter = _drop_nth({3})  # lose the first IKE_AUTH request
    pair.connect(make_conn())
    pair.advance(5)
    auth_reqs = [d.data for s, d in pair.wire if s == "a"
                 and parse_header(d.data).exchange == ExchangeType.IKE_AUTH]
    assert len(auth_reqs) == 2 and auth_reqs[0] == auth_reqs[1]
    assert pair.a.of(ChildSaEstablished) and pair.b.of(ChildSaEstablished)


def test_7296_39_lost_response_replayed_from_cache() -> None:
    """Lose the IKE_AUTH response: the retransmitted request gets the byte-identical
    cached response and the responder creates exactly one CHILD_SA."""
    pair = Pair()
    pair.filter = _drop_nth({4})
    pair.connect(make_conn())
    pair.advance(5)
    responses = [d.data for s, d in pair.wire if s == "b"
                 and parse_header(d.data).exchange == ExchangeType.IKE_AUTH]
    assert len(responses) == 2 and responses[0] == responses[1]
    assert len(pair.b.kernel.children) == 1 and len(pair.a.kernel.children) == 1
    assert len(pair.b.of(ChildSaEstablished)) == 1


def test_7296_42_duplicated_datagrams() -> None:
    pair = Pair()
    pair.filter = lambda d, s: [d, d]
    pair.connect(make_conn())
    assert len(pair.a.of(IkeSaEstablished)) == 1 and len(pair.b.of(IkeSaEstablished)) == 1
    assert len(pair.b.engine.by_id) == 1  # one half-open SA, not two
    assert len(pair.b.kernel.children) == 1


def test_reordering_and_duplication_of_auth() -> None:
    """Deliver IKE_AUTH twice, swapped with a stale IKE_SA_INIT retransmission."""
    pair = Pair()
    held: list = []

    def f(d, sender):
        if sender == "a" and parse_header(d.data).exchange == ExchangeType.IKE_AUTH:
            init = next(x for s, x in pair.wire if s == "a")
            return [d, init, d]
        return [d]

    pair.filter = f
    pair.connect(make_conn())
    assert not held
    assert len(pair.a.of(IkeSaEstablished)) == 1 and len(pair.b.of(IkeSaEstablished)) == 1
    assert len(pair.b.kernel.children) == 1


def test_7296_41_exponential_backoff_then_give_up() -> None:
    rt = RetransmitConfig(timeout=1.0, base=2.0, tries=3, max_interval=60)
    pair = Pair()
    pair.filter = lambda d, s: [] if s == "a" else [d]
    pair.connect(make_conn(retransmit=rt))
    times: list[float] = []
    orig = pair.collect

    def collect() -> None:
        times.extend(pair.now for _ in pair.a.engine._out)
        orig()

    pair.collect = collect  # type: ignore[method-assign]
    pair.advance(100)
    assert [t - 1000.0 for t in times] == [1.0, 3.0, 7.0]
    failed = pair.a.of(IkeSaFailed)
    assert failed and "not responding" in failed[0].reason
    assert not pair.a.engine.by_id


def test_7296_43_response_to_source_port() -> None:
    pair = Pair()
    pair.a.engine.load_connection(make_conn())
    from tests.core.harness import mirror

    pair.b.engine.load_connection(mirror(make_conn()))
    pair.a.engine.initiate("home", pair.now)
    d = pair.a.engine.datagrams_to_send()[0]
    pair.b.engine.receive_datagram(d.data, d.remote, ("2001:db8:1::1", 31337), pair.now)
    out = pair.b.engine.datagrams_to_send()
    assert out and out[0].remote == ("2001:db8:1::1", 31337)


def test_half_open_timeout_on_responder() -> None:
    pair = Pair(engine_config=EngineConfig(half_open_timeout=10))
    pair.filter = lambda d, s: [] if parse_header(d.data).exchange == ExchangeType.IKE_AUTH \
        else [d]
    pair.connect(make_conn(retransmit=RetransmitConfig(tries=0, timeout=100)))
    assert len(pair.b.engine.by_id) == 1
    pair.advance(11)
    assert not pair.b.engine.by_id and not pair.b.engine.half_open
    assert pair.b.of(IkeSaFailed)


def test_7296_44_cookie_round_trip() -> None:
    """Above the threshold the responder keeps no state and answers N(COOKIE) only; the
    initiator retries with N(COOKIE) first and the rest unchanged (7296-45)."""
    pair = Pair(engine_config=EngineConfig(cookie_threshold=0))
    pair.connect(make_conn())
    assert pair.a.of(IkeSaEstablished) and pair.b.of(IkeSaEstablished)
    first_req, cookie_resp, retry = (parse_message(d.data) for _, d in pair.wire[:3])
    assert [type(p).__name__ for p in cookie_resp[1]] == ["Notify"]
    cookie = cookie_resp[1][0]
    assert cookie.type == NotifyType.COOKIE
    assert isinstance(retry[1][0], Notify) and retry[1][0].data == cookie.data
    assert retry[1][1:] == first_req[1] and retry[0].spi_i == first_req[0].spi_i


def test_7296_46_bad_cookie_gets_fresh_cookie() -> None:
    pair = Pair(engine_config=EngineConfig(cookie_threshold=0))
    from tests.core.harness import mirror

    pair.b.engine.load_connection(mirror(make_conn()))
    pair.a.engine.load_connection(make_conn())
    pair.a.engine.initiate("home", pair.now)
    pair.collect()
    pair.deliver_all()
    # rotate twice: the cookie the initiator holds no longer verifies
    pair.b.engine.cookies.rotate(b"x" * 32)
    pair.b.engine.cookies.rotate(b"y" * 32)
    sa = next(iter(pair.a.engine.by_id.values()))
    assert sa.cookie is not None
    pair.a.engine.by_id.clear()
    pair.a.engine.by_spi.clear()
    pair2 = pair  # a stale cookie → the responder answers with a new COOKIE
    req = [d for s, d in pair2.wire if s == "a"
           and parse_header(d.data).exchange == ExchangeType.IKE_SA_INIT][-1]
    pair.b.engine.receive_datagram(req.data, req.remote, req.local, pair.now)
    out = pair.b.engine.datagrams_to_send()
    note = parse_message(out[0].data)[1][0]
    assert note.type == NotifyType.COOKIE and note.data != sa.cookie
