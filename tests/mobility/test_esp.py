"""ESP in user space (mobility/esp.py, RFC 4303) for the BU/BA on the MH-over-UDP path
(RFC 5555 §4.1, REQUIREMENTS 4877-01 / 5555-02).

Known answers: two AES-GCM ESP packets of draft-mcgrew-gcm-test-01 (one with extended
sequence numbers: its AAD is SPI | high | low, RFC 4106 §5), as transcribed in public test
code and checked here against `cryptography`; the ESP example of RFC 7634 Appendix A from
shared/rfc/vectors.md. Encrypt-then-MAC (AES-CBC, AES-CTR, NULL with HMAC-SHA2 and the
AES MACs) is cross-checked against `cryptography` and `hmac` directly, ESN's high bits
after the ciphertext (RFC 4303 §2.2.1). tshark decrypts what the sender builds, given the
`esp_sa` line of ikev2d's key export. There is no kernel ESP on this host to cross-check
against."""

from __future__ import annotations

import hmac
import ipaddress
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ikev2.protocol.enums import EncrId, IntegId
from mobility.errors import (
    EspIntegrityError,
    EspPaddingError,
    EspReplay,
    EspSequenceExhausted,
    EspTruncated,
    EspUnknownSpi,
    EspUnsupported,
)
from mobility.esp import (
    EspKeys,
    EspReceiver,
    EspSender,
    EspTransform,
    ReplayWindow,
    spi_of,
)
from tests.tshark import decode_esp


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


GCM128 = EspTransform(EncrId.AES_GCM_16, 128, 0, False)


# --- known answers -------------------------------------------------------------------------
KATS = [
    pytest.param(  # draft-mcgrew-gcm-test-01, AES-128, SPI 00004321, ESN 87654321:00000000
        EspTransform(EncrId.AES_GCM_16, 128, 0, True),
        h("4c80cdefbb5d10da906ac73c3613a634 2e443b68"), 0x4321, 0x87654321_00000000,
        h("4956ed7e3b244cfe"),
        h("45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000"
          "00000000045f736970045f756470037369700963796265726369747902646b00"
          "0021000101020201"),
        h("fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34"
          "cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce"
          "61bc17d768fd9732459018148f6cbe722fd04796562dfdb4"),
        id="mcgrew-aes128-esn"),
    pytest.param(  # draft-mcgrew-gcm-test-01, AES-256, SPI 4a2cbfe3, sequence number 2
        EspTransform(EncrId.AES_GCM_16, 256, 0, False),
        h("abbccddef00112233445566778899aababbccddef00112233445566778899aab 11223344"),
        0x4A2CBFE3, 2, h("0102030405060708"),
        h("4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000"
          "7002400020bf0000020405b40101040201020201"),
        h("ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
          "748a637985771d347f0545659f14e99def842d8eb335f4eecfdbf831824b4c49"
          "15956c96"),
        id="mcgrew-aes256"),
    pytest.param(  # RFC 7634 Appendix A (shared/rfc/vectors.md RFC7634-A): ciphertext | tag
        EspTransform(EncrId.CHACHA20_POLY1305, None, 0, False),
        h("80818283 84858687 88898A8B 8C8D8E8F 90919293 94959697 98999A9B 9C9D9E9F "
          "A0A1A2A3"), 0x01020304, 5, h("10111213 14151617"),
        h("45000054 A6F20000 4001E778 C6336405 C0000205 08005B7A 3A080000 553BEC10 "
          "00073627 08090A0B 0C0D0E0F 10111213 14151617 18191A1B 1C1D1E1F 20212223 "
          "24252627 28292A2B 2C2D2E2F 30313233 34353637 01020204"),
        h("24039428 B97F417E 3C13753A 4F05087B 67C352E6 A7FAB1B9 82D466EF 407AE5C6 "
          "14EE8099 D52844EB 61AA95DF AB4C02F7 2AA71E7C 4C4F64C9 BEFE2FAC C638E8F3 "
          "CBEC163F AC469B50 2773F6FB 94E664DA 9165B828 29F641E0 "
          "76AAA826 6B7FB0F7 B11B3699 07E1AD43"),
        id="rfc7634-A"),
]


@pytest.mark.parametrize(("transform", "key", "spi", "seq", "iv", "plain", "sealed"), KATS)
def test_known_answer_packets(transform: EspTransform, key: bytes, spi: int, seq: int,
                              iv: bytes, plain: bytes, sealed: bytes) -> None:
    """Each vector's plaintext ends in its ESP trailer (padding 1, 2, Pad Length 2, Next
    Header): the sender, given the payload before it, builds the whole packet byte for
    byte (IV = the counter XOR the mask, so the mask is set to give the vector's IV); the
    receiver returns payload and Next Header. With ESN only the low 32 bits are sent."""
    payload, next_header = plain[:-4], plain[-1]
    keys = EspKeys(spi, key)
    sender = EspSender(transform, keys, seq=seq - 1, iv_mask=int.from_bytes(iv, "big") ^ seq)
    packet = sender.seal(payload, next_header)
    assert packet == struct.pack("!II", spi, seq & 0xFFFFFFFF) + iv + sealed
    receiver = EspReceiver(transform, keys)
    receiver.window.top = seq - 1  # ESN: the high half comes from the window (A2.2)
    opened = receiver.open(packet)
    assert (opened.seq, opened.next_header, opened.payload) == (seq, next_header, payload)
    if transform.encr_id == EncrId.AES_GCM_16:  # and the vector is what `cryptography` says
        aad = spi.to_bytes(4, "big") + (seq.to_bytes(8, "big") if transform.esn
                                        else seq.to_bytes(4, "big"))
        assert AESGCM(key[:-4]).encrypt(key[-4:] + iv, plain, aad) == sealed


# --- cross-checks against `cryptography` ---------------------------------------------------
MACS = {IntegId.HMAC_SHA1_96: ("sha1", 20, 12), IntegId.HMAC_SHA2_256_128: ("sha256", 32, 16),
        IntegId.HMAC_SHA2_384_192: ("sha384", 48, 24),
        IntegId.HMAC_SHA2_512_256: ("sha512", 64, 32)}


@pytest.mark.parametrize("esn", [False, True])
@pytest.mark.parametrize("integ_id", list(MACS))
@pytest.mark.parametrize("bits", [128, 256])
def test_cbc_hmac_matches_cryptography(bits: int, integ_id: IntegId, esn: bool) -> None:
    """AES-CBC + HMAC (RFC 3602, RFC 4868): ICV = HMAC(SPI | seq | IV | ciphertext [| seq
    high]) truncated, padding to the 16-octet block (RFC 4303 §2.4, §2.2.1, §3.3.2.1)."""
    name, klen, icv = MACS[integ_id]
    ekey, ikey, iv = bytes(range(bits // 8)), bytes(range(100, 100 + klen)), bytes(16)[:-1]
    iv += b"\x42"
    transform = EspTransform(EncrId.AES_CBC, bits, integ_id, esn)
    seq = (7 << 32 | 9) if esn else 9
    sender = EspSender(transform, EspKeys(0xC0FFEE01, ekey, ikey), seq=seq - 1,
                       random=lambda n: iv)
    mh = bytes(range(24))
    packet = sender.seal(mh, 135)
    plain = mh + bytes(range(1, 7)) + bytes([6, 135])  # 24 + 6 + 2 = 32 octets
    enc = Cipher(algorithms.AES(ekey), modes.CBC(iv)).encryptor()
    ct = enc.update(plain) + enc.finalize()
    head = struct.pack("!II", 0xC0FFEE01, 9)
    tag = hmac.digest(ikey, head + iv + ct + ((7).to_bytes(4, "big") if esn else b""),
                      name)[:icv]
    assert packet == head + iv + ct + tag
    receiver = EspReceiver(transform, EspKeys(0xC0FFEE01, ekey, ikey))
    receiver.window.top = seq - 1
    assert receiver.open(packet).payload == mh


def test_gcm_esn_high_bits_are_authenticated() -> None:
    """RFC 4106 §5: with ESN the AAD is SPI | high | low; a receiver that infers other
    high bits fails the tag (the high half is never sent)."""
    transform = EspTransform(EncrId.AES_GCM_16, 128, 0, True)
    keys = EspKeys(0x1000, bytes(20))
    packet = EspSender(transform, keys, seq=(1 << 32) + 4, iv_mask=0).seal(b"MH", 135)
    assert packet[4:8] == (5).to_bytes(4, "big")
    iv, body = packet[8:16], packet[16:]
    aad = (0x1000).to_bytes(4, "big") + ((1 << 32) + 5).to_bytes(8, "big")
    assert AESGCM(bytes(16)).decrypt(bytes(4) + iv, body, aad) == b"MH\x00\x87"  # no pad
    early = EspReceiver(transform, keys)  # its window says high = 0
    with pytest.raises(EspIntegrityError):
        early.open(packet)
    assert early.window.top == 0
    late = EspReceiver(transform, keys)
    late.window.top = (1 << 32) + 1
    assert late.open(packet).seq == (1 << 32) + 5


# --- every algorithm ikev2d negotiates: round trip and tampering ---------------------------
ALGORITHMS = [
    (EncrId.AES_GCM_16, 128, 0), (EncrId.AES_GCM_16, 256, 0), (EncrId.AES_GCM_12, 128, 0),
    (EncrId.AES_GCM_8, 192, 0), (EncrId.AES_CCM_16, 128, 0), (EncrId.AES_CCM_8, 256, 0),
    (EncrId.CHACHA20_POLY1305, None, 0),
    (EncrId.AES_CBC, 128, IntegId.HMAC_SHA2_256_128), (EncrId.AES_CBC, 256, IntegId.HMAC_SHA1_96),
    (EncrId.AES_CBC, 192, IntegId.AES_XCBC_96), (EncrId.AES_CBC, 128, IntegId.AES_CMAC_96),
    (EncrId.AES_CTR, 128, IntegId.HMAC_SHA2_512_256), (EncrId.NULL, None,
                                                      IntegId.HMAC_SHA2_256_128),
]


def pair(encr: int, bits: int | None, integ: int, esn: bool = False, window: int = 32
         ) -> tuple[EspSender, EspReceiver]:
    import os

    transform = EspTransform(encr, bits, integ, esn)
    ek = os.urandom(transform.encr.key_size)
    ik = os.urandom(transform.integ.key_size) if transform.integ else b""
    keys = EspKeys(0x0BADCAFE, ek, ik)
    return EspSender(transform, keys), EspReceiver(transform, keys, window=window)


@pytest.mark.parametrize("esn", [False, True])
@pytest.mark.parametrize(("encr", "bits", "integ"), ALGORITHMS)
def test_round_trip_and_alignment(encr: int, bits: int | None, integ: int, esn: bool) -> None:
    sender, receiver = pair(encr, bits, integ, esn)
    for size in range(0, 40):
        payload = bytes(range(size))
        packet = sender.seal(payload, 135)
        iv = sender.transform.encr.iv_size
        icv = sender.transform.integ.icv_size if sender.transform.integ else \
            sender.transform.encr.icv_size
        body = len(packet) - 8 - iv - icv
        assert body % sender.transform.align == 0 and body >= size + 2
        opened = receiver.open(packet)
        assert (opened.payload, opened.next_header, opened.seq) == (payload, 135, size + 1)
    assert spi_of(packet) == 0x0BADCAFE


@pytest.mark.parametrize(("encr", "bits", "integ"), ALGORITHMS)
def test_tampering_fails_and_changes_nothing(encr: int, bits: int | None, integ: int) -> None:
    """RFC 4303 §3.4.4: any changed octet after the SPI (sequence number, IV, ciphertext,
    ICV) fails the ICV; a changed SPI is another SA; the window does not move."""
    sender, receiver = pair(encr, bits, integ)
    receiver.open(sender.seal(b"first", 135))
    packet = sender.seal(b"a binding update", 135)
    for i in range(len(packet)):
        bad = bytearray(packet)
        bad[i] ^= 0x01
        want = EspUnknownSpi if i < 4 else (EspIntegrityError, EspReplay)
        with pytest.raises(want):
            receiver.open(bytes(bad))
        assert receiver.window.top == 1 and receiver.window.bitmap == 1
    with pytest.raises(EspTruncated):
        receiver.open(packet[:10])
    with pytest.raises(EspTruncated):
        spi_of(b"\x00\x01")
    assert receiver.open(packet).payload == b"a binding update"  # the original still opens


def test_bad_padding_is_refused_after_the_icv() -> None:
    """RFC 4303 §2.4: padding 1, 2, 3, ...; a Pad Length beyond the plaintext. Both made
    with the SA's own crypter, so the ICV verifies and the padding check is what fails."""
    sender, receiver = pair(EncrId.AES_GCM_16, 128, 0)
    crypter = sender.transform.crypter(sender.keys)
    for plain in (b"MH" + b"\x01\x09" + b"\x02\x87",  # padding 1, 9
                  b"MH" + b"\x01\x02" + b"\x07\x87",  # Pad Length 7 > 4
                  b"M\x01\x02\x02\x87"):  # not a multiple of 4 octets
        seq = receiver.window.top + 1
        head = struct.pack("!II", 0x0BADCAFE, seq)
        iv = seq.to_bytes(8, "big")
        with pytest.raises(EspPaddingError):
            receiver.open(head + iv + crypter.seal(head, iv, plain))
        assert receiver.window.top == seq - 1


# --- sequence numbers and the anti-replay window -------------------------------------------
def test_sender_stops_before_the_counter_cycles() -> None:
    """RFC 4303 §3.3.3: without ESN the last number is 2^32 - 1; with ESN the low half
    wraps to 0 on the wire and counting goes on (up to 2^64 - 1)."""
    plain, _ = pair(EncrId.AES_GCM_16, 128, 0)
    plain.seq = 0xFFFFFFFE
    assert plain.seal(b"x", 135)[4:8] == b"\xff\xff\xff\xff"
    with pytest.raises(EspSequenceExhausted):
        plain.seal(b"x", 135)
    assert plain.seq == 0xFFFFFFFF
    esn, receiver = pair(EncrId.AES_GCM_16, 128, 0, esn=True)
    esn.seq = 0xFFFFFFFE
    receiver.window.top = 0xFFFFFFF0
    seqs = [receiver.open(esn.seal(b"x", 135)).seq for _ in range(3)]
    assert seqs == [0xFFFFFFFF, 1 << 32, (1 << 32) + 1]
    esn.seq = (1 << 64) - 1
    with pytest.raises(EspSequenceExhausted):
        esn.seal(b"x", 135)


def test_replay_window_edges() -> None:
    """RFC 4303 §3.4.3: 0 never; new numbers advance the window; inside it each number once;
    left of it never; a jump beyond the window size clears it."""
    w = ReplayWindow(32)
    with pytest.raises(EspReplay, match="0"):
        w.check(0)
    for seq in (1, 3, 2):  # out of order inside the window
        w.accept(seq)
    with pytest.raises(EspReplay, match="received before"):
        w.accept(2)
    w.accept(40)  # window now 9..40
    with pytest.raises(EspReplay, match="left of"):
        w.check(8)
    w.check(9)
    w.accept(9)
    with pytest.raises(EspReplay):
        w.check(9)
    w.accept(39)
    assert w.top == 40 and w.bitmap == 1 | 2 | 1 << 31
    w.accept(40 + 32)  # the whole window shifted out
    assert w.bitmap == 1
    w.accept(41)  # 72 - 41 = 31: the oldest number inside
    with pytest.raises(EspReplay, match="left of"):
        w.check(40)
    with pytest.raises(ValueError):
        ReplayWindow(0)


def test_esn_inference_across_the_boundary() -> None:
    """RFC 4303 Appendix A2.2: case A (window inside one 2^32 subspace) and case B (it
    spans two), and a low half that would lie before sequence number 1."""
    w = ReplayWindow(32, esn=True)
    assert w.sequence(5) == 5
    assert w.sequence(0xFFFFFFF0) == -1  # before the first one: a replay
    with pytest.raises(EspReplay):
        w.check(w.sequence(0xFFFFFFF0))
    w.top = 0xFFFFFFF0  # case A
    assert w.sequence(0xFFFFFFF8) == 0xFFFFFFF8
    assert w.sequence(3) == (1 << 32) | 3  # below the window: the next subspace
    w.top = (1 << 32) | 3  # case B: 3 < W - 1
    assert w.sequence(0xFFFFFFFA) == 0xFFFFFFFA  # late, from the old subspace
    assert w.sequence(10) == (1 << 32) | 10
    assert w.sequence(0x80000000) == (1 << 32) | 0x80000000


def test_commit_later_takes_each_number_once() -> None:
    """The HA opens without committing (it asks ikev2d first); two copies opened side by
    side cannot both be committed."""
    sender, receiver = pair(EncrId.AES_GCM_16, 128, 0)
    packet = sender.seal(b"BU", 135)
    first, second = receiver.open(packet, commit=False), receiver.open(packet, commit=False)
    receiver.commit(first)
    with pytest.raises(EspReplay):
        receiver.commit(second)
    with pytest.raises(EspReplay):
        receiver.open(packet)


def test_unsupported_transforms() -> None:
    with pytest.raises(EspUnsupported, match="no integrity"):
        EspTransform(EncrId.AES_CBC, 128, 0, False)
    with pytest.raises(EspUnsupported, match="takes no integrity"):
        EspTransform(EncrId.AES_GCM_16, 128, IntegId.HMAC_SHA2_256_128, False)
    with pytest.raises(EspUnsupported):
        EspTransform(EncrId.AES_GCM_16, 64, 0, False)
    with pytest.raises(EspUnsupported):
        EspTransform(EncrId.TRIPLE_DES, None, IntegId.HMAC_SHA1_96, False)
    with pytest.raises(EspUnsupported, match="needs a 20-octet key"):
        EspSender(GCM128, EspKeys(1, bytes(16)))
    assert "redacted" in repr(EspKeys(1, b"secret"))


# --- tshark ----------------------------------------------------------------------------------
HOA, HA = "2001:db8:1::100", "2001:db8:1::1"


@pytest.mark.parametrize(("encr", "bits", "integ"), [
    (EncrId.AES_GCM_16, 128, 0), (EncrId.AES_CBC, 256, IntegId.HMAC_SHA2_256_128)])
def test_tshark_decrypts_a_protected_binding_update(tmp_path: Path, encr: int,
                                                    bits: int | None, integ: int) -> None:
    """What the MN agent puts after the inner IPv6 header (RFC 5555 §4.1), given to tshark
    as an IPv6 packet HoA -> HA with the CHILD_SA's `esp_sa` line from ikev2d's Wireshark
    key export: tshark decrypts it, finds the Binding Update and (HMAC) checks the ICV."""
    from api.keyexport import esp_lines
    from ikev2.kernel.base import ChildSaSpec
    from mobility.mh import BindingUpdate, build_mh
    from mobility.registry import BuFlags

    sender, _ = pair(encr, bits, integ)
    keys = sender.keys
    spec = ChildSaSpec(
        reqid=1, protocol=3, mode="transport", local=HOA, remote=HA, spi_in=0x11111111,
        spi_out=keys.spi, encr_id=encr, encr_key_bits=bits, integ_id=integ, esn=False,
        encr_key_in=keys.encr_key, encr_key_out=keys.encr_key, integ_key_in=keys.integ_key,
        integ_key_out=keys.integ_key, local_ts=(), remote_ts=())
    lines, why = esp_lines(spec)
    assert why is None
    line = next(x for x in lines.splitlines() if f'"0x{keys.spi:08x}"' in x)
    mh = build_mh(BindingUpdate(4711, BuFlags.A | BuFlags.H | BuFlags.K, 150), src=HOA, dst=HA)
    esp = sender.seal(mh, 135)
    pkt = struct.pack("!IHBB", 6 << 28, len(esp), 50, 64) + ipaddress.IPv6Address(
        HOA).packed + ipaddress.IPv6Address(HA).packed + esp
    text = decode_esp(pkt, line, tmp_path, "esp.enable_authentication_check:TRUE")
    assert "Binding Update" in text and "Sequence number: 4711" in text, text[-3000:]
    assert "incorrect" not in text and (not integ or "[correct]" in text)  # its ICV check
