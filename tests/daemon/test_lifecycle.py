"""The lifetime and liveness keys drive the engine over real sockets: rekeys of both SA
kinds, and dead peer detection with dpd_action clear / restart."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ikev2.daemon.demo import check_agreement
from tests.daemon.helpers import established, make_daemon, render, until, v4_pair
from tests.daemon.test_inprocess import both_up, no_tracebacks

FAST_IKE = 'rekey_time = "1s"\nover_time = "5s"\nrand_time = "0.2s"\n'
FAST_CHILD = 'rekey_time = "0.5s"\nlife_time = "5s"\nrand_time = "0.1s"\n'


def test_ike_and_child_rekey_over_sockets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    a, b = v4_pair()

    async def scenario() -> None:
        r = make_daemon(render(b, a, initiate=False), "responder.toml")
        r.start()
        i = make_daemon(render(a, b, initiate=True, conn_extra=FAST_IKE, child_extra=FAST_CHILD),
                        "initiator.toml")
        try:
            i.start()
            await until(lambda: both_up(i, r), "IKE SA + CHILD_SA")
            first = established(i.engine.ike_sas())
            assert first is not None
            await until(lambda: "IKE_SA pair[1] rekeyed to pair[" in caplog.text
                        and "CHILD_SA net{1} rekeyed to net{" in caplog.text, "both rekeys")
            await until(lambda: len(i.engine.ike_sas()) == 1 == len(r.engine.ike_sas())
                        and both_up(i, r), "the old IKE SA to go")
            sa_i, sa_r = established(i.engine.ike_sas()), established(r.engine.ike_sas())
            assert sa_i is not None and sa_r is not None
            assert (sa_i.spi_i, sa_i.spi_r) != (first.spi_i, first.spi_r)
            assert check_agreement(sa_i, sa_r) == []
            await i.shutdown(timeout=5.0)
            await until(lambda: not r.engine.ike_sas(), "the responder to drop the IKE SA")
        finally:
            i.close()
            r.close()

    asyncio.run(scenario())
    assert no_tracebacks(caplog) == []


@pytest.mark.parametrize("action", ["clear", "restart"])
def test_dead_peer_detection(caplog: pytest.LogCaptureFixture, action: str) -> None:
    caplog.set_level(logging.INFO)
    a, b = v4_pair()
    dpd = f'dpd_delay = "0.2s"\ndpd_action = "{action}"\n' \
          "retransmit = { timeout = 0.1, base = 1.0, tries = 1 }\n"

    async def scenario() -> None:
        r = make_daemon(render(b, a, initiate=False), "responder.toml")
        r.start()
        i = make_daemon(render(a, b, initiate=True, conn_extra=dpd), "initiator.toml")
        try:
            i.start()
            await until(lambda: both_up(i, r), "IKE SA + CHILD_SA")
            r.close()  # the peer dies silently
            await until(lambda: "peer not responding (INFORMATIONAL" in caplog.text,
                        "the liveness check to fail")
            if action == "clear":
                assert i.engine.ike_sas() == []
            else:
                await until(lambda: "dpd_action = restart, re-initiating" in caplog.text
                            and any(s.ike_id > 1 for s in i.engine.ike_sas()),
                            "a new IKE SA")
        finally:
            i.close()
            r.close()

    asyncio.run(scenario())
    assert no_tracebacks(caplog) == []
