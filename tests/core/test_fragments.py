"""IKE message fragmentation (RFC 7383; REQUIREMENTS E 7383-01..10) between two engines in
memory: negotiation, splitting to the configured size, loss, duplication, reordering,
retransmission and replay, re-fragmentation, and the reassembly bounds."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from ikev2.config.model import ConnectionConfig
from ikev2.core import fragments
from ikev2.core.events import ChildSaEstablished, IkeSaEstablished, IkeSaFailed
from ikev2.core.sa import IkeSa
from ikev2.protocol.codec import parse_message
from ikev2.protocol.enums import ExchangeType, NotifyType, PayloadType
from ikev2.protocol.header import HEADER_LEN, parse_header
from ikev2.protocol.payloads import SKF, Notify
from ikev2.protocol.sk import protect_fragments
from tests.core.harness import Pair
from tests.core.test_certs_auth import ID_A, ID_B, cert_conns, cert_pair, root

_AUTH = ExchangeType.IKE_AUTH


def rsa_conns(**kw) -> tuple[ConnectionConfig, ConnectionConfig]:
    """RSA-2048 certificates through an intermediate: an IKE_AUTH of about 3 KB."""
    from tests.core.test_certs_auth import Ca

    sub = Ca("Frag Sub", "rsa2048", parent=root("Frag Root", "rsa2048"))
    return cert_conns(sub.issue(ID_A, "rsa2048"), sub.issue(ID_B, "rsa2048"), **kw)


def auth_datagrams(pair: Pair, sender: str) -> list[bytes]:
    return [d.data for s, d in pair.wire
            if s == sender and parse_header(d.data).exchange == _AUTH]  # fmt: skip


def is_skf(data: bytes) -> bool:
    return parse_header(data).next_payload == PayloadType.SKF


def skf_of(data: bytes) -> SKF:
    return parse_message(data)[1][-1]


def ok(pair: Pair) -> None:
    assert len(pair.a.of(IkeSaEstablished)) == 1 and len(pair.b.of(IkeSaEstablished)) == 1
    assert len(pair.a.of(ChildSaEstablished)) == 1 and len(pair.b.of(ChildSaEstablished)) == 1
    assert len(pair.a.kernel.children) == 1 and len(pair.b.kernel.children) == 1


def sa_of(pair: Pair, side: str) -> IkeSa:
    node = pair.a if side == "a" else pair.b
    return next(iter(node.engine.by_id.values()))


# -- negotiation and splitting -----------------------------------------------------------
def test_7383_02_ike_auth_split_into_skf_sharing_the_message_id() -> None:
    """7383-01/02/03/04/05: both announced support; each IKE_AUTH message is several SKF
    messages with the same Message ID, numbered 1..n of n, fragment 1 naming the first
    inner payload and the others 0, each within 1280 octets of IPv6 datagram (marker
    included on port 4500)."""
    pair = cert_pair()
    pair.connect(*rsa_conns())
    ok(pair)
    assert sa_of(pair, "a").fragmentation and sa_of(pair, "b").fragmentation
    for sender in "ab":
        grams = auth_datagrams(pair, sender)
        assert len(grams) >= 2 and all(is_skf(g) for g in grams)
        headers = [parse_header(g) for g in grams]
        assert len({h.message_id for h in headers}) == 1
        skfs = [skf_of(g) for g in grams]
        assert [f.fragment_number for f in skfs] == list(range(1, len(grams) + 1))
        assert {f.total_fragments for f in skfs} == {len(grams)}
        assert skfs[0].next_type == PayloadType.IDI if sender == "a" else PayloadType.IDR
        assert all(f.next_type == 0 for f in skfs[1:])
        assert all(len(g) + 40 + 8 + 4 <= 1280 for g in grams)
    # IKE_SA_INIT is never fragmented, and carried the notify both ways (7383-01)
    for _s, d in pair.wire[:2]:
        payloads = parse_message(d.data)[1]
        assert any(isinstance(p, Notify) and p.type == NotifyType.IKEV2_FRAGMENTATION_SUPPORTED
                   for p in payloads)  # fmt: skip


@pytest.mark.parametrize("who", ["initiator", "responder"])
def test_7383_01_no_notify_no_fragments(who: str) -> None:
    """If either side did not announce support, nothing is fragmented (7383-01)."""
    a, b = rsa_conns()
    if who == "initiator":
        a = replace(a, fragmentation=False)
    else:
        b = replace(b, fragmentation=False)
    pair = cert_pair()
    pair.connect(a, b)
    ok(pair)
    assert not sa_of(pair, "a").fragmentation and not sa_of(pair, "b").fragmentation
    for sender in "ab":
        grams = auth_datagrams(pair, sender)
        assert len(grams) == 1 and not is_skf(grams[0]) and len(grams[0]) > 1300


def test_7383_05_configured_fragment_size() -> None:
    """fragment_size caps the IP datagram; defaults are 1280 (IPv6) and 576 (IPv4)."""
    pair = cert_pair()
    a, b = rsa_conns(fragment_size=700)
    pair.connect(a, replace(b, fragment_size=900))
    ok(pair)
    assert all(len(g) + 52 <= 700 for g in auth_datagrams(pair, "a"))
    assert max(len(g) for g in auth_datagrams(pair, "a")) > 600
    assert all(len(g) + 52 <= 900 for g in auth_datagrams(pair, "b"))
    assert fragments.max_message_size(None, ("192.0.2.1", 500), 4500) == 576 - 28
    assert fragments.max_message_size(None, ("192.0.2.1", 4500), 4500) == 576 - 32
    assert fragments.max_message_size(None, ("2001:db8::1", 500), 4500) == 1280 - 48


def test_7383_small_messages_stay_whole() -> None:
    """A PSK IKE_AUTH fits one datagram: no SKF even though fragmentation is on."""
    from tests.core.harness import make_conn

    pair = Pair()
    pair.connect(make_conn())
    ok(pair)
    assert sa_of(pair, "a").fragmentation
    assert all(not is_skf(d.data) for _, d in pair.wire)


# -- loss, duplication, reordering --------------------------------------------------------
def _auth_filter(rule):
    """Apply rule(list of datagrams of one IKE_AUTH burst, sender, burst no.) per burst."""
    state = {"n": {"a": 0, "b": 0}}

    def f(d, sender):
        return rule(d, sender, state)

    return f


def test_7383_09_lost_fragment_retransmits_identical_fragments() -> None:
    """Lose request fragment 2: the retransmission resends every fragment, byte for byte
    the same (7383-09); the responder answers once the set is complete."""
    pair = cert_pair()
    dropped = []

    def drop(d, sender):
        if (sender == "a" and is_skf(d.data) and skf_of(d.data).fragment_number == 2
                and not dropped):
            dropped.append(d.data)
            return []
        return [d]

    pair.filter = drop
    pair.connect(*rsa_conns())
    assert not pair.a.of(IkeSaEstablished)
    assert sa_of(pair, "b").frag_in  # fragments 1 and 3.. wait in reassembly
    pair.advance(5)
    ok(pair)
    grams = auth_datagrams(pair, "a")
    n = skf_of(grams[0]).total_fragments
    assert len(grams) == 2 * n  # the wire also saw the lost one
    assert grams[:n] == grams[n:] and grams[1] == dropped[0]


def test_7383_08_lost_response_fragment_replayed_once_per_retransmission() -> None:
    """Lose response fragment 1: the initiator retransmits all n request fragments; the
    responder replays its whole response once (on request fragment 1 only, 7383-08)
    and creates no second CHILD_SA."""
    pair = cert_pair()
    dropped = []

    def drop(d, sender):
        if sender == "b" and is_skf(d.data) and skf_of(d.data).fragment_number == 1 and not dropped:
            dropped.append(d.data)
            return []
        return [d]

    pair.filter = drop
    pair.connect(*rsa_conns())
    pair.advance(5)
    ok(pair)
    req = auth_datagrams(pair, "a")
    resp = auth_datagrams(pair, "b")
    n_req, n_resp = skf_of(req[0]).total_fragments, skf_of(resp[0]).total_fragments
    assert len(req) == 2 * n_req
    assert len(resp) == 2 * n_resp  # one replay burst, not one per request fragment
    assert resp[:n_resp] == resp[n_resp:]


def test_7383_07_retransmitted_non_first_fragment_triggers_nothing() -> None:
    """7383-07/08: after the exchange, request fragment 2 replayed → no answer; fragment 1
    replayed → the whole response once."""
    pair = cert_pair()
    pair.connect(*rsa_conns())
    ok(pair)
    req = auth_datagrams(pair, "a")
    n_resp = len(auth_datagrams(pair, "b"))
    sa_b = sa_of(pair, "b")
    before = len(pair.wire)
    pair.b.engine.receive_datagram(req[1], sa_b.local, sa_b.remote, pair.now)
    pair.collect()
    assert len(pair.wire) == before
    pair.b.engine.receive_datagram(req[0], sa_b.local, sa_b.remote, pair.now)
    pair.collect()
    assert len(pair.wire) == before + n_resp


def test_7383_duplicated_and_reordered_fragments() -> None:
    """Every datagram duplicated, every burst shuffled: one IKE SA, one CHILD_SA each."""
    pair = cert_pair()
    rng = random.Random(7)
    pending: list = []

    def shuffle(d, sender):
        pending.append(d)
        if not is_skf(d.data):
            out = pending[:]
            pending.clear()
            return out
        skf = skf_of(d.data)
        if skf.fragment_number < skf.total_fragments:
            return []
        out = pending[:] + pending[:]
        pending.clear()
        rng.shuffle(out)
        return out

    pair.filter = shuffle
    pair.connect(*rsa_conns())
    pair.advance(1)
    ok(pair)


def test_7383_06_refragmented_message_replaces_older_set() -> None:
    """7383-06: fragments of a 5-fragment version replace a partial 3-fragment version;
    a late fragment of the 3-fragment version is dropped; the message completes."""
    pair = cert_pair()
    held = []

    def hold(d, sender):
        if sender == "a" and is_skf(d.data):
            held.append(d)
            return []
        return [d]

    pair.filter = hold
    a, b = rsa_conns()
    pair.connect(a, b)
    sa_a, sa_b = sa_of(pair, "a"), sa_of(pair, "b")
    payloads = _sent_auth_payloads(pair, held)
    h = parse_header(held[0].data)

    def version(size: int) -> list[bytes]:
        rnd = random.Random(size).randbytes
        return protect_fragments(sa_a.spi_i, sa_a.spi_r, _AUTH, h.flags, h.message_id,
                                 payloads, sa_a.crypter_out,
                                 lambda: rnd(sa_a.crypter_out.iv_size), size)  # fmt: skip

    big = version(sum(len(d.data) for d in held) // 3 + 200)
    small = version(sum(len(d.data) for d in held) // 5 + 100)
    assert len(big) < len(small)
    for g in big[:-1]:  # all but one of the coarse version
        inject(pair, g, held[0])
    assert sa_b.frag_in["request"].total == len(big)
    inject(pair, small[0], held[0])
    assert sa_b.frag_in["request"].total == len(small)  # restarted with the finer one
    inject(pair, big[-1], held[0])  # old: dropped
    assert len(sa_b.frag_in["request"].parts) == 1
    pair.filter = None
    for g in small[1:]:
        inject(pair, g, held[0])
    pair.deliver_all()
    ok(pair)


def _sent_auth_payloads(pair: Pair, held: list) -> list:
    """Decrypt the held IKE_AUTH request fragments with B's keys: its payloads."""
    from ikev2.protocol.sk import reassemble, unprotect_fragment

    sa_b = sa_of(pair, "b")
    parts = [unprotect_fragment(d.data, parse_header(d.data), sa_b.crypter_in) for d in held]
    return reassemble(parts)


# -- bounds and unauthenticated input ---------------------------------------------------
def inject(pair: Pair, data: bytes, like) -> None:
    """Deliver `data` to B as if it came the way the held datagram `like` did."""
    pair.b.engine.receive_datagram(data, like.remote, like.local, pair.now)


def _half_done() -> tuple[Pair, IkeSa, IkeSa, list]:
    """IKE_SA_INIT done, A's IKE_AUTH fragments held back."""
    pair = cert_pair()
    held = []

    def hold(d, sender):
        if sender == "a" and is_skf(d.data):
            held.append(d)
            return []
        return [d]

    pair.filter = hold
    pair.connect(*rsa_conns())
    return pair, sa_of(pair, "a"), sa_of(pair, "b"), held


def _frag(sa: IkeSa, message_id: int, num: int, total: int, body: bytes = b"x" * 64) -> bytes:
    """One SKF message of `total`, numbered `num`, encrypted with `sa`'s outbound keys."""
    from ikev2.protocol.header import HEADER
    from ikev2.protocol.sk import _padded

    c = sa.crypter_out
    iv = bytes(c.iv_size)
    plain = _padded(body, c.block_size, 0)
    skf_len = 8 + len(iv) + len(plain) + c.icv_size
    aad = (HEADER.pack(sa.spi_i, sa.spi_r, PayloadType.SKF, 0x20, _AUTH, 0x08, message_id,
                       HEADER_LEN + skf_len)
           + bytes((0, 0)) + skf_len.to_bytes(2, "big")
           + num.to_bytes(2, "big") + total.to_bytes(2, "big"))  # fmt: skip
    return aad + iv + c.seal(aad, iv, plain)


def test_7383_10_thousand_incomplete_messages_bounded() -> None:
    """7383-10: 1000 authenticated fragments of 1000 different incomplete messages keep at
    most one reassembly buffer per direction: memory does not grow."""
    pair, sa_a, sa_b, held = _half_done()
    for mid in range(1, 1001):
        inject(pair, _frag(sa_a, mid, 1, 2), held[0])
        assert len(sa_b.frag_in) <= 1
        assert sum(len(p.data) for p in sa_b.frag_in["request"].parts.values()) <= 64
    # only the expected message ID is stored; others are dropped before storage
    assert sa_b.frag_in["request"].message_id == 1


def test_7383_10_too_many_fragments_dropped() -> None:
    """Total Fragments above MAX_FRAGMENTS: dropped, nothing stored; the initiator's
    IKE_AUTH then never completes and it gives up cleanly."""
    pair, sa_a, sa_b, held = _half_done()
    g = _frag(sa_a, 1, 1, fragments.MAX_FRAGMENTS + 1)
    inject(pair, g, held[0])
    assert "request" not in sa_b.frag_in
    pair.advance(300)
    assert pair.a.of(IkeSaFailed) and pair.b.of(IkeSaFailed)
    assert not pair.a.kernel.children and not pair.b.kernel.children


def test_7383_10_oversized_message_discarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """More than MAX_MESSAGE octets of content: the whole set is discarded."""
    monkeypatch.setattr(fragments, "MAX_MESSAGE", 1000)
    pair, sa_a, sa_b, held = _half_done()
    for num in range(1, 16):
        inject(pair, _frag(sa_a, 1, num, 20, b"y" * 100), held[0])
        buf = sa_b.frag_in.get("request")
        assert buf is None or buf.size <= 1000
    assert sa_b.frag_in.get("request") is None or len(sa_b.frag_in["request"].parts) < 10


def test_7383_06_bad_icv_not_stored() -> None:
    """A fragment whose ICV fails is dropped before it is stored (7383-06, §2.6)."""
    pair, _sa_a, sa_b, held = _half_done()
    forged = bytearray(held[0].data)
    forged[-1] ^= 0xFF
    inject(pair, bytes(forged), held[0])
    assert "request" not in sa_b.frag_in
    for d in held:  # the genuine ones still complete the message
        inject(pair, d.data, held[0])
    pair.filter = None
    pair.deliver_all()
    ok(pair)


def test_7383_01_unannounced_fragments_dropped() -> None:
    """An authenticated SKF message on an SA where we did not announce fragmentation
    (RFC 7383 §2.3) is dropped, not stored."""
    pair = cert_pair()
    pair.filter = lambda d, sender: [] if sender == "a" and parse_header(
        d.data).exchange == _AUTH else [d]
    a, b = rsa_conns()
    pair.connect(a, replace(b, fragmentation=False))
    sa_a, sa_b = sa_of(pair, "a"), sa_of(pair, "b")
    assert not sa_a.fragmentation and not sa_b.fragmentation
    pair.b.engine.receive_datagram(_frag(sa_a, 1, 1, 2), sa_b.local, sa_b.remote, pair.now)
    assert not sa_b.frag_in


def test_7383_duplicate_fragment_ignored() -> None:
    pair, _sa_a, sa_b, held = _half_done()
    inject(pair, held[0].data, held[0])
    inject(pair, held[0].data, held[0])
    assert len(sa_b.frag_in["request"].parts) == 1
    for d in held[1:]:
        inject(pair, d.data, held[0])
    pair.filter = None
    pair.deliver_all()
    ok(pair)
