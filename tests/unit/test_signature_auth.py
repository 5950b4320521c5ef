"""AUTH payload signatures (ikev2.crypto.signature): RFC 7296 §3.8 method 1, RFC 4754
methods 9/10/11, RFC 7427 method 14 with RFC 8420 EdDSA, and SIGNATURE_HASH_ALGORITHMS."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ikev2.crypto.auth import signed_octets
from ikev2.crypto.prf import get_prf
from ikev2.crypto.signature import (
    DEFAULT_HASHES,
    SCHEMES,
    AuthChoice,
    BadSignature,
    KeyType,
    MalformedAuthData,
    MalformedHashAlgorithms,
    NoCommonSignatureHash,
    SignatureAlgorithmMismatch,
    SignatureError,
    SignaturePolicy,
    UnacceptableSignatureAlgorithm,
    UnknownSignatureAlgorithm,
    UnsupportedKey,
    choose_auth,
    decode_hash_algorithms,
    encode_hash_algorithms,
    key_type,
    parse_algorithm_identifier,
    parse_auth_data,
    scheme_by_name,
    sign_auth,
    verify_auth,
)
from ikev2.errors import AuthenticationFailed, InvalidSyntax
from ikev2.protocol.enums import AuthMethod, HashAlgorithm, NotifyType, PrfId

M14 = AuthMethod.DIGITAL_SIGNATURE
OCTETS = b"IKE_SA_INIT message | Nr | prf(SK_pi, IDi')" * 7


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    return {
        "rsa2048": rsa.generate_private_key(65537, 2048),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ed448": ed448.Ed448PrivateKey.generate(),
    }


# -- RFC 7427 Appendix A / RFC 8420 known answers -----------------------------------------
# DER copied from RFC 7427 Appendix A (A.1 PKCS#1 v1.5, A.3 ECDSA, A.4.3 PSS SHA-256) and
# RFC 8420 §2 as listed in shared/rfc/vectors.md §7; the PSS SHA-384/512 lines are computed
# (same structure as A.4.3, salt = hash length) and marked so.
KNOWN_ANSWERS = [
    ("sha1WithRSAEncryption", "300d06092a864886f70d0101050500"),  # A.1.1
    ("sha256WithRSAEncryption", "300d06092a864886f70d01010b0500"),  # A.1.2
    ("sha384WithRSAEncryption", "300d06092a864886f70d01010c0500"),  # A.1.3
    ("sha512WithRSAEncryption", "300d06092a864886f70d01010d0500"),  # A.1.4
    ("ecdsa-with-sha1", "300906072a8648ce3d0401"),  # A.3.1
    ("ecdsa-with-sha256", "300a06082a8648ce3d040302"),  # A.3.2
    ("ecdsa-with-sha384", "300a06082a8648ce3d040303"),  # A.3.3
    ("ecdsa-with-sha512", "300a06082a8648ce3d040304"),  # A.3.4
    (  # A.4.3: RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32
        "rsassa-pss-sha256",
        "304106092a864886f70d01010a3034a00f300d06096086480165030402010500"
        "a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120",
    ),
    (  # computed: SHA-384, MGF1-SHA-384, salt 48
        "rsassa-pss-sha384",
        "304106092a864886f70d01010a3034a00f300d06096086480165030402020500"
        "a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130",
    ),
    (  # computed: SHA-512, MGF1-SHA-512, salt 64
        "rsassa-pss-sha512",
        "304106092a864886f70d01010a3034a00f300d06096086480165030402030500"
        "a11c301a06092a864886f70d010108300d06096086480165030402030500a203020140",
    ),
    ("ed25519", "300506032b6570"),  # RFC 8420 id-Ed25519
    ("ed448", "300506032b6571"),  # RFC 8420 id-Ed448
]


@pytest.mark.parametrize(("name", "der_hex"), KNOWN_ANSWERS)
def test_algorithm_identifier_known_answers(name: str, der_hex: str) -> None:
    """7427-05, 8420-01: our AlgorithmIdentifier DER equals RFC 7427 App. A / RFC 8420."""
    scheme = scheme_by_name(name)
    assert scheme.algorithm_identifier.hex() == der_hex
    assert parse_algorithm_identifier(bytes.fromhex(der_hex)) == scheme


def test_pss_sha256_is_67_octets() -> None:
    """7427-05: A.4.3 is 67 octets, so its AUTH length octet is 0x43."""
    scheme = scheme_by_name("rsassa-pss-sha256")
    assert len(scheme.algorithm_identifier) == 67
    assert scheme.pss_salt_length == 32 and scheme.mgf1_hash == HashAlgorithm.SHA2_256


def test_every_scheme_has_a_known_answer() -> None:
    assert {s.name for s in SCHEMES} == {n for n, _ in KNOWN_ANSWERS}


def test_eddsa_uses_identity_hash() -> None:
    """8420-01: EdDSA is announced as hash 5 (Identity)."""
    assert scheme_by_name("ed25519").hash == HashAlgorithm.IDENTITY == 5
    assert scheme_by_name("ed448").hash == HashAlgorithm.IDENTITY


def test_auth_data_layout(keys: dict) -> None:
    """7427-02: method-14 data = 1-octet length | AlgorithmIdentifier | signature."""
    scheme = scheme_by_name("ecdsa-with-sha256")
    data = sign_auth(keys["p256"], OCTETS, AuthChoice(M14, scheme))
    assert data[0] == 12 and data[1:13] == bytes.fromhex("300a06082a8648ce3d040302")
    parsed, sig = parse_auth_data(data)
    assert parsed == scheme and sig == data[13:]
    # method 14 ECDSA signature value is the DER Ecdsa-Sig-Value (a SEQUENCE)
    assert sig[0] == 0x30


def test_ed25519_auth_data_prefix(keys: dict) -> None:
    """8420-01: Ed25519 AUTH data starts 07 300506032b6570 and carries a 64-octet PureEdDSA
    signature of the whole signed octets."""
    data = sign_auth(keys["ed25519"], OCTETS, AuthChoice(M14, scheme_by_name("ed25519")))
    assert data[:8] == bytes.fromhex("07300506032b6570")
    assert len(data) == 8 + 64
    keys["ed25519"].public_key().verify(data[8:], OCTETS)


# -- round trips --------------------------------------------------------------------------
METHOD14_CASES = [
    ("rsa2048", "sha256WithRSAEncryption"),
    ("rsa2048", "sha384WithRSAEncryption"),
    ("rsa2048", "sha512WithRSAEncryption"),
    ("rsa2048", "rsassa-pss-sha256"),
    ("rsa2048", "rsassa-pss-sha384"),
    ("rsa2048", "rsassa-pss-sha512"),
    ("p256", "ecdsa-with-sha256"),
    ("p256", "ecdsa-with-sha384"),
    ("p384", "ecdsa-with-sha384"),
    ("p384", "ecdsa-with-sha512"),
    ("p521", "ecdsa-with-sha512"),
    ("p521", "ecdsa-with-sha256"),
    ("ed25519", "ed25519"),
    ("ed448", "ed448"),
]


@pytest.mark.parametrize(("key_name", "scheme_name"), METHOD14_CASES)
def test_method14_round_trip_and_tamper(keys: dict, key_name: str, scheme_name: str) -> None:
    """7427-02/8420-01: sign → verify; a flipped bit in octets or signature fails."""
    key = keys[key_name]
    scheme = scheme_by_name(scheme_name)
    data = sign_auth(key, OCTETS, AuthChoice(M14, scheme))
    assert verify_auth(key.public_key(), M14, data, OCTETS) == scheme
    with pytest.raises(BadSignature):
        verify_auth(key.public_key(), M14, data, OCTETS[:-1] + bytes([OCTETS[-1] ^ 1]))
    bad = bytearray(data)
    bad[-3] ^= 0x10
    with pytest.raises(BadSignature):
        verify_auth(key.public_key(), M14, bytes(bad), OCTETS)


@pytest.mark.parametrize(
    ("key_name", "method", "width"),
    [
        ("p256", AuthMethod.ECDSA_SHA256_P256, 32),
        ("p384", AuthMethod.ECDSA_SHA384_P384, 48),
        ("p521", AuthMethod.ECDSA_SHA512_P521, 66),
    ],
)
def test_rfc4754_raw_r_s(keys: dict, key_name: str, method: AuthMethod, width: int) -> None:
    """7296-15 / RFC 4754 §7: methods 9/10/11 carry fixed-width r|s, not DER."""
    key = keys[key_name]
    data = sign_auth(key, OCTETS, AuthChoice(method, scheme_by_name("ecdsa-with-sha256")))
    assert len(data) == 2 * width
    r, s = int.from_bytes(data[:width], "big"), int.from_bytes(data[width:], "big")
    h = {32: hashes.SHA256(), 48: hashes.SHA384(), 66: hashes.SHA512()}[width]
    key.public_key().verify(encode_dss_signature(r, s), OCTETS, ec.ECDSA(h))
    assert verify_auth(key.public_key(), method, data, OCTETS).hash.name.endswith(
        str(h.digest_size * 8)
    )
    with pytest.raises(BadSignature):
        verify_auth(key.public_key(), method, data[:-1] + bytes([data[-1] ^ 1]), OCTETS)
    with pytest.raises(MalformedAuthData, match="RFC 4754"):
        verify_auth(key.public_key(), method, data + b"\x00", OCTETS)


def test_rfc4754_ecdsa256_known_answer() -> None:
    """RFC 4754 §8.1 ECDSA-256 test vector (values recalled [M], checked by computation:
    w·G gives gwx/gwy and the signature verifies), verified as a method-9 AUTH."""
    w = int("DC51D3866A15BACDE33D96F992FCA99DA7E6EF0934E7097559C27F1614C88A7F", 16)
    gwx = "2442A5CC0ECD015FA3CA31DC8E2BBC70BF42D60CBCA20085E0822CB04235E970"
    gwy = "6FC98BD7E50211A4A27102FA3549DF79EBCB4BF246B80945CDDFE7D509BBFD7D"
    r = "CB28E0999B9C7715FD0A80D8E47A77079716CBBF917DD72E97566EA1C066957C"
    s = "86FA3BB4E26CAD5BF90B7F81899256CE7594BB1EA0C89212748BFF3B3D5B0315"
    pub = ec.derive_private_key(w, ec.SECP256R1()).public_key()
    nums = pub.public_numbers()
    assert (f"{nums.x:064X}", f"{nums.y:064X}") == (gwx, gwy)
    auth = bytes.fromhex(r + s)
    verify_auth(pub, AuthMethod.ECDSA_SHA256_P256, auth, b"abc")
    with pytest.raises(BadSignature):
        verify_auth(pub, AuthMethod.ECDSA_SHA256_P256, auth, b"abd")


def test_rsa_method1_round_trip(keys: dict) -> None:
    """7296-15: method 1 = RSASSA-PKCS1-v1_5 with SHA-1, no AlgorithmIdentifier."""
    key = keys["rsa2048"]
    data = sign_auth(key, OCTETS, AuthChoice(AuthMethod.RSA_SIG, scheme_by_name(
        "sha1WithRSAEncryption")))
    assert len(data) == 256
    key.public_key().verify(data, OCTETS, padding.PKCS1v15(), hashes.SHA1())
    assert verify_auth(key.public_key(), AuthMethod.RSA_SIG, data, OCTETS).name == (
        "sha1WithRSAEncryption"
    )
    with pytest.raises(BadSignature):
        verify_auth(key.public_key(), AuthMethod.RSA_SIG, data, OCTETS + b"x")


def test_round_trip_over_real_signed_octets(keys: dict) -> None:
    """7296-48: sign exactly what ikev2.crypto.auth.signed_octets builds."""
    prf = get_prf(PrfId.HMAC_SHA2_256)
    octets = signed_octets(b"\x01" * 300, b"\x02" * 32, prf, b"\x03" * 32, b"\x03\0\0\0a@b.c")
    choice = choose_auth(keys["p256"], DEFAULT_HASHES)
    data = sign_auth(keys["p256"], octets, choice)
    verify_auth(keys["p256"].public_key(), choice.method, data, octets)


# -- rejections ---------------------------------------------------------------------------
def test_rsa_key_with_ecdsa_algorithm_identifier(keys: dict) -> None:
    """7427-04: an AlgorithmIdentifier that does not fit the certificate key fails."""
    forged = bytes((12,)) + scheme_by_name("ecdsa-with-sha256").algorithm_identifier + b"\0" * 70
    with pytest.raises(SignatureAlgorithmMismatch, match="RSA"):
        verify_auth(keys["rsa2048"].public_key(), M14, forged, OCTETS)
    with pytest.raises(SignatureAlgorithmMismatch):
        sign_auth(keys["rsa2048"], OCTETS, AuthChoice(M14, scheme_by_name("ed25519")))


def test_ed25519_key_with_ed448_identifier(keys: dict) -> None:
    """7427-04."""
    data = sign_auth(keys["ed448"], OCTETS, AuthChoice(M14, scheme_by_name("ed448")))
    with pytest.raises(SignatureAlgorithmMismatch):
        verify_auth(keys["ed25519"].public_key(), M14, data, OCTETS)


@pytest.mark.parametrize(
    ("key_name", "method"),
    [
        ("p384", AuthMethod.ECDSA_SHA256_P256),
        ("p256", AuthMethod.ECDSA_SHA512_P521),
        ("rsa2048", AuthMethod.ECDSA_SHA384_P384),
        ("p256", AuthMethod.RSA_SIG),
        ("ed25519", AuthMethod.RSA_SIG),
    ],
)
def test_legacy_method_needs_matching_key(keys: dict, key_name: str, method: AuthMethod) -> None:
    """RFC 4754 §3 / 7296-15: methods 9/10/11 fix the curve, method 1 needs RSA."""
    with pytest.raises(SignatureAlgorithmMismatch):
        verify_auth(keys[key_name].public_key(), method, b"\0" * 64, OCTETS)
    with pytest.raises(SignatureAlgorithmMismatch):
        sign_auth(keys[key_name], OCTETS, AuthChoice(method, scheme_by_name("ecdsa-with-sha256")))


def test_sha1_refused_in_method14(keys: dict) -> None:
    """8247-06: SHA-1 signatures are not accepted in method 14 by default."""
    for key, name in ((keys["rsa2048"], "sha1WithRSAEncryption"), (keys["p256"],
                                                                    "ecdsa-with-sha1")):
        data = sign_auth(key, OCTETS, AuthChoice(M14, scheme_by_name(name)))
        with pytest.raises(UnacceptableSignatureAlgorithm, match="SHA1"):
            verify_auth(key.public_key(), M14, data, OCTETS)
        policy = SignaturePolicy(hashes=frozenset({*DEFAULT_HASHES, HashAlgorithm.SHA1}))
        verify_auth(key.public_key(), M14, data, OCTETS, policy)


def test_hash_we_did_not_announce_is_refused(keys: dict) -> None:
    """7427-03/7427-04: only hashes we announced are acceptable."""
    data = sign_auth(keys["p256"], OCTETS, AuthChoice(M14, scheme_by_name("ecdsa-with-sha256")))
    policy = SignaturePolicy(hashes=frozenset({HashAlgorithm.SHA2_384}))
    with pytest.raises(UnacceptableSignatureAlgorithm, match="did not announce"):
        verify_auth(keys["p256"].public_key(), M14, data, OCTETS, policy)


def test_pss_with_default_parameters_is_sha1_and_refused(keys: dict) -> None:
    """RSASSA-PSS-params with all defaults (empty SEQUENCE) mean SHA-1/MGF1-SHA-1/salt 20."""
    der = bytes.fromhex("300d06092a864886f70d01010a3000")
    scheme = parse_algorithm_identifier(der)
    assert scheme.hash == HashAlgorithm.SHA1 and scheme.pss_salt_length == 20
    with pytest.raises(UnacceptableSignatureAlgorithm):
        verify_auth(keys["rsa2048"].public_key(), M14, bytes((len(der),)) + der + b"\0" * 256,
                    OCTETS)


def test_pss_with_other_salt_verifies(keys: dict) -> None:
    """A peer may choose another salt length; we verify with the one it declared."""
    from ikev2.crypto.signature import _pss_der  # the encoder for non-default parameters

    der = _pss_der(HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_256, 20)
    sig = keys["rsa2048"].sign(
        OCTETS, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256()
    )
    scheme = verify_auth(keys["rsa2048"].public_key(), M14, bytes((len(der),)) + der + sig,
                         OCTETS)
    assert scheme.pss_salt_length == 20


def test_short_rsa_key_refused() -> None:
    """8247-05: RSA keys under 2048 bits are refused for signing and verifying."""
    small = rsa.generate_private_key(65537, 1024)
    with pytest.raises(UnacceptableSignatureAlgorithm, match="1024"):
        choose_auth(small, DEFAULT_HASHES)
    with pytest.raises(UnacceptableSignatureAlgorithm, match="1024"):
        verify_auth(small.public_key(), AuthMethod.RSA_SIG, b"\0" * 128, OCTETS)


def test_legacy_method_disabled_by_policy(keys: dict) -> None:
    data = sign_auth(keys["p256"], OCTETS,
                     AuthChoice(AuthMethod.ECDSA_SHA256_P256, scheme_by_name("ecdsa-with-sha256")))
    policy = SignaturePolicy(legacy_methods=frozenset())
    with pytest.raises(UnacceptableSignatureAlgorithm, match="not allowed"):
        verify_auth(keys["p256"].public_key(), AuthMethod.ECDSA_SHA256_P256, data, OCTETS, policy)


@pytest.mark.parametrize("method", [AuthMethod.PSK, AuthMethod.DSS_SIG, AuthMethod.NULL, 200])
def test_non_signature_methods(keys: dict, method: int) -> None:
    with pytest.raises(UnknownSignatureAlgorithm):
        verify_auth(keys["p256"].public_key(), method, b"\0" * 64, OCTETS)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x0c",
        b"\x00\x30\x00",
        b"\x40" + bytes.fromhex("300a06082a8648ce3d040302") + b"\0" * 3,  # length past the end
        b"\x0c" + bytes.fromhex("300a06082a8648ce3d040302"),  # no signature after it
        b"\x05" + b"\xff" * 5 + b"\0" * 64,  # not DER
        b"\x0e" + bytes.fromhex("300c06082a8648ce3d0403020500") + b"\0" * 64,  # ECDSA + NULL
    ],
)
def test_malformed_method14_data(keys: dict, data: bytes) -> None:
    """7427-02: malformed length octet / AlgorithmIdentifier → MalformedAuthData."""
    with pytest.raises(MalformedAuthData):
        verify_auth(keys["p256"].public_key(), M14, data, OCTETS)


def test_unknown_algorithm_identifier(keys: dict) -> None:
    """7427-04: dsa-with-sha256 (2.16.840.1.101.3.4.3.2) is not implemented."""
    der = bytes.fromhex("300b0609608648016503040302")
    with pytest.raises(UnknownSignatureAlgorithm, match=r"2\.16\.840\.1\.101\.3\.4\.3\.2"):
        verify_auth(keys["p256"].public_key(), M14, bytes((len(der),)) + der + b"\0" * 64, OCTETS)


def test_pkcs1_without_null_parameters_accepted(keys: dict) -> None:
    """Some peers omit the NULL; the scheme is still sha256WithRSAEncryption."""
    der = bytes.fromhex("300b06092a864886f70d01010b")
    assert parse_algorithm_identifier(der).name == "sha256WithRSAEncryption"
    sig = keys["rsa2048"].sign(OCTETS, padding.PKCS1v15(), hashes.SHA256())
    verify_auth(keys["rsa2048"].public_key(), M14, bytes((len(der),)) + der + sig, OCTETS)


def test_errors_map_to_authentication_failed() -> None:
    for cls in (BadSignature, MalformedAuthData, UnknownSignatureAlgorithm,
                UnacceptableSignatureAlgorithm, SignatureAlgorithmMismatch,
                NoCommonSignatureHash, UnsupportedKey):
        assert issubclass(cls, SignatureError) and issubclass(cls, AuthenticationFailed)
        assert cls("x").notify == NotifyType.AUTHENTICATION_FAILED
    assert issubclass(MalformedHashAlgorithms, InvalidSyntax)


def test_unsupported_key_types() -> None:
    with pytest.raises(UnsupportedKey):
        key_type(object())
    with pytest.raises(UnsupportedKey, match="secp256k1"):
        key_type(ec.generate_private_key(ec.SECP256K1()))


def test_key_types(keys: dict) -> None:
    assert [key_type(keys[k]) for k in ("rsa2048", "p256", "p384", "p521", "ed25519", "ed448")
            ] == list(KeyType)


# -- choosing what to sign with (RFC 7427 §4) -----------------------------------------------
@pytest.mark.parametrize(
    ("key_name", "peer", "method", "scheme"),
    [
        ("rsa2048", None, AuthMethod.RSA_SIG, "sha1WithRSAEncryption"),
        ("p256", None, AuthMethod.ECDSA_SHA256_P256, "ecdsa-with-sha256"),
        ("p384", None, AuthMethod.ECDSA_SHA384_P384, "ecdsa-with-sha384"),
        ("p521", None, AuthMethod.ECDSA_SHA512_P521, "ecdsa-with-sha512"),
        ("rsa2048", [HashAlgorithm.SHA2_384], M14, "rsassa-pss-sha384"),
        ("rsa2048", DEFAULT_HASHES, M14, "rsassa-pss-sha256"),
        ("p256", DEFAULT_HASHES, M14, "ecdsa-with-sha256"),
        ("p384", [HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_512], M14, "ecdsa-with-sha512"),
        ("p521", DEFAULT_HASHES, M14, "ecdsa-with-sha512"),
        ("ed25519", [HashAlgorithm.SHA2_256, HashAlgorithm.IDENTITY], M14, "ed25519"),
        ("ed448", [HashAlgorithm.IDENTITY], M14, "ed448"),
        ("rsa2048", [HashAlgorithm.SHA1], AuthMethod.RSA_SIG, "sha1WithRSAEncryption"),
        ("p256", [], AuthMethod.ECDSA_SHA256_P256, "ecdsa-with-sha256"),
    ],
)
def test_choose_auth(keys: dict, key_name: str, peer: list | None, method: AuthMethod,
                     scheme: str) -> None:  # fmt: skip
    """7427-03: use only a hash the peer announced; without its notify use 1/9/10/11."""
    choice = choose_auth(keys[key_name], peer)
    assert (choice.method, choice.scheme.name) == (method, scheme)
    data = sign_auth(keys[key_name], OCTETS, choice)
    verify_auth(keys[key_name].public_key(), choice.method, data, OCTETS,
                SignaturePolicy(hashes=frozenset(HashAlgorithm)))


def test_choose_pkcs1_when_pss_is_off(keys: dict) -> None:
    choice = choose_auth(keys["rsa2048"], DEFAULT_HASHES, SignaturePolicy(rsa_pss=False))
    assert choice.scheme.name == "sha256WithRSAEncryption"


@pytest.mark.parametrize("peer", [None, [HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_512]])
def test_eddsa_needs_identity(keys: dict, peer: list | None) -> None:
    """8420-01: no legacy method exists for EdDSA; without Identity there is nothing to use."""
    with pytest.raises(NoCommonSignatureHash, match="Ed25519"):
        choose_auth(keys["ed25519"], peer)


def test_no_common_hash_and_legacy_off(keys: dict) -> None:
    with pytest.raises(NoCommonSignatureHash, match="SHA2_512"):
        choose_auth(keys["p256"], [HashAlgorithm.SHA2_512],
                    SignaturePolicy(hashes=frozenset({HashAlgorithm.SHA2_256}),
                                    legacy_methods=frozenset()))


# -- SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 §4) -----------------------------------------
def test_hash_notify_golden() -> None:
    """7427-01: data = 2-octet IDs, no padding: 0002 0003 0004 0005 for our defaults."""
    assert encode_hash_algorithms(DEFAULT_HASHES) == bytes.fromhex("0002000300040005")
    assert HashAlgorithm.SHA1 not in DEFAULT_HASHES  # 8247-06


def test_hash_notify_decode() -> None:
    """7427-01: unknown IDs skipped, duplicates dropped, order kept."""
    data = bytes.fromhex("0004 00ff 0002 0004 0005 0001".replace(" ", ""))
    assert decode_hash_algorithms(data) == (
        HashAlgorithm.SHA2_512, HashAlgorithm.SHA2_256, HashAlgorithm.IDENTITY, HashAlgorithm.SHA1
    )
    assert decode_hash_algorithms(b"") == ()


def test_hash_notify_odd_length() -> None:
    with pytest.raises(MalformedHashAlgorithms) as ei:
        decode_hash_algorithms(b"\x00\x02\x00")
    assert ei.value.notify == NotifyType.INVALID_SYNTAX


def test_hash_notify_encode_range() -> None:
    with pytest.raises(ValueError):
        encode_hash_algorithms([70000])
