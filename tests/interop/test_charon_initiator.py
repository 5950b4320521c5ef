"""strongSwan charon initiator (ss-a, peer.sh ONLY=a) → ikev2d responder (ss-b).

The same matrix as test_charon_responder.py the other way round: charon A initiates with
`swanctl --initiate` (encap=yes: faked NAT, it floats to 4500); ikev2d answers from ss-b.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from harness import (
    A4,
    A6,
    B4,
    B6,
    ID_A,
    ID_B,
    IN_A4,
    IN_A6,
    IN_B4,
    IN_B6,
    Ikev2d,
    Ikev2dConn,
    Peer,
    compare_sa,
    swanctl_conf,
)  # fmt: skip

pytestmark = [pytest.mark.root, pytest.mark.interop]

IKE_PROPOSALS = [
    "aes128gcm16-prfsha256-x25519",
    "aes256-sha256-modp2048",
    "aes256gcm16-prfsha384-ecp384",
]
ESP_PROPOSALS = ["aes128gcm16", "aes256-sha256"]
FAMILIES = {"v6": (B6, A6), "v4": (B4, A4)}  # ikev2d (local), charon (remote)
WRONG_PSK = "0x" + b"not the peer.sh psk".hex()


def _setup(peer: Peer, ike: str, esp: str) -> None:
    peer.terminate_all("a")
    conf = swanctl_conf("a", peer.psk_secret("a"), {"psk6": (A6, B6), "psk4": (A4, B4)}, ike,
                        esp)  # fmt: skip
    peer.load_conf("a", conf)


def _conn(family: str, ike: str, esp: str, psk: str) -> Ikev2dConn:
    local, remote = FAMILIES[family]
    return Ikev2dConn(
        name=f"psk{family[1]}", local_addr=local, remote_addr=remote, ike_proposals=[ike],
        esp_proposals=[esp], local_id=ID_B, remote_id=ID_A, psk=psk,
        local_ts=[f"{IN_B6}/128", f"{IN_B4}/32"], remote_ts=[f"{IN_A6}/128", f"{IN_A4}/32"],
        initiate=False,
    )  # fmt: skip


def _initiate(peer: Peer, name: str) -> tuple[int, str]:
    r = peer.swanctl("a", "--initiate", "--ike", name, "--child", f"{name}-net", "--timeout",
                     "20", check=False, timeout=60)  # fmt: skip
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("esp", ESP_PROPOSALS)
@pytest.mark.parametrize("ike", IKE_PROPOSALS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_charon_initiates_to_ikev2d(
    peer_a: Peer, ikev2d_runs: Callable[..., Ikev2d], family: str, ike: str, esp: str
) -> None:
    _setup(peer_a, ike, esp)
    conn = _conn(family, ike, esp, peer_a.psk_secret("a"))
    d = ikev2d_runs(peer_a.sb, "ss-b", [B6, B4], [conn])
    try:
        d.wait_ready()
        rc, out = _initiate(peer_a, conn.name)
        assert rc == 0, (
            f"swanctl --initiate failed ({rc}):\n{out[-3000:]}\n--- ikev2d log\n"
            + (d.log()[-3000:])
        )
        ours = d.wait_established(timeout=10)
        sas = [s for s in peer_a.list_sas("a") if s.name == conn.name]
        assert len(sas) == 1, f"charon A SAs: {sas}"
        bad = compare_sa(ours, sas[0], ike_proposal=ike, esp_proposal=esp,
                         ikev2d_initiator=False)  # fmt: skip
        assert not bad, "\n".join(
            [*bad, "--- charon a log (tail)", peer_a.log_tail("a"), "--- ikev2d log (tail)",
             d.log()[-3000:]]
        )  # fmt: skip
    finally:
        peer_a.terminate_all("a")
        d.stop()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_wrong_psk_ikev2d_responder(
    peer_a: Peer, ikev2d_runs: Callable[..., Ikev2d], family: str
) -> None:
    """charon's AUTH does not verify with ikev2d's PSK: ikev2d answers
    AUTHENTICATION_FAILED, charon reports it, and neither side keeps an SA."""
    ike, esp = IKE_PROPOSALS[0], ESP_PROPOSALS[0]
    _setup(peer_a, ike, esp)
    log_start = len(peer_a.log("a"))
    conn = _conn(family, ike, esp, WRONG_PSK)
    d = ikev2d_runs(peer_a.sb, "ss-b", [B6, B4], [conn])
    try:
        d.wait_ready()
        rc, out = _initiate(peer_a, conn.name)
        assert rc != 0, f"charon established with a wrong PSK at ikev2d:\n{out[-2000:]}"
        charon_log = peer_a.log("a")[log_start:]
        assert "received AUTHENTICATION_FAILED notify error" in charon_log, charon_log[-3000:]
        m = d.wait_log(r"AUTHENTICATION_FAILED", timeout=5)
        assert m, f"ikev2d log does not report AUTHENTICATION_FAILED:\n{d.log()[-3000:]}"
        time.sleep(0.5)
        assert peer_a.list_sas("a") == [], "charon kept an SA after AUTHENTICATION_FAILED"
        assert d.state() == [], f"ikev2d kept an SA: {d.state()}"
    finally:
        peer_a.terminate_all("a")
        d.stop()
