"""ikev2d initiator (ss-a) → strongSwan charon responder (ss-b, peer.sh ONLY=b).

Issue 2 acceptance: PSK, IDi user@example.org, over IPv6 and IPv4, IKE proposals
aes128gcm16-prfsha256-x25519 / aes256-sha256-modp2048 / aes256gcm16-prfsha384-ecp384 and
ESP aes128gcm16 / aes256-sha256. charon runs with encap=yes (kernel-libipsec) and fakes a
NAT, so ikev2d must detect it and float to UDP 4500. A case passes when charon shows the IKE
SA ESTABLISHED and the CHILD_SA INSTALLED with the SPIs and algorithms in ikev2d's state
file. One charon for the module; each case loads its own swanctl.conf.
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
    CharonSa,
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
FAMILIES = {"v6": (A6, B6), "v4": (A4, B4)}
WRONG_PSK = "0x" + b"not the peer.sh psk".hex()


def _setup(peer: Peer, ike: str, esp: str) -> None:
    peer.terminate_all("b")
    conf = swanctl_conf("b", peer.psk_secret("b"), {"psk6": (B6, A6), "psk4": (B4, A4)}, ike,
                        esp)  # fmt: skip
    peer.load_conf("b", conf)


def _conn(family: str, ike: str, esp: str, psk: str) -> Ikev2dConn:
    local, remote = FAMILIES[family]
    return Ikev2dConn(
        name=f"psk{family[1]}", local_addr=local, remote_addr=remote, ike_proposals=[ike],
        esp_proposals=[esp], local_id=ID_A, remote_id=ID_B, psk=psk,
        local_ts=[f"{IN_A6}/128", f"{IN_A4}/32"], remote_ts=[f"{IN_B6}/128", f"{IN_B4}/32"],
        initiate=True,
    )  # fmt: skip


def _charon_sa(peer: Peer, name: str, timeout: float = 5.0) -> CharonSa | None:
    deadline = time.monotonic() + timeout
    while True:
        sas = [s for s in peer.list_sas("b") if s.name == name]
        if sas and sas[0].ike.get("state") == "ESTABLISHED" and sas[0].children:
            return sas[0]
        if time.monotonic() > deadline:
            return sas[0] if sas else None
        time.sleep(0.1)


@pytest.mark.parametrize("esp", ESP_PROPOSALS)
@pytest.mark.parametrize("ike", IKE_PROPOSALS)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ikev2d_initiates_to_charon(
    peer_b: Peer, ikev2d_runs: Callable[..., Ikev2d], family: str, ike: str, esp: str
) -> None:
    _setup(peer_b, ike, esp)
    conn = _conn(family, ike, esp, peer_b.psk_secret("b"))
    d = ikev2d_runs(peer_b.sb, "ss-a", [A6, A4], [conn])
    try:
        ours = d.wait_established(timeout=20)
        theirs = _charon_sa(peer_b, conn.name)
        assert theirs is not None, f"charon has no SA {conn.name}\n{peer_b.log_tail('b')}"
        bad = compare_sa(ours, theirs, ike_proposal=ike, esp_proposal=esp,
                         ikev2d_initiator=True)  # fmt: skip
        assert not bad, "\n".join(
            [*bad, "--- charon b log (tail)", peer_b.log_tail("b"), "--- ikev2d log (tail)",
             d.log()[-3000:]]
        )  # fmt: skip
    finally:
        d.stop()
        peer_b.terminate_all("b")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_wrong_psk_ikev2d_initiator(
    peer_b: Peer, ikev2d_runs: Callable[..., Ikev2d], family: str
) -> None:
    """ikev2d sends an AUTH made with another PSK: charon answers AUTHENTICATION_FAILED,
    ikev2d reports it, and neither side keeps an SA."""
    ike, esp = IKE_PROPOSALS[0], ESP_PROPOSALS[0]
    _setup(peer_b, ike, esp)
    log_start = len(peer_b.log("b"))
    conn = _conn(family, ike, esp, WRONG_PSK)
    d = ikev2d_runs(peer_b.sb, "ss-a", [A6, A4], [conn])
    try:
        m = d.wait_log(r"AUTHENTICATION_FAILED", timeout=20)
        assert m, f"ikev2d log does not report AUTHENTICATION_FAILED:\n{d.log()[-3000:]}"
        charon_log = peer_b.log("b")[log_start:]
        # charon's log abbreviates the notify it sends as N(AUTH_FAILED)
        assert "N(AUTH_FAILED)" in charon_log, charon_log[-3000:]
        assert "MAC mismatched" in charon_log or "authentication of" in charon_log
        time.sleep(1.0)  # give both a moment to clean up
        assert peer_b.list_sas("b") == [], "charon kept an SA after AUTHENTICATION_FAILED"
        assert d.state() == [], f"ikev2d kept an SA: {d.state()}"
    finally:
        d.stop()
        peer_b.terminate_all("b")
