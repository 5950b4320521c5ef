"""strongSwan-style proposal strings (RFC 7296 §3.3, §3.3.3; REQUIREMENTS 8247-07, 7634-04)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ikev2.crypto import (
    default_proposals,
    get_encr,
    get_group,
    get_integ,
    get_prf,
    parse_proposal,
    parse_proposals,
    suite_name,
    supported_transforms,
)
from ikev2.protocol.enums import DhGroup, EncrId, EsnId, IntegId, PrfId, TransformType

IKE, ESP, AH = 1, 3, 2
E, P, N, D, S = 1, 2, 3, 4, 5  # N = INTEG


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "aes128gcm16-prfsha256-x25519",
            [(E, EncrId.AES_GCM_16, 128), (P, PrfId.HMAC_SHA2_256, None), (D, 31, None)],
        ),
        (
            "aes256-sha256-modp2048",
            [(E, 12, 256), (P, 5, None), (N, 12, None), (D, 14, None)],
        ),
        (
            "aes256gcm16-prfsha384-ecp384",
            [(E, 20, 256), (P, 6, None), (D, 20, None)],
        ),
        (
            "aes128-aes256-sha256-sha1-ecp256-modp2048",
            [
                (E, 12, 128),
                (E, 12, 256),
                (P, 5, None),
                (P, 2, None),
                (N, 12, None),
                (N, 2, None),
                (D, 19, None),
                (D, 14, None),
            ],
        ),
        (
            "chacha20poly1305-prfsha256-curve25519",
            [(E, 28, None), (P, 5, None), (D, 31, None)],
        ),
        (
            "aes128-sha256-prfsha512-modp3072",  # explicit PRF: no implied one
            [(E, 12, 128), (P, 7, None), (N, 12, None), (D, 15, None)],
        ),
        ("AES128GCM-prfaesxcbc-X448", [(E, 20, 128), (P, 4, None), (D, 32, None)]),
        ("aes128-aesxcbc-ecp521", [(E, 12, 128), (P, 4, None), (N, 5, None), (D, 21, None)]),
    ],
)
def test_parse_ike(text, expected):
    assert list(parse_proposal(text, IKE)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aes128gcm16", [(E, 20, 128), (S, 0, None)]),
        ("aes256-sha256", [(E, 12, 256), (N, 12, None), (S, 0, None)]),
        ("aes128gcm16-esn", [(E, 20, 128), (S, 1, None)]),
        ("aes128gcm16-esn-noesn", [(E, 20, 128), (S, 1, None), (S, 0, None)]),
        ("aes256-sha256-modp2048", [(E, 12, 256), (N, 12, None), (D, 14, None), (S, 0, None)]),
        ("null-sha256", [(E, 11, None), (N, 12, None), (S, 0, None)]),
        ("aes128ctr-sha1", [(E, 13, 128), (N, 2, None), (S, 0, None)]),
    ],
)
def test_parse_esp(text, expected):
    assert list(parse_proposal(text, ESP)) == expected


def test_parse_ah():
    assert list(parse_proposal("sha256", AH)) == [(N, 12, None), (S, 0, None)]
    with pytest.raises(ValueError):
        parse_proposal("aes128-sha256", AH)


@pytest.mark.parametrize(
    ("text", "proto", "match"),
    [
        ("aes129-sha256-modp2048", IKE, "unknown algorithm 'aes129'.*valid: aes128"),
        ("aes128gcm16-sha256-x25519", IKE, "AEAD"),  # 7634-04 / RFC 5282 §8
        ("chacha20poly1305-sha256", ESP, "AEAD"),
        ("aes128-x25519", IKE, "integrity"),
        ("aes128gcm16-x25519", IKE, "PRF"),
        ("aes128-sha256", IKE, "key exchange"),
        ("sha256-x25519", IKE, "encryption"),
        ("null-sha256-x25519", IKE, "cannot be used"),
        ("aes128-sha256-x25519-esn", IKE, "cannot be used"),
        ("aes128-sha256-prfsha256", ESP, "cannot be used"),
        ("aes128-aes128gcm16-sha256-x25519", IKE, "mixes"),
        ("aes128--sha256", ESP, "unknown algorithm ''"),
        ("", ESP, "empty"),
        ("default", IKE, "parse_proposals"),
        ("modp768-aes128-sha256", IKE, "unknown"),
    ],
)
def test_parse_errors_name_the_token(text, proto, match):
    with pytest.raises(ValueError, match=match):
        parse_proposal(text, proto)


def test_parse_proposals_list_and_default():
    got = parse_proposals("aes256-sha256-modp2048, default", IKE)
    assert got[0] == parse_proposal("aes256-sha256-modp2048", IKE)
    assert got[1:] == default_proposals(IKE)
    assert parse_proposals("default", ESP) == default_proposals(ESP)
    with pytest.raises(ValueError):
        parse_proposals(" , ", ESP)


def test_8247_07_defaults_are_valid_and_implemented():
    for proto in (IKE, ESP, AH):
        for proposal in default_proposals(proto):
            types = {t for t, _, _ in proposal}
            assert TransformType.INTEG in types or TransformType.ENCR in types
            for t, i, bits in proposal:
                if t == E:
                    get_encr(i, bits)
                elif t == P:
                    get_prf(i)
                elif t == N:
                    get_integ(i)
                elif t == D:
                    get_group(i)
    ike = default_proposals(IKE)
    first = ike[0]
    assert (E, EncrId.AES_GCM_16, 128) in first and (P, PrfId.HMAC_SHA2_256, None) in first
    assert {(D, g, None) for g in (31, 19, 14)} <= set(first)
    assert any((N, IntegId.HMAC_SHA2_256_128, None) in p for p in ike)
    esp = default_proposals(ESP)
    assert (E, EncrId.AES_GCM_16, 128) in esp[0] and (S, EsnId.NO_ESN, None) in esp[0]


def test_suite_name_formats_negotiated_sets():
    from ikev2.protocol.payloads import Transform

    assert suite_name([(E, 20, 256), (P, 5, None), (D, 31, None)]) == "aes256gcm16-prfsha256-x25519"
    assert (
        suite_name([Transform(1, 12, 128), Transform(3, 12), Transform(2, 5), Transform(4, 14)])
        == "aes128-sha256-prfsha256-modp2048"
    )
    assert suite_name([(E, 20, 128), (S, 0, None)]) == "aes128gcm16"
    assert suite_name([(E, 20, 128), (S, 1, None)]) == "aes128gcm16-esn"
    assert suite_name([(E, 99, None), (D, 1, None)]) == "encr99-dh1"


_SINGLE = {t: [r for r in supported_transforms() if r.type == t and r.ike] for t in (E, P, N, D)}


@given(
    st.sampled_from(_SINGLE[E]),
    st.sampled_from(_SINGLE[P]),
    st.sampled_from(_SINGLE[N]),
    st.sampled_from(_SINGLE[D]),
)
def test_suite_name_round_trips(encr, prf, integ, dh):
    triples = [(encr.type, encr.id, encr.key_bits), (prf.type, prf.id, None)]
    if encr.id not in (14, 15, 16, 18, 19, 20, 28):
        triples.append((N, integ.id, None))
    triples.append((D, dh.id, None))
    assert list(parse_proposal(suite_name(triples), IKE)) == triples


def test_supported_transforms_lists_keywords():
    names = {r.name for r in supported_transforms()}
    for kw in (
        "aes128",
        "aes256gcm16",
        "chacha20poly1305",
        "sha256",
        "prfsha384",
        "x25519",
        "ecp521",
        "modp8192",
        "esn",
        "noesn",
        "null",
        "aesxcbc",
        "prfaesxcbc",
    ):
        assert kw in names
    assert DhGroup.CURVE25519 in {r.id for r in supported_transforms() if r.type == D}
