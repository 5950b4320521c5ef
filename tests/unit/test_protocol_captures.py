"""Real strongSwan 5.9.8 traffic (/work/shared/interop/captures, pcapng, Ethernet): every
IKE message parses (header + unprotected payloads, as `tshark -V` shows them), and with
the keys charon logged the SK / SKF payloads decrypt, reassemble, parse and re-encode
byte for byte (RFC 7296 §3, RFC 5282 AES-GCM-16, RFC 7383)."""

from __future__ import annotations

import pytest
from test_protocol_support import CAPTURES, GcmCrypter, charon_keys, ike_datagrams

from ikev2.protocol.codec import encode_payloads, parse_message
from ikev2.protocol.header import parse_header
from ikev2.protocol.payloads import SK, SKF, Notify, Payload
from ikev2.protocol.sk import protect, protect_fragments, reassemble, unprotect, unprotect_fragment

pytestmark = pytest.mark.skipif(not CAPTURES.is_dir(), reason="no interop captures")

INIT_REQ = ["SA", "KE", "Nonce", "N16388", "N16389", "N16430", "N16431", "N16406"]
INIT_RESP = ["SA", "KE", "Nonce", "N16388", "N16389", "CERTREQ", "N16430", "N16431",
             "N16418", "N16404"]

# (frame, exchange, flags, message id, payloads) as tshark -V shows them
EXPECTED = {
    "psk-v6": [
        (6, 34, 0x08, 0, INIT_REQ), (7, 34, 0x20, 0, INIT_RESP),
        (8, 35, 0x08, 1, ["SK"]), (9, 35, 0x20, 1, ["SK"]),
        (25, 37, 0x00, 0, ["SK"]), (26, 37, 0x08, 2, ["SK"]),
        (27, 37, 0x28, 0, ["SK"]), (28, 37, 0x20, 2, ["SK"]),
        (31, 37, 0x08, 3, ["SK"]), (32, 37, 0x20, 3, ["SK"]),
    ],
    "cert-v4": [
        (5, 34, 0x08, 0, INIT_REQ), (6, 34, 0x20, 0, INIT_RESP),
        (7, 35, 0x08, 1, ["SKF"]), (8, 35, 0x08, 1, ["SKF"]),
        (9, 35, 0x20, 1, ["SKF"]), (10, 35, 0x20, 1, ["SKF"]),
        (24, 37, 0x08, 2, ["SK"]), (25, 37, 0x20, 2, ["SK"]),
    ],
}



def names(payloads: list[Payload]) -> list[str]:
    return [f"N{p.type}" if isinstance(p, Notify) else type(p).__name__ for p in payloads]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_7296_01_07_every_captured_message_parses(name: str) -> None:
    seen = []
    for d in ike_datagrams(CAPTURES / f"{name}.pcap"):
        hdr, payloads = parse_message(d.ike)
        assert hdr.major == 2 and hdr.length == len(d.ike)
        assert (d.sport, d.dport) == ((500, 500) if hdr.exchange == 34 else (4500, 4500))
        seen.append((d.frame, hdr.exchange, hdr.flags, hdr.message_id, names(payloads)))
    assert seen == EXPECTED[name]


def crypters(name: str) -> tuple[GcmCrypter, GcmCrypter]:
    keys = charon_keys(CAPTURES / f"{name}-charon-a.log")
    return GcmCrypter(keys["Sk_ei"]), GcmCrypter(keys["Sk_er"])


def test_7296_21_psk_v6_decrypts_and_reencodes() -> None:
    ei, er = crypters("psk-v6")
    inner = {}
    for d in ike_datagrams(CAPTURES / "psk-v6.pcap"):
        hdr, outer = parse_message(d.ike)
        if hdr.exchange == 34:
            continue
        c = ei if hdr.is_initiator else er
        payloads = unprotect(d.ike, hdr, c)
        inner[d.frame] = names(payloads)
        # byte-exact rebuild with the same IV (charon adds no padding to GCM)
        sk = outer[-1]
        assert isinstance(sk, SK)
        rebuilt = protect(hdr.spi_i, hdr.spi_r, hdr.exchange, hdr.flags, hdr.message_id,
                          payloads, c, sk.data[:8])
        assert rebuilt == d.ike
    assert inner[8][:8] == ["IDi", "N16384", "CERTREQ", "IDr", "AUTH", "SA", "TSi", "TSr"]
    assert inner[9][:5] == ["IDr", "AUTH", "SA", "TSi", "TSr"]
    assert inner[31] == ["Delete"] and inner[32] == []


def test_7383_cert_v4_fragments_reassemble() -> None:
    ei, er = crypters("cert-v4")
    frags: dict[bool, list[SKF]] = {True: [], False: []}
    raw: dict[bool, list[bytes]] = {True: [], False: []}
    for d in ike_datagrams(CAPTURES / "cert-v4.pcap"):
        hdr = parse_header(d.ike)
        if hdr.next_payload != 53:
            continue
        c = ei if hdr.is_initiator else er
        frags[hdr.is_initiator].append(unprotect_fragment(d.ike, hdr, c))
        raw[hdr.is_initiator].append(d.ike)
    req = reassemble(frags[True])
    resp = reassemble(frags[False])
    assert names(req)[:7] == ["IDi", "CERT", "N16384", "CERTREQ", "IDr", "AUTH", "SA"]
    assert names(resp)[:6] == ["IDr", "CERT", "AUTH", "SA", "TSi", "TSr"]
    # our fragmenter reproduces charon's fragments given its IVs and fragment size
    for initiator, payloads in ((True, req), (False, resp)):
        msgs = raw[initiator]
        hdr = parse_header(msgs[0])
        _, [first] = parse_message(msgs[0])
        assert isinstance(first, SKF)
        ivs = [parse_message(m)[1][0].data[:8] for m in msgs]  # type: ignore[union-attr]
        again = protect_fragments(
            hdr.spi_i, hdr.spi_r, hdr.exchange, hdr.flags, hdr.message_id, payloads,
            ei if initiator else er, ivs, len(msgs[0]),
        )
        assert again == msgs
    assert encode_payloads(req)[1] == b"".join(f.data for f in frags[True])
