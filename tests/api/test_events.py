"""The event stream during a scripted run: initiate, rekey CHILD, rekey IKE, handover, a
refused handover, a liveness check, terminate → ike-up, child-up, child-rekey, ike-rekey,
ike-update, ike-update-failed, ike-alive, ike-down; filters and Last-Event-ID replay."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.client import ApiClientError
from tests.api.harness import Live, start_live, wait_until


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A pair whose initiator has not initiated yet."""
    pair = start_live(tmp_path_factory.mktemp("events"), initiate=False)
    yield pair
    pair.stop()


class Collector(threading.Thread):
    def __init__(self, live: Live, **kw: Any) -> None:
        super().__init__(daemon=True)
        self.events: list[dict[str, Any]] = []
        self.kw = kw
        self.live = live
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for e in self.live.client().events(**self.kw):
                self.events.append(e)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


def subscribed(live: Live, n: int) -> None:
    wait_until(lambda: len(live.api.ctx.hub.subscribers) >= n,  # type: ignore[union-attr]
               "the event stream to subscribe")


def test_scripted_run_streams_every_event(quiet: Live, tmp_path: Path) -> None:
    live = quiet
    everything = Collector(live, duration=20)
    only_ike = Collector(live, types=["ike-up", "ike-down"], limit=2)
    everything.start()
    only_ike.start()
    subscribed(live, 2)
    c = live.client()
    up = c.initiate("pair", wait=True)
    assert up["outcome"] == "ike-up"
    ike_id = up["uniqueid"]
    child_id = up["event"]["ike-sa"]["child-sas"][0]["uniqueid"]
    wait_until(lambda: "child-up" in everything.types(), "child-up")
    r = c.rekey_child(child_id, wait=True)
    assert r["outcome"] == "child-rekey" and r["uniqueid"] != child_id
    r = c.rekey_ike(ike_id, wait=True)
    assert r["outcome"] == "ike-rekey"
    new_ike = r["uniqueid"]
    assert new_ike != ike_id and r["event"]["old-uniqueid"] == ike_id
    moved = c.handover(new_ike, local="127.0.0.3")  # auto: MOBIKE, the peer agrees
    assert moved["moved"] and moved["ike-sa"]["local-host"] == "127.0.0.3"
    assert moved["mode"] == "mobike"
    again = c.handover(new_ike, local="127.0.0.3")
    assert not again["moved"] and again["mode"] == "none"
    kernel = live.initiator.engine.kernel  # type: ignore[attr-defined]
    live.call(lambda: setattr(kernel, "fail_migrate", "not now"))
    try:
        with pytest.raises(ApiClientError) as err:  # a K-bit move the kernel refuses
            c.handover(new_ike, local="127.0.0.1", mode="kbit")
        assert err.value.status == 409
    finally:
        live.call(lambda: setattr(kernel, "fail_migrate", None))
    alive = c.liveness(new_ike)
    assert alive["alive"] and alive["ike-sa"] == new_ike
    r = c.terminate_ike(new_ike, wait=True)
    assert r["outcome"] == "ike-down", r
    wait_until(lambda: "ike-down" in everything.types(), "ike-down on the stream")
    types = everything.types()
    want = ["ike-up", "child-up", "child-rekey", "ike-rekey", "ike-update",
            "ike-update-failed", "ike-alive", "ike-down"]
    positions = [types.index(t) for t in want]
    assert positions == sorted(positions), types
    failed = everything.events[types.index("ike-update-failed")]
    assert failed["uniqueid"] == new_ike and failed["local-host"] == "127.0.0.1"
    assert failed["remote-host"] == "127.0.0.2" and failed["notify"] is None
    assert "kernel refused" in failed["reason"] and "not now" in failed["reason"]
    seen = everything.events[types.index("ike-alive")]
    assert seen["uniqueid"] == new_ike and seen["rtt-ms"] == alive["rtt-ms"]
    ids = [e["id"] for e in everything.events]
    assert ids == sorted(ids)
    update = everything.events[types.index("ike-update")]
    assert update["old-local-host"] == "127.0.0.1" and update["ike-sa"]["local-host"] == (
        "127.0.0.3")
    rekey = everything.events[types.index("child-rekey")]
    assert rekey["old-uniqueid"] == child_id and rekey["ike-sa"] == ike_id
    only_ike.join(10)
    assert only_ike.error is None and only_ike.types() == ["ike-up", "ike-down"]
    # replay: everything after the first event, from the server's ring
    first = everything.events[0]["id"]
    replayed = list(c.events(last_id=first, limit=len(ids) - 1))
    assert [e["id"] for e in replayed] == ids[1:]
    wait_until(lambda: not c.list_ike_sas(), "the SA table to empty")


def test_stream_parameters_are_checked(quiet: Live) -> None:
    c = quiet.client()
    for kw in ({"types": ["ike-sideways"]}, {"limit": 0}, {"duration": -1}):
        with pytest.raises(ApiClientError) as err:
            next(iter(c.events(**kw)))  # type: ignore[arg-type]
        assert err.value.status == 400
    assert list(c.events(duration=0.05)) == []
