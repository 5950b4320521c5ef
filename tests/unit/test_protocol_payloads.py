"""Golden bytes for every payload type and one test per malformation class
(RFC 7296 §3.2-§3.16, RFC 7383 §2.5; REQUIREMENTS A1, A12, E)."""

from __future__ import annotations

import ipaddress

import pytest
from test_protocol_support import vector

from ikev2.errors import InvalidSyntax, UnsupportedCriticalPayload
from ikev2.protocol.codec import decode_payloads, encode_payloads
from ikev2.protocol.enums import NotifyType, PayloadType
from ikev2.protocol.payloads import (
    AUTH,
    CERT,
    CERTREQ,
    CP,
    EAP,
    KE,
    SA,
    SK,
    SKF,
    Delete,
    IDi,
    IDr,
    Nonce,
    Notify,
    Payload,
    Proposal,
    Transform,
    TSi,
    TSr,
    Unknown,
    VendorId,
)
from ikev2.protocol.ts import TrafficSelector, TsType


def h(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", "").replace("\n", ""))


def golden(payload: Payload, wire: bytes) -> None:
    """encode gives `wire`; decoding `wire` gives the payload back."""
    first, data = encode_payloads([payload])
    assert data.hex() == wire.hex()
    assert decode_payloads(first, wire) == [payload]


# ------------------------------------------------------------------ golden bytes

IKE_PROPOSAL = SA(
    (
        Proposal(
            1,
            1,
            b"",
            (
                Transform(1, 12, 256),  # ENCR_AES_CBC, Key Length 256
                Transform(2, 5),  # PRF_HMAC_SHA2_256
                Transform(3, 12),  # AUTH_HMAC_SHA2_256_128
                Transform(4, 19),  # ECP-256
            ),
        ),
    )
)
IKE_PROPOSAL_WIRE = h(
    "00 00 0030"  # generic header: next 0, length 48
    "00 00 002c 01 01 00 04"  # last proposal, length 44, #1, IKE, SPI size 0, 4 transforms
    "03 00 000c 01 00 000c 800e 0100"  # ENCR 12, Key Length TV 256
    "03 00 0008 02 00 0005"
    "03 00 0008 03 00 000c"
    "00 00 0008 04 00 0013"
)


def test_7296_09_sa_aes_cbc_256_golden() -> None:
    golden(IKE_PROPOSAL, IKE_PROPOSAL_WIRE)


def test_7296_09_10_esp_two_proposals_golden() -> None:
    sa = SA(
        (
            Proposal(1, 3, h("11223344"), (Transform(1, 20, 128), Transform(5, 0))),
            Proposal(2, 3, h("11223344"), (Transform(1, 28),)),
        )
    )
    wire = h(
        "00 00 0038"
        "02 00 0020 01 03 04 02 11223344"
        "03 00 000c 01 00 0014 800e 0080"
        "00 00 0008 05 00 0000"
        "00 00 0014 02 03 04 01 11223344"
        "00 00 0008 01 00 001c"
    )
    golden(sa, wire)


def test_7296_12_unknown_attributes_kept_raw() -> None:
    t = Transform(1, 12, 128, ((0x8011, h("0001")), (0x0012, h("aabbcc"))))
    wire = h(
        "00 00 0023 00 00 001f 01 01 00 01"
        "00 00 0017 01 00 000c 800e 0080 8011 0001 0012 0003 aabbcc"
    )
    golden(SA((Proposal(1, 1, b"", (t,)),)), wire)


def test_5903_01_kei_vector_decodes() -> None:
    """REQUIREMENTS 5903-01 / 7296-13: RFC 5903 §8.1 KEi payload = KE(19, x|y)."""
    wire = vector("RFC5903-8.1", "kei")
    xy = vector("RFC5903-8.1", "gix") + vector("RFC5903-8.1", "giy")
    ke = KE(19, xy)
    assert decode_payloads(PayloadType.KE, wire) == [ke]
    assert encode_payloads([ke]) == (PayloadType.KE, wire)
    for vid, group, size in (("RFC5903-8.2", 20, 96), ("RFC5903-8.3", 21, 132)):
        [got] = decode_payloads(PayloadType.KE, vector(vid, "kei"))
        assert got == KE(group, vector(vid, "gix") + vector(vid, "giy"))
        assert len(got.data) == size


def test_7296_14_id_golden_and_rest() -> None:
    idi = IDi(3, b"user@example.org")
    golden(idi, h("00 00 0018 03 000000") + b"user@example.org")
    assert idi.rest() == h("03 000000") + b"user@example.org"
    idr = IDr(2, b"gw.example.org")
    golden(idr, h("00 00 0016 02 000000") + b"gw.example.org")
    assert idr.rest() == h("02 000000") + b"gw.example.org"
    golden(IDi(13, b""), h("00 00 0008 0d 000000"))  # ID_NULL, RFC 7619


def test_cert_certreq_golden() -> None:
    golden(CERT(4, h("aabbcc")), h("00 00 0008 04 aabbcc"))
    golden(CERTREQ(4, bytes(20)), h("00 00 0019 04") + bytes(20))
    golden(CERTREQ(4, b""), h("00 00 0005 04"))


def test_7296_15_auth_golden() -> None:
    golden(AUTH(2, bytes(range(32))), h("00 00 0028 02 000000") + bytes(range(32)))


def test_7296_16_nonce_golden() -> None:
    golden(Nonce(bytes(range(16))), h("00 00 0014") + bytes(range(16)))
    golden(Nonce(bytes(256)), h("00 00 0104") + bytes(256))


def test_7296_18_notify_golden() -> None:
    natd = Notify(0, NotifyType.NAT_DETECTION_SOURCE_IP, b"", bytes(range(20)))
    golden(natd, h("00 00 001c 00 00 4004") + bytes(range(20)))
    rekey = Notify(3, NotifyType.REKEY_SA, h("c0ffee01"))
    golden(rekey, h("00 00 000c 03 04 4009 c0ffee01"))
    ucp = Notify(0, NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, b"", b"\xc8")
    golden(ucp, h("00 00 0009 00 00 0001 c8"))


def test_7296_19_delete_golden() -> None:
    golden(Delete(1), h("00 00 0008 01 00 0000"))
    golden(Delete(3, (h("11111111"), h("22222222"))), h("00 00 0010 03 04 0002 11111111 22222222"))


def test_vendor_id_golden() -> None:
    golden(VendorId(b"strongSwan"), h("00 00 000e") + b"strongSwan")


def test_7296_20_ts_mh_type_golden() -> None:
    """Binding Update selector: MH (135) type 5 in the high octet -> ports 0500-0500."""
    addr = ipaddress.ip_address("2001:db8::1").packed
    bu = TrafficSelector.mh_type("2001:db8::1/128", 5)
    wire = h("00 00 0030 01 000000 08 87 0028 0500 0500") + addr + addr
    golden(TSi((bu,)), wire)
    ba = TrafficSelector.mh_type("2001:db8::1/128", 6)
    assert encode_payloads([TSr((ba,))])[1][8:16] == h("08 87 0028 0600 0600")


def test_7296_20_ts_ipv4_any_and_two_selectors() -> None:
    v4 = TrafficSelector.any(4)
    v6 = TrafficSelector.any(6)
    wire = (
        h("00 00 0040 02 000000")
        + h("07 00 0010 0000 ffff 00000000 ffffffff")
        + h("08 00 0028 0000 ffff")
        + bytes(16)
        + b"\xff" * 16
    )
    golden(TSr((v4, v6)), wire)
    [tsr] = decode_payloads(PayloadType.TSR, wire)
    assert isinstance(tsr, TSr) and tsr.selectors[0].ts_type is TsType.TS_IPV4_ADDR_RANGE


def test_7296_23_cp_golden() -> None:
    req = CP(1, ((8, b""), (10, b""), (16, b"")))
    golden(req, h("00 00 0014 01 000000 0008 0000 000a 0000 0010 0000"))
    addr = ipaddress.ip_address("2001:db8:a::1").packed + b"\x40"
    golden(CP(2, ((8, addr),)), h("00 00 001d 02 000000 0008 0011") + addr)


def test_eap_golden() -> None:
    golden(EAP(h("01 01 0005 01")), h("00 00 0009 01 01 0005 01"))


def test_7296_21_sk_golden() -> None:
    first, wire = encode_payloads([SK(PayloadType.IDI, h("aa" * 8 + "bb" * 17))])
    assert first == PayloadType.SK
    assert wire == h("23 00 001d") + h("aa" * 8 + "bb" * 17)
    assert decode_payloads(first, wire) == [SK(35, h("aa" * 8 + "bb" * 17))]


def test_7383_03_skf_golden() -> None:
    golden(SKF(35, 1, 2, h("0102")), h("23 00 000a 0001 0002 0102"))
    golden(SKF(0, 2, 2, h("0304")), h("00 00 000a 0002 0002 0304"))


def test_7296_08_unknown_noncritical_kept() -> None:
    u = Unknown(200, False, h("deadbeef"))
    golden(u, h("00 00 0008 deadbeef"))
    chain = [Nonce(bytes(16)), u, Notify(0, 16430)]
    first, wire = encode_payloads(chain)
    assert decode_payloads(first, wire) == chain


def test_7296_07_chain_next_payload_fields() -> None:
    first, wire = encode_payloads([KE(31, bytes(32)), Nonce(bytes(16)), Notify(0, 16388)])
    assert first == 34
    assert wire[0] == 40  # KE -> Nonce
    assert wire[40] == 41  # Nonce -> N
    assert wire[60] == 0  # last
    assert encode_payloads([]) == (0, b"")
    assert decode_payloads(0, b"") == []


# ------------------------------------------------------------ reserved bits ignored


def test_7296_08_critical_bit_on_known_type_ignored() -> None:
    wire = h("00 80 0014") + bytes(16)
    assert decode_payloads(PayloadType.NONCE, wire) == [Nonce(bytes(16))]


def test_7296_07_reserved_fields_ignored_on_receipt() -> None:
    """RFC 7296: every RESERVED field is 'sent as zero, ignored on receipt'."""
    generic = h("00 7f 0014") + bytes(16)
    assert decode_payloads(40, generic) == [Nonce(bytes(16))]
    sa = bytearray(IKE_PROPOSAL_WIRE)
    sa[5] = 0xFF  # proposal RESERVED
    sa[13] = 0xFF  # transform RESERVED (after Last Substruc)
    sa[17] = 0xFF  # transform RESERVED (after Transform Type)
    assert decode_payloads(33, bytes(sa)) == [IKE_PROPOSAL]
    assert decode_payloads(34, h("00 00 000c 001f ffff") + bytes(4)) == [KE(31, bytes(4))]
    assert decode_payloads(35, h("00 00 0009 03 ffffff 41")) == [IDi(3, b"A")]
    assert decode_payloads(39, h("00 00 0009 02 ffffff 41")) == [AUTH(2, b"A")]
    ts = h("00 00 0018 01 ffffff 07 00 0010 0000 ffff 00000000 ffffffff")
    assert decode_payloads(44, ts) == [TSi((TrafficSelector.any(4),))]
    cp = h("00 00 000c 01 ffffff 8008 0000")  # CP RESERVED and attribute R bit
    assert decode_payloads(47, cp) == [CP(1, ((8, b""),))]


def test_7296_18_notify_protocol_not_judged() -> None:
    assert decode_payloads(41, h("00 00 0008 07 00 4004")) == [Notify(7, 16388)]


# ------------------------------------------------------------------ malformations


def bad(first: int, wire: bytes, match: str) -> None:
    with pytest.raises(InvalidSyntax, match=match):
        decode_payloads(first, wire)


def test_7296_07_generic_length_below_4() -> None:
    bad(40, h("00 00 0003 00"), "Payload Length 3 < 4")


def test_7296_07_generic_header_truncated() -> None:
    bad(40, h("00 00"), "generic header truncated")
    bad(40, h("29 00 0014") + bytes(16), r"NOTIFY\(41\) at offset 20: generic header truncated")


def test_7296_07_payload_overruns_message() -> None:
    bad(40, h("00 00 0020") + bytes(16), "overruns the message by 12")


def test_7296_07_trailing_octets_after_last_payload() -> None:
    bad(40, h("00 00 0014") + bytes(18), "2 octets after the last payload")


def test_7296_08_unknown_critical() -> None:
    """Type 200 with C=1 -> UNSUPPORTED_CRITICAL_PAYLOAD, notify data 0xC8."""
    wire = h("c8 00 0014") + bytes(16) + h("00 80 0008 deadbeef")
    with pytest.raises(UnsupportedCriticalPayload) as ei:
        decode_payloads(40, wire)
    assert ei.value.data == b"\xc8"
    assert ei.value.payload_type == 200
    assert ei.value.notify == NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD


def test_7296_16_nonce_bounds() -> None:
    bad(40, h("00 00 0013") + bytes(15), "Nonce: 15 octets, must be 16..256")
    bad(40, h("00 00 0105") + bytes(257), "Nonce: 257 octets")


def test_7296_09_bad_last_substruc() -> None:
    wire = bytearray(IKE_PROPOSAL_WIRE)
    wire[4] = 3
    bad(33, bytes(wire), "proposal #1 Last Substruc 3")
    wire = bytearray(IKE_PROPOSAL_WIRE)
    wire[4] = 2
    bad(33, bytes(wire), "Last Substruc 2 but no proposal follows")
    wire = bytearray(IKE_PROPOSAL_WIRE)
    wire[12] = 0  # first transform claims to be the last
    bad(33, bytes(wire), r"transform #1 of 4 Last Substruc 0, expected 3")
    wire = bytearray(IKE_PROPOSAL_WIRE)
    wire[40] = 3  # last transform claims more follow
    bad(33, bytes(wire), r"transform #4 of 4 Last Substruc 3, expected 0")


def test_7296_09_transform_count_mismatch() -> None:
    wire = bytearray(IKE_PROPOSAL_WIRE)
    wire[11] = 3  # #Transforms 3, four present
    bad(33, bytes(wire), "transform #3 of 3 Last Substruc 3, expected 0")
    wire[11] = 5  # #Transforms 5, four present
    bad(33, bytes(wire), "transform #4 of 5 Last Substruc 0, expected 3")


def test_7296_09_proposal_and_transform_lengths() -> None:
    wire = bytearray(IKE_PROPOSAL_WIRE)
    wire[7] = 0x30  # proposal length 48 > SA body 44
    bad(33, bytes(wire), "Proposal Length 48 overruns the SA payload by 4")
    wire = bytearray(IKE_PROPOSAL_WIRE)
    wire[15] = 0x07  # transform length 7
    bad(33, bytes(wire), "Transform Length 7 < 8")
    wire = bytearray(IKE_PROPOSAL_WIRE)
    wire[15] = 0x40
    bad(33, bytes(wire), "Transform Length 64 overruns the proposal")
    bad(33, h("00 00 0004"), r"proposal #1 truncated \(0 octets left")
    bad(33, h("00 00 000c 00 00 0003 01 01 00 00"), "Proposal Length 3 < 8")


def test_7296_12_attribute_overrun() -> None:
    wire = h("00 00 0018 00 00 0014 01 01 00 01 00 00 000c 01 00 000c 0012 0009 aabb")
    bad(33, wire, "attribute 18 Length 9 overruns the transform by 9")
    wire = h("00 00 0016 00 00 0012 01 01 00 01 00 00 000a 01 00 000c 800e")
    bad(33, wire, "attribute truncated")


def test_7296_10_proposal_numbering() -> None:
    two = h("00 00 001c 02 00 000c 01 03 04 00 11223344 00 00 000c 03 03 04 00 11223344")
    bad(33, two, "proposal #2 Proposal Num 3, expected 2")
    starts_at_2 = h("00 00 001c") + h("02 00 000c 02 03 04 00 11223344") + h(
        "00 00 000c 03 03 04 00 11223344"
    )
    bad(33, starts_at_2, "first of 2 proposals has Proposal Num 2, must be 1")
    bad(33, h("00 00 000c 00 00 0008 00 03 00 00"), "Proposal Num 0")
    # a responder's single chosen proposal keeps its number (7296-10)
    [sa] = decode_payloads(33, h("00 00 0010 00 00 000c 02 03 04 00 11223344"))
    assert sa.proposals[0].num == 2


def test_7296_09_proposal_spi_size() -> None:
    bad(33, h("00 00 000c 00 00 0007 01 03 00 00"), "Proposal Length 7 < 8")
    bad(33, h("00 00 000f 00 00 000b 01 03 03 00 112233"), "SPI Size 3 invalid for protocol 3")
    bad(33, h("00 00 0010 00 00 000c 01 01 04 00 11223344"), "SPI Size 4 invalid for protocol 1")


def test_7296_19_delete_counts() -> None:
    bad(42, h("00 00 000c 03 04 0002 11111111"), r"#SPIs 2 x SPI Size 4 != 4")
    bad(42, h("00 00 000c 01 04 0001 11111111"), "SPI Size 4 for protocol 1, must be 0")
    bad(42, h("00 00 0008 01 00 0001"), "IKE SA deletion with #SPIs 1")
    bad(42, h("00 00 0008 07 00 0000"), "Protocol ID 7")
    bad(42, h("00 00 0007 03 04 00"), "Delete: body of 3 octets")


def test_7296_18_notify_spi_overrun() -> None:
    bad(41, h("00 00 000a 03 04 4009 1122"), "SPI Size 4 overruns")
    bad(41, h("00 00 0006 00 00"), "Notify: body of 2 octets")


def test_7296_20_ts_counts_and_lengths() -> None:
    sel = h("07 00 0010 0000 ffff 00000000 ffffffff")
    bad(44, h("00 00 0018 02 000000") + sel, r"selector #2 of 2 truncated")
    bad(44, h("00 00 0028 01 000000") + sel + sel, "16 octets after 1 selectors")
    bad(44, h("00 00 0008 00 000000"), "Number of TSs is 0")
    bad(44, h("00 00 0018 01 000000 07 00 0028") + sel[4:], "Selector Length 40, must be 16")
    bad(44, h("00 00 0018 01 000000 09 00 0010") + sel[4:], "unknown TS Type 9")
    six = h("08 00 0028 0000 ffff") + bytes(16) + b"\xff" * 8
    bad(45, h("00 00 0028 01 000000") + six, "overruns the payload by 8")


def test_7296_23_cp_attribute_overrun() -> None:
    bad(47, h("00 00 000c 01 000000 0008 0011"), r"attribute #1 \(type 8\) Length 17 overruns")
    bad(47, h("00 00 000a 01 000000 0008"), "attribute #1 truncated")


def test_eap_length_mismatch() -> None:
    bad(48, h("00 00 0009 01 01 0009 01"), "EAP Length 9")
    bad(48, h("00 00 0007 01 01 00"), "EAP: body of 3 octets")
    # octets beyond the EAP Length are link padding (RFC 3748 §4.1): accepted
    assert decode_payloads(48, h("00 00 000a 01 01 0005 01 00")) == [EAP(h("01 01 0005 01 00"))]


def test_fixed_body_too_short() -> None:
    bad(34, h("00 00 0006 0013"), "KE: body of 2 octets, need at least 4")
    bad(35, h("00 00 0006 0300"), "IDi: body of 2")
    bad(36, h("00 00 0004"), "IDr: body of 0")
    bad(37, h("00 00 0004"), "CERT: body of 0")
    bad(38, h("00 00 0004"), "CERTREQ: body of 0")
    bad(39, h("00 00 0005 02"), "AUTH: body of 1")
    bad(53, h("00 00 0006 0001"), "SKF: body of 2")


def test_7296_21_sk_not_last() -> None:
    wire = h("28 00 0008 aabbccdd") + h("00 00 0014") + bytes(16)
    bad(46, wire, r"SK\(46\) at offset 0 is not the last payload \(20 octets follow it\)")
    # an SK whose header names no inner payload but bytes follow it is still not last
    bad(53, h("00 00 000a 0001 0001 aabb 00"), "is not the last payload")


def test_7383_03_skf_fragment_numbers() -> None:
    bad(53, h("00 00 0008 0000 0001"), "Fragment Number 0 / Total Fragments 1")
    bad(53, h("00 00 0008 0003 0002"), "Fragment Number 3 / Total Fragments 2")
    bad(53, h("00 00 0008 0001 0000"), "Total Fragments 0")


def test_encode_rejects_caller_bugs() -> None:
    with pytest.raises(ValueError, match="SK must be the last payload"):
        encode_payloads([SK(35, b"x"), Nonce(bytes(16))])
    with pytest.raises(ValueError, match="2-octet value"):
        encode_payloads([SA((Proposal(1, 1, b"", (Transform(1, 1, None, ((0x8001, b"x"),)),)),))])
    with pytest.raises(ValueError, match="cannot encode"):
        encode_payloads([Nonce(bytes(70000))])
    with pytest.raises(ValueError, match="cannot encode"):
        encode_payloads([KE(70000, b"")])
    with pytest.raises(ValueError, match="same size"):
        encode_payloads([Delete(3, (b"1234", b"12"))])
    bogus = TrafficSelector(TsType.TS_IPV4_ADDR_RANGE, 0, 0, 1, bytes(16), bytes(16))
    with pytest.raises(ValueError, match="do not fit TS Type"):
        encode_payloads([TSi((bogus,))])
