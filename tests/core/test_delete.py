"""INFORMATIONAL deletes and shutdown (RFC 7296 §1.4.1; 7296-32/33/34)."""

from __future__ import annotations

from ikev2.config.model import RetransmitConfig
from ikev2.core.events import ChildSaDeleted, IkeSaDeleted
from ikev2.protocol.codec import parse_message
from ikev2.protocol.enums import ExchangeType
from ikev2.protocol.header import parse_header
from tests.core.harness import Pair, make_conn


def _up(**kw) -> tuple[Pair, int]:
    pair = Pair()
    ike_id = pair.connect(make_conn(**kw))
    assert pair.a.kernel.children and pair.b.kernel.children
    return pair, ike_id


def _clean(pair: Pair) -> None:
    for n in (pair.a, pair.b):
        assert not n.engine.by_id and not n.engine.by_spi and not n.engine.half_open
        assert not n.kernel.children and not n.kernel.spis


def test_7296_34_initiator_deletes_ike_sa() -> None:
    pair, ike_id = _up()
    pair.a.engine.terminate(ike_id, pair.now)
    pair.deliver_all()
    _clean(pair)
    assert pair.a.of(IkeSaDeleted) and pair.b.of(IkeSaDeleted)
    assert pair.a.of(ChildSaDeleted) and pair.b.of(ChildSaDeleted)
    info = [parse_header(d.data).exchange for _, d in pair.wire[4:]]
    assert info == [ExchangeType.INFORMATIONAL] * 2


def test_responder_deletes_ike_sa() -> None:
    pair, _ = _up()
    b_id = next(iter(pair.b.engine.by_id))
    pair.b.engine.terminate(b_id, pair.now)
    pair.deliver_all()
    _clean(pair)


def test_shutdown_deletes_everything() -> None:
    pair, _ = _up()
    pair.a.engine.shutdown(pair.now)
    pair.deliver_all()
    _clean(pair)


def test_crossing_ike_deletes() -> None:
    pair, ike_id = _up()
    pair.a.engine.terminate(ike_id, pair.now)
    pair.b.engine.terminate(next(iter(pair.b.engine.by_id)), pair.now)
    pair.deliver_all()
    pair.advance(200)
    _clean(pair)


def test_delete_unanswered_gives_up() -> None:
    pair, ike_id = _up(retransmit=RetransmitConfig(timeout=1, tries=2))
    pair.filter = lambda d, s: []
    pair.a.engine.terminate(ike_id, pair.now)
    assert not pair.a.kernel.children  # kernel state goes at once
    pair.advance(60)
    assert not pair.a.engine.by_id
    assert "did not answer" in pair.a.of(IkeSaDeleted)[0].reason


def test_7296_33_peer_deletes_child() -> None:
    """The responder deletes the named inbound SA and answers with its own SPI."""
    from ikev2.core import informational

    pair, ike_id = _up()
    sa = pair.a.engine.by_id[ike_id]
    child = next(iter(sa.children.values()))
    from ikev2.core import child as childmod

    spi_in = child.spec.spi_in
    childmod.remove(pair.a.engine, sa, child, "test")
    informational.delete_spis(pair.a.engine, sa, [spi_in], pair.now)
    pair.deliver_all()
    assert not pair.b.kernel.children
    resp = parse_message(pair.wire[-1][1].data)
    assert resp[0].exchange == ExchangeType.INFORMATIONAL
    assert pair.b.of(ChildSaDeleted)
    assert pair.a.engine.by_id and pair.b.engine.by_id  # the IKE SA stays


def test_7296_32_empty_informational_answered() -> None:
    pair, ike_id = _up()
    sa = pair.a.engine.by_id[ike_id]
    got = []
    pair.a.engine.send_request(
        sa, ExchangeType.INFORMATIONAL, [], lambda e, s, h, p, d, n: got.append(p), pair.now
    )
    pair.deliver_all()
    assert got == [[]]
