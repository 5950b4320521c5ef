"""Key exchange: RFC 6989 checks, RFC 3526 primes, encodings (REQUIREMENTS H, I, 7296-52)."""

from __future__ import annotations

import os

import pytest

from ikev2.crypto import get_group, supported_groups
from ikev2.crypto._modp import MODP_K, MODP_PRIMES
from ikev2.errors import InvalidPublicValue
from ikev2.protocol.enums import DhGroup

# RFC 5903 §8.1 (vectors.md RFC5903-8.1)
GIX = bytes.fromhex("DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180")
GIY = bytes.fromhex("5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3")
P256 = 2**256 - 2**224 + 2**192 + 2**96 - 1

MODP_GROUPS = [2, 5, 14, 15, 16, 17, 18]
ALL_GROUPS = [*MODP_GROUPS, 19, 20, 21, 31, 32]


def _pi_fixed(bits: int) -> int:
    """floor(pi * 2^bits) by Machin's formula, integers only."""
    guard = 64
    one = 1 << (bits + guard)

    def atan_inv(x: int) -> int:
        total = term = one // x
        n, sign = 1, -1
        while term:
            term //= x * x
            n += 2
            total += sign * (term // n)
            sign = -sign
        return total

    return (16 * atan_inv(5) - 4 * atan_inv(239)) >> guard


def test_supported_groups():
    assert set(supported_groups()) == set(ALL_GROUPS)
    with pytest.raises(ValueError):
        get_group(1)  # RFC 8247 §2.4: MUST NOT
    with pytest.raises(ValueError):
        get_group(22)


def test_3526_primes_match_the_pi_formula():
    pi = _pi_fixed(8192)
    for group, (bits, k) in MODP_K.items():
        floor_term = pi >> (8192 - (bits - 130))
        p = 2**bits - 2 ** (bits - 64) - 1 + 2**64 * (floor_term + k)
        assert MODP_PRIMES[group] == p, group
        assert get_group(group).public_size == bits // 8


@pytest.mark.parametrize("group", [2, 5, 14])
def test_3526_primes_are_safe_primes(group):
    p = MODP_PRIMES[group]
    q = (p - 1) // 2
    for base in (2, 3, 5):
        assert pow(base, p - 1, p) == 1
        assert pow(base, q - 1, q) == 1


@pytest.mark.parametrize("group", ALL_GROUPS)
def test_7296_52_agreement_and_sizes(group):
    g = get_group(group)
    a, b = g.generate(os.urandom), g.generate(os.urandom)
    assert len(a.public) == len(b.public) == g.public_size
    s = a.shared_secret(b.public)
    assert s == b.shared_secret(a.public)
    expected = {19: 32, 20: 48, 21: 66, 31: 32, 32: 56}.get(group, g.public_size)
    assert len(s) == expected  # 5903-04: never the 64-octet x|y secret


@pytest.mark.parametrize("group", [2, 14])
def test_7296_52_modp_matches_python_pow(group):
    g = get_group(group)
    p = MODP_PRIMES[group]
    raw = bytes(range(1, 1 + g.exponent_bytes))  # type: ignore[attr-defined]
    kp = g.generate(lambda n: raw[:n])
    x = int.from_bytes(raw, "big") | (1 << (len(raw) * 8 - 1))
    assert kp.public == pow(2, x, p).to_bytes(g.public_size, "big")
    peer_y = 5  # tiny peer value: result checked for padding to the modulus length
    assert kp.shared_secret(peer_y.to_bytes(g.public_size, "big")) == pow(5, x, p).to_bytes(
        g.public_size, "big"
    )


def test_modp_short_exponent_sizes():
    # 2x security strength (RFC 3526 §8): 256 bits for MODP-2048
    assert get_group(14).exponent_bytes * 8 == 256  # type: ignore[attr-defined]
    assert get_group(18).exponent_bytes * 8 == 512  # type: ignore[attr-defined]


@pytest.mark.parametrize("group", MODP_GROUPS)
def test_6989_01_modp_rejects_0_1_pminus1_p(group):
    g = get_group(group)
    p = MODP_PRIMES[group]
    kp = g.generate(os.urandom)
    for bad in (0, 1, p - 1, p, p + 1, 2 ** (g.public_size * 8) - 1):
        with pytest.raises(InvalidPublicValue, match="1 < y < p-1"):
            kp.shared_secret(bad.to_bytes(g.public_size, "big"))
    # the boundaries just inside are fine
    kp.shared_secret((2).to_bytes(g.public_size, "big"))
    kp.shared_secret((p - 2).to_bytes(g.public_size, "big"))


@pytest.mark.parametrize("group", ALL_GROUPS)
def test_8031_02_wrong_length_rejected(group):
    g = get_group(group)
    kp = g.generate(os.urandom)
    peer = g.generate(os.urandom).public
    for bad in (peer[:-1], peer + b"\x00", b"\x04" + peer, b""):
        with pytest.raises(InvalidPublicValue, match="octets"):
            kp.shared_secret(bad)


def test_6989_03_off_curve_rejected():
    kp = get_group(19).generate(os.urandom)
    assert kp.shared_secret(GIX + GIY)  # the RFC point itself is fine
    for bit in (0, 7, 100, 255):
        flipped = bytearray(GIX)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(InvalidPublicValue, match="not on the curve"):
            kp.shared_secret(bytes(flipped) + GIY)
    bad_y = bytearray(GIY)
    bad_y[-1] ^= 1
    with pytest.raises(InvalidPublicValue, match="not on the curve"):
        kp.shared_secret(GIX + bytes(bad_y))


def test_6989_03_coordinates_at_or_above_p_rejected():
    kp = get_group(19).generate(os.urandom)
    # x + p is the same residue as x, so only the range check can catch it
    for x, y in ((int.from_bytes(GIX, "big") + P256, GIY), (P256, GIY)):
        if x >= 2**256:
            continue
        with pytest.raises(InvalidPublicValue, match="field prime"):
            kp.shared_secret(x.to_bytes(32, "big") + y)
    with pytest.raises(InvalidPublicValue, match="field prime"):
        kp.shared_secret(GIX + P256.to_bytes(32, "big"))
    with pytest.raises(InvalidPublicValue, match="field prime"):
        kp.shared_secret(b"\xff" * 64)


@pytest.mark.parametrize("group", [19, 20, 21])
def test_6989_03_point_at_infinity_rejected(group):
    g = get_group(group)
    kp = g.generate(os.urandom)
    with pytest.raises(InvalidPublicValue, match="infinity"):
        kp.shared_secret(bytes(g.public_size))


@pytest.mark.parametrize("group", [20, 21])
def test_6989_03_off_curve_rejected_p384_p521(group):
    g = get_group(group)
    kp = g.generate(os.urandom)
    pub = bytearray(g.generate(os.urandom).public)
    pub[-1] ^= 1
    with pytest.raises(InvalidPublicValue, match="not on the curve"):
        kp.shared_secret(bytes(pub))


@pytest.mark.parametrize(
    "peer",
    [
        bytes(32),  # u = 0
        (1).to_bytes(32, "little"),  # u = 1, order 4
        bytes.fromhex(
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"
        ),  # order 8
        bytes.fromhex(
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"
        ),  # u = p-1
    ],
)
def test_6989_04_x25519_all_zero_output_rejected(peer):
    kp = get_group(31).generate(os.urandom)
    with pytest.raises(InvalidPublicValue, match="all-zero"):
        kp.shared_secret(peer)


def test_6989_04_x448_all_zero_output_rejected():
    kp = get_group(32).generate(os.urandom)
    for peer in (bytes(56), (1).to_bytes(56, "little")):
        with pytest.raises(InvalidPublicValue, match="all-zero"):
            kp.shared_secret(peer)


def test_8031_02_x25519_private_from_injected_bytes():
    g = get_group(31)
    assert g.generate(lambda n: b"\x01" * n).public == g.generate(lambda n: b"\x01" * n).public


def test_ecp_scalar_rejection_sampling():
    """Out-of-range draws (0, >= n) are discarded, not reduced (FIPS 186-5 A.2.2)."""
    g = get_group(19)
    draws = [bytes(32), b"\xff" * 32, GIX]
    kp = g.generate(lambda n: draws.pop(0))
    assert not draws
    assert len(kp.public) == 64


def test_ecp521_top_bits_masked():
    g = get_group(21)
    kp = g.generate(lambda n: b"\xfe" + b"\x00" * (n - 2) + b"\x05")
    kp2 = g.generate(lambda n: b"\x00" + b"\x00" * (n - 2) + b"\x05")
    assert kp.public == kp2.public  # only the low 521 bits are used


def test_invalid_public_value_maps_to_notify():
    from ikev2.protocol.enums import NotifyType

    assert InvalidPublicValue.notify == NotifyType.NO_PROPOSAL_CHOSEN
    assert DhGroup.CURVE25519 == 31
