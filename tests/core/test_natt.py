"""NAT detection and UDP encapsulation (RFC 7296 §2.23, RFC 3948; REQUIREMENTS A10)."""

from __future__ import annotations

from ikev2.core.events import Datagram, IkeSaEstablished
from tests.core.harness import A_ADDR, Pair, make_conn, mirror

PUBLIC = ("2001:db8:ffff::1", 61000)


def _natted(pair: Pair):
    """A sits behind a NAT that maps A_ADDR:* to PUBLIC."""

    def f(d: Datagram, sender: str) -> list[Datagram]:
        if sender == "a":
            return [Datagram(d.data, (PUBLIC[0], PUBLIC[1] + (d.local[1] != 500)), d.remote)]
        return [Datagram(d.data, d.local, (A_ADDR, 500 if d.remote[1] == PUBLIC[1] else 4500))]

    return f


def test_7296_73_nat_detected_moves_to_4500_and_encapsulates() -> None:
    pair = Pair()
    pair.filter = _natted(pair)
    conn = make_conn(mobike=False)
    pair.connect(conn, mirror(conn, remote_addrs=("%any",)))
    a = pair.a.of(IkeSaEstablished)[0].ike
    b = pair.b.of(IkeSaEstablished)[0].ike
    assert a.nat_local and not a.nat_remote and a.encap
    assert b.nat_remote and not b.nat_local and b.encap
    assert a.local[1] == 4500 and a.remote[1] == 4500
    assert b.remote == (PUBLIC[0], PUBLIC[1] + 1)  # answers go to the NAT mapping
    ka = next(iter(pair.a.kernel.children.values()))
    kb = next(iter(pair.b.kernel.children.values()))
    assert ka.encap == (4500, 4500)
    assert kb.encap == (4500, PUBLIC[1] + 1)


def test_forced_encapsulation_fakes_nat() -> None:
    """encap = yes: our NAT-D source hash is faked, so both sides encapsulate (as charon)."""
    pair = Pair()
    pair.connect(make_conn(encap=True, mobike=False))
    a = pair.a.of(IkeSaEstablished)[0].ike
    b = pair.b.of(IkeSaEstablished)[0].ike
    assert a.encap and b.encap and b.nat_remote and not a.nat_local
    assert a.local[1] == 4500
    for k in (pair.a.kernel, pair.b.kernel):
        assert next(iter(k.children.values())).encap == (4500, 4500)


def test_no_nat_no_mobike_stays_on_500() -> None:
    pair = Pair()
    pair.connect(make_conn(mobike=False))
    a = pair.a.of(IkeSaEstablished)[0].ike
    assert not a.encap and a.local[1] == 500 and a.remote[1] == 500
    assert next(iter(pair.a.kernel.children.values())).encap is None


def test_4555_02_mobike_moves_to_4500_without_nat() -> None:
    pair = Pair()
    pair.connect(make_conn(mobike=True))
    a = pair.a.of(IkeSaEstablished)[0].ike
    assert a.mobike and a.local[1] == 4500 and not a.encap
    assert next(iter(pair.a.kernel.children.values())).encap is None
