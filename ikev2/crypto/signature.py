"""AUTH payload signatures: RSA (method 1), ECDSA (9/10/11, RFC 4754) and Digital Signature
(method 14, RFC 7427 / RFC 8420), plus the SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 §4).

The caller computes the octets to sign with `ikev2.crypto.auth.signed_octets` (RFC 7296
§2.15) exactly as for a shared key; this module only turns them into AUTH data and back.

API for IKE_AUTH (all pure functions, no I/O, no clock):

    # IKE_SA_INIT: announce what we verify, remember what the peer announced
    data = encode_hash_algorithms(DEFAULT_HASHES)           # N(SIGNATURE_HASH_ALGORITHMS)
    peer_hashes = decode_hash_algorithms(notify.data)         # None if the peer sent none

    # our AUTH payload
    choice = choose_auth(private_key, peer_hashes)            # -> AuthChoice(method, scheme)
    auth = AUTH(choice.method, sign_auth(private_key, octets, choice))

    # the peer's AUTH payload, with the public key of its validated end-entity certificate
    scheme = verify_auth(public_key, auth.method, auth.data, octets)   # raises on failure

Exceptions (all subclass ikev2.errors.AuthenticationFailed, so the core answers
AUTHENTICATION_FAILED): SignatureError (base), MalformedAuthData, UnknownSignatureAlgorithm,
UnacceptableSignatureAlgorithm (by policy: hash not announced, SHA-1, legacy method off,
RSA key too short), SignatureAlgorithmMismatch (AlgorithmIdentifier or method does not fit
the key), BadSignature, NoCommonSignatureHash (choose_auth found nothing to sign with),
UnsupportedKey. A malformed SIGNATURE_HASH_ALGORITHMS notify raises MalformedHashAlgorithms
(an ikev2.errors.InvalidSyntax).

Encodings: method 1 is RSASSA-PKCS1-v1_5 with SHA-1 (RFC 7296 §3.8); methods 9/10/11 are
ECDSA on P-256/P-384/P-521 with SHA-256/384/512 and the signature as fixed-width r | s
(RFC 4754 §7); method 14 is `len(AlgorithmIdentifier) (1 octet) | AlgorithmIdentifier DER |
signature` (RFC 7427 §3), where an ECDSA signature is the DER Ecdsa-Sig-Value and EdDSA is
PureEdDSA over the whole signed octets with hash "Identity" (RFC 8420).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import Enum

from asn1crypto import algos, core
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from ikev2.errors import AuthenticationFailed, InvalidSyntax
from ikev2.protocol.enums import AuthMethod, HashAlgorithm

__all__ = [
    "DEFAULT_HASHES",
    "DEFAULT_POLICY",
    "SCHEMES",
    "AuthChoice",
    "BadSignature",
    "KeyType",
    "MalformedAuthData",
    "MalformedHashAlgorithms",
    "NoCommonSignatureHash",
    "PrivateKey",
    "PublicKey",
    "SignatureAlgorithmMismatch",
    "SignatureError",
    "SignaturePolicy",
    "SignatureScheme",
    "UnacceptableSignatureAlgorithm",
    "UnknownSignatureAlgorithm",
    "UnsupportedKey",
    "choose_auth",
    "decode_hash_algorithms",
    "encode_hash_algorithms",
    "key_type",
    "parse_algorithm_identifier",
    "parse_auth_data",
    "scheme_by_name",
    "sign",
    "sign_auth",
    "verify",
    "verify_auth",
]

PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
)


# -- errors -------------------------------------------------------------------------------
class SignatureError(AuthenticationFailed):
    """An AUTH signature could not be made or did not verify."""


class MalformedAuthData(SignatureError):
    """AUTH data too short, bad length octet, AlgorithmIdentifier not DER, bad r|s size."""


class UnknownSignatureAlgorithm(SignatureError):
    """An AlgorithmIdentifier (RFC 7427 §3) or AUTH method this module does not implement."""


class UnacceptableSignatureAlgorithm(SignatureError):
    """Known, but refused by policy (hash not announced, SHA-1, method off, short RSA key)."""


class SignatureAlgorithmMismatch(SignatureError):
    """The algorithm does not fit the key: RSA key with ecdsa-with-*, P-384 key with method 9
    (RFC 7427 §3, REQUIREMENTS 7427-04)."""


class BadSignature(SignatureError):
    """The signature does not verify over the signed octets."""


class NoCommonSignatureHash(SignatureError):
    """choose_auth: the peer announced no hash we can sign with for this key, and no legacy
    method fits (e.g. Ed25519 without "Identity")."""


class UnsupportedKey(SignatureError):
    """Not an RSA, ECDSA P-256/384/521, Ed25519 or Ed448 key."""


class MalformedHashAlgorithms(InvalidSyntax):
    """SIGNATURE_HASH_ALGORITHMS data whose length is odd (RFC 7427 §4)."""


# -- key types ----------------------------------------------------------------------------
class KeyType(Enum):
    RSA = "RSA"
    ECDSA_P256 = "ECDSA P-256"
    ECDSA_P384 = "ECDSA P-384"
    ECDSA_P521 = "ECDSA P-521"
    ED25519 = "Ed25519"
    ED448 = "Ed448"


_CURVES: dict[str, KeyType] = {
    "secp256r1": KeyType.ECDSA_P256,
    "secp384r1": KeyType.ECDSA_P384,
    "secp521r1": KeyType.ECDSA_P521,
}
_ECDSA = frozenset({KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.ECDSA_P521})
_RSA = frozenset({KeyType.RSA})


def key_type(key: PrivateKey | PublicKey | object) -> KeyType:
    """The KeyType of a private or public key; UnsupportedKey for anything else."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeyType.RSA
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        kt = _CURVES.get(key.curve.name)
        if kt is None:
            raise UnsupportedKey(f"ECDSA curve {key.curve.name} is not supported")
        return kt
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return KeyType.ED448
    raise UnsupportedKey(f"unsupported key type {type(key).__name__}")


# -- schemes ------------------------------------------------------------------------------
_HASH_NAMES: dict[HashAlgorithm, str] = {
    HashAlgorithm.SHA1: "sha1",
    HashAlgorithm.SHA2_256: "sha256",
    HashAlgorithm.SHA2_384: "sha384",
    HashAlgorithm.SHA2_512: "sha512",
}
_HASH_BY_NAME = {v: k for k, v in _HASH_NAMES.items()}
_HASH_LEN = {
    HashAlgorithm.SHA1: 20,
    HashAlgorithm.SHA2_256: 32,
    HashAlgorithm.SHA2_384: 48,
    HashAlgorithm.SHA2_512: 64,
}


def _hash(alg: HashAlgorithm) -> hashes.HashAlgorithm:
    if alg == HashAlgorithm.SHA1:
        return hashes.SHA1()  # RSA method 1 is defined with SHA-1
    if alg == HashAlgorithm.SHA2_256:
        return hashes.SHA256()
    if alg == HashAlgorithm.SHA2_384:
        return hashes.SHA384()
    if alg == HashAlgorithm.SHA2_512:
        return hashes.SHA512()
    raise UnknownSignatureAlgorithm(f"no digest for hash {alg!r}")


@dataclass(frozen=True, slots=True)
class SignatureScheme:
    """One signature algorithm: what RFC 7427 names with an AlgorithmIdentifier.

    `hash` is its SIGNATURE_HASH_ALGORITHMS ID (IDENTITY for EdDSA); `pss_salt_length` is
    set for RSASSA-PSS only (with `mgf1_hash`)."""

    name: str
    hash: HashAlgorithm
    key_types: frozenset[KeyType]
    algorithm_identifier: bytes = field(repr=False)
    pss_salt_length: int | None = None
    mgf1_hash: HashAlgorithm | None = None

    @property
    def is_pss(self) -> bool:
        return self.pss_salt_length is not None


def _digest_algid(h: HashAlgorithm) -> algos.DigestAlgorithm:
    return algos.DigestAlgorithm({"algorithm": _HASH_NAMES[h], "parameters": core.Null()})


def _pss_der(h: HashAlgorithm, mgf: HashAlgorithm, salt: int) -> bytes:
    params = algos.RSASSAPSSParams(
        {
            "hash_algorithm": _digest_algid(h),
            "mask_gen_algorithm": algos.MaskGenAlgorithm(
                {"algorithm": "mgf1", "parameters": _digest_algid(mgf)}
            ),
            "salt_length": salt,
        }
    )
    return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params}).dump()


def _pkcs1(h: HashAlgorithm) -> SignatureScheme:
    name = f"{_HASH_NAMES[h]}WithRSAEncryption"
    der = algos.SignedDigestAlgorithm(
        {"algorithm": f"{_HASH_NAMES[h]}_rsa", "parameters": core.Null()}
    ).dump()
    return SignatureScheme(name, h, _RSA, der)


def _pss(h: HashAlgorithm) -> SignatureScheme:
    salt = _HASH_LEN[h]
    return SignatureScheme(f"rsassa-pss-{_HASH_NAMES[h]}", h, _RSA, _pss_der(h, h, salt), salt, h)


def _ecdsa(h: HashAlgorithm) -> SignatureScheme:
    der = algos.SignedDigestAlgorithm({"algorithm": f"{_HASH_NAMES[h]}_ecdsa"}).dump()
    return SignatureScheme(f"ecdsa-with-{_HASH_NAMES[h]}", h, _ECDSA, der)


_SHA2 = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512)
ED25519 = SignatureScheme(
    "ed25519", HashAlgorithm.IDENTITY, frozenset({KeyType.ED25519}),
    algos.SignedDigestAlgorithm({"algorithm": "ed25519"}).dump(),
)
ED448 = SignatureScheme(
    "ed448", HashAlgorithm.IDENTITY, frozenset({KeyType.ED448}),
    algos.SignedDigestAlgorithm({"algorithm": "ed448"}).dump(),
)
RSA_PKCS1_SHA1 = _pkcs1(HashAlgorithm.SHA1)
ECDSA_SHA1 = _ecdsa(HashAlgorithm.SHA1)

#: every scheme this module signs with or verifies, in canonical encoding (RFC 7427 App. A)
SCHEMES: tuple[SignatureScheme, ...] = (
    RSA_PKCS1_SHA1,
    *(_pkcs1(h) for h in _SHA2),
    *(_pss(h) for h in _SHA2),
    ECDSA_SHA1,
    *(_ecdsa(h) for h in _SHA2),
    ED25519,
    ED448,
)
_BY_NAME = {s.name: s for s in SCHEMES}
_BY_DER = {s.algorithm_identifier: s for s in SCHEMES}


def scheme_by_name(name: str) -> SignatureScheme:
    """'sha256WithRSAEncryption', 'rsassa-pss-sha384', 'ecdsa-with-sha256', 'ed25519', ..."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownSignatureAlgorithm(
            f"unknown signature scheme {name!r} (known: {', '.join(_BY_NAME)})"
        ) from None


# RFC 4754 §7 (methods 9/10/11): fixed curve, fixed hash, r|s of the curve's width
_LEGACY_ECDSA: dict[AuthMethod, tuple[KeyType, HashAlgorithm, int]] = {
    AuthMethod.ECDSA_SHA256_P256: (KeyType.ECDSA_P256, HashAlgorithm.SHA2_256, 32),
    AuthMethod.ECDSA_SHA384_P384: (KeyType.ECDSA_P384, HashAlgorithm.SHA2_384, 48),
    AuthMethod.ECDSA_SHA512_P521: (KeyType.ECDSA_P521, HashAlgorithm.SHA2_512, 66),
}
_LEGACY_BY_KEY = {kt: m for m, (kt, _h, _w) in _LEGACY_ECDSA.items()}


def _unknown_oid(alg: algos.SignedDigestAlgorithm) -> UnknownSignatureAlgorithm:
    return UnknownSignatureAlgorithm(
        f"unsupported signature AlgorithmIdentifier {alg['algorithm'].dotted}"
    )


def _parse_pss(alg: algos.SignedDigestAlgorithm, der: bytes) -> SignatureScheme:
    params = alg["parameters"]
    if not isinstance(params, algos.RSASSAPSSParams):
        raise MalformedAuthData("RSASSA-PSS AlgorithmIdentifier without RSASSA-PSS-params")
    h = _HASH_BY_NAME.get(params["hash_algorithm"]["algorithm"].native)
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].native != "mgf1":
        raise UnknownSignatureAlgorithm(
            f"RSASSA-PSS mask generation {mgf['algorithm'].dotted} is not MGF1"
        )
    mgf_h = _HASH_BY_NAME.get(mgf["parameters"]["algorithm"].native)
    if h is None or mgf_h is None:
        raise UnknownSignatureAlgorithm(
            "RSASSA-PSS with hash "
            f"{params['hash_algorithm']['algorithm'].dotted}/"
            f"MGF1 {mgf['parameters']['algorithm'].dotted} is not supported"
        )
    if params["trailer_field"].native != "trailer_field_bc":
        raise UnknownSignatureAlgorithm("RSASSA-PSS trailer field is not 1")
    salt = params["salt_length"].native
    if not 0 <= salt <= 1024:
        raise MalformedAuthData(f"RSASSA-PSS salt length {salt} is out of range")
    name = f"rsassa-pss-{_HASH_NAMES[h]}"
    if mgf_h != h or salt != _HASH_LEN[h]:
        name += f"(mgf1-{_HASH_NAMES[mgf_h]},salt={salt})"
    return SignatureScheme(name, h, _RSA, der, salt, mgf_h)


def parse_algorithm_identifier(der: bytes) -> SignatureScheme:
    """The SignatureScheme an AlgorithmIdentifier (DER) names (RFC 7427 §3, App. A).

    PKCS#1 v1.5 is accepted with NULL or absent parameters; ECDSA and EdDSA must have none;
    RSASSA-PSS may carry any SHA-1/SHA-2 hash, MGF1 hash and salt length."""
    known = _BY_DER.get(der)
    if known is not None:
        return known
    try:
        alg = algos.SignedDigestAlgorithm.load(der, strict=True)
        oid = alg["algorithm"].native
        params = alg["parameters"]
        if oid == "rsassa_pss":
            return _parse_pss(alg, der)
        has_params = not isinstance(params, core.Void)
        for s in SCHEMES:
            if s.is_pss:
                continue
            ref = algos.SignedDigestAlgorithm.load(s.algorithm_identifier)
            if ref["algorithm"].native != oid:
                continue
            rsa_null = s.key_types == _RSA and isinstance(params, core.Null)
            if not has_params or rsa_null:
                return SignatureScheme(s.name, s.hash, s.key_types, der)
            raise MalformedAuthData(
                f"AlgorithmIdentifier {s.name} has parameters it must not carry"
            )
        raise _unknown_oid(alg)
    except SignatureError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise MalformedAuthData(f"AlgorithmIdentifier is not valid DER: {e}") from None


def parse_auth_data(data: bytes) -> tuple[SignatureScheme, bytes]:
    """Split method-14 AUTH data into (scheme, signature value) (RFC 7427 §3)."""
    if len(data) < 2:
        raise MalformedAuthData("Digital Signature AUTH data is too short")
    n = data[0]
    if n == 0 or len(data) < 1 + n + 1:
        raise MalformedAuthData(
            f"AlgorithmIdentifier length {n} does not fit AUTH data of {len(data)} octets"
        )
    return parse_algorithm_identifier(data[1 : 1 + n]), data[1 + n :]


# -- SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) ------------------------------------------------
#: what we announce and accept: SHA-2 and Identity (RFC 8247 §4.2: never SHA-1)
DEFAULT_HASHES: tuple[HashAlgorithm, ...] = (
    HashAlgorithm.SHA2_256,
    HashAlgorithm.SHA2_384,
    HashAlgorithm.SHA2_512,
    HashAlgorithm.IDENTITY,
)


def encode_hash_algorithms(algorithms: Iterable[int]) -> bytes:
    """Notify data: 2-octet hash IDs, no padding (RFC 7427 §4)."""
    out = bytearray()
    for a in algorithms:
        if not 0 <= int(a) <= 0xFFFF:
            raise ValueError(f"hash algorithm ID {a} does not fit 16 bits")
        out += int(a).to_bytes(2, "big")
    return bytes(out)


def decode_hash_algorithms(data: bytes) -> tuple[HashAlgorithm, ...]:
    """The known hash IDs in the peer's notify, in its order, without duplicates; unknown
    IDs are skipped (RFC 7427 §4). Odd length raises MalformedHashAlgorithms."""
    if len(data) % 2:
        raise MalformedHashAlgorithms(
            f"SIGNATURE_HASH_ALGORITHMS data of odd length {len(data)}"
        )
    seen: list[HashAlgorithm] = []
    for i in range(0, len(data), 2):
        v = int.from_bytes(data[i : i + 2], "big")
        if v in HashAlgorithm._value2member_map_:
            h = HashAlgorithm(v)
            if h not in seen:
                seen.append(h)
    return tuple(seen)


# -- policy and choice -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """What we accept from a peer and what we may sign with.

    `hashes`: hash IDs acceptable in method 14 (what we announce; SHA-1 left out per RFC 8247
    §4.2). `legacy_methods`: which of methods 1/9/10/11 are allowed. `min_rsa_bits`: RSA
    keys shorter than this are refused (RFC 8247 §4.1: 2048). `rsa_pss`: sign with RSASSA-PSS
    rather than PKCS#1 v1.5 in method 14 (RFC 8247 §4.2 SHOULD)."""

    hashes: frozenset[HashAlgorithm] = frozenset(DEFAULT_HASHES)
    legacy_methods: frozenset[AuthMethod] = frozenset(
        {AuthMethod.RSA_SIG, *_LEGACY_ECDSA}
    )
    min_rsa_bits: int = 2048
    rsa_pss: bool = True


DEFAULT_POLICY = SignaturePolicy()


@dataclass(frozen=True, slots=True)
class AuthChoice:
    """How to sign our AUTH payload: the method and, for every method, the scheme."""

    method: AuthMethod
    scheme: SignatureScheme


_PREFERENCE: dict[KeyType, tuple[HashAlgorithm, ...]] = {
    KeyType.RSA: _SHA2,
    KeyType.ECDSA_P256: _SHA2,
    KeyType.ECDSA_P384: (HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_512, HashAlgorithm.SHA2_256),
    KeyType.ECDSA_P521: (HashAlgorithm.SHA2_512, HashAlgorithm.SHA2_384, HashAlgorithm.SHA2_256),
    KeyType.ED25519: (HashAlgorithm.IDENTITY,),
    KeyType.ED448: (HashAlgorithm.IDENTITY,),
}


def _check_rsa_size(key: PrivateKey | PublicKey, policy: SignaturePolicy) -> None:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey) and key.key_size < policy.min_rsa_bits:
        raise UnacceptableSignatureAlgorithm(
            f"RSA key of {key.key_size} bits is shorter than {policy.min_rsa_bits}"
        )


def _method14_scheme(kt: KeyType, h: HashAlgorithm, policy: SignaturePolicy) -> SignatureScheme:
    if kt == KeyType.ED25519:
        return ED25519
    if kt == KeyType.ED448:
        return ED448
    if kt == KeyType.RSA:
        prefix = "rsassa-pss-" if policy.rsa_pss else ""
        suffix = "" if policy.rsa_pss else "WithRSAEncryption"
        return _BY_NAME[f"{prefix}{_HASH_NAMES[h]}{suffix}"]
    return _BY_NAME[f"ecdsa-with-{_HASH_NAMES[h]}"]


def choose_auth(
    key: PrivateKey,
    peer_hashes: Collection[int] | None,
    policy: SignaturePolicy = DEFAULT_POLICY,
) -> AuthChoice:
    """Pick the AUTH method and scheme for our key (RFC 7427 §4, REQUIREMENTS 7427-03).

    `peer_hashes`: decode_hash_algorithms() of the peer's notify, or None if it sent none.
    With a common hash → method 14 with the best hash for the key; otherwise the legacy
    method (1 for RSA, 9/10/11 for the matching curve) if policy allows; else
    NoCommonSignatureHash."""
    kt = key_type(key)
    _check_rsa_size(key, policy)
    if peer_hashes is not None:
        offered = set(peer_hashes)
        for h in _PREFERENCE[kt]:
            if h in offered and h in policy.hashes:
                return AuthChoice(AuthMethod.DIGITAL_SIGNATURE, _method14_scheme(kt, h, policy))
    if kt == KeyType.RSA and AuthMethod.RSA_SIG in policy.legacy_methods:
        return AuthChoice(AuthMethod.RSA_SIG, RSA_PKCS1_SHA1)
    legacy = _LEGACY_BY_KEY.get(kt)
    if legacy is not None and legacy in policy.legacy_methods:
        return AuthChoice(legacy, _BY_NAME[f"ecdsa-with-{_HASH_NAMES[_LEGACY_ECDSA[legacy][1]]}"])
    announced = "none" if peer_hashes is None else (
        ", ".join(HashAlgorithm(h).name if h in HashAlgorithm._value2member_map_ else str(h)
                  for h in peer_hashes) or "empty list")
    raise NoCommonSignatureHash(
        f"cannot sign with a {kt.value} key: peer announced hashes {announced}"
    )


# -- raw sign / verify --------------------------------------------------------------------
def _check_fits(scheme: SignatureScheme, kt: KeyType) -> None:
    if kt not in scheme.key_types:
        raise SignatureAlgorithmMismatch(
            f"signature algorithm {scheme.name} does not fit a {kt.value} key"
        )


def _pss_padding(scheme: SignatureScheme) -> padding.PSS:
    assert scheme.pss_salt_length is not None and scheme.mgf1_hash is not None
    return padding.PSS(mgf=padding.MGF1(_hash(scheme.mgf1_hash)),
                       salt_length=scheme.pss_salt_length)


def sign(key: PrivateKey, scheme: SignatureScheme, data: bytes) -> bytes:
    """The signature value of `data` (ECDSA as DER Ecdsa-Sig-Value)."""
    kt = key_type(key)
    _check_fits(scheme, kt)
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        pad = _pss_padding(scheme) if scheme.is_pss else padding.PKCS1v15()
        return key.sign(data, pad, _hash(scheme.hash))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(_hash(scheme.hash)))
    raise UnsupportedKey(f"unsupported key type {type(key).__name__}")  # pragma: no cover


def verify(key: PublicKey, scheme: SignatureScheme, data: bytes, signature: bytes) -> None:
    """Raise BadSignature unless `signature` (ECDSA: DER) verifies over `data`."""
    kt = key_type(key)
    _check_fits(scheme, kt)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        elif isinstance(key, rsa.RSAPublicKey):
            if scheme.is_pss:
                key.verify(signature, data, _pss_padding(scheme), _hash(scheme.hash))
            else:
                key.verify(signature, data, padding.PKCS1v15(), _hash(scheme.hash))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_hash(scheme.hash)))
        else:  # pragma: no cover - key_type() already refused it
            raise UnsupportedKey(f"unsupported key type {type(key).__name__}")
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        raise BadSignature(f"{scheme.name} signature does not verify") from None


# -- AUTH payload data --------------------------------------------------------------------
def sign_auth(key: PrivateKey, octets: bytes, choice: AuthChoice) -> bytes:
    """AUTH payload data for `choice` over the signed octets (RFC 7296 §2.15)."""
    method = choice.method
    if method == AuthMethod.DIGITAL_SIGNATURE:
        der = choice.scheme.algorithm_identifier
        return bytes((len(der),)) + der + sign(key, choice.scheme, octets)
    if method == AuthMethod.RSA_SIG:
        if key_type(key) != KeyType.RSA:
            raise SignatureAlgorithmMismatch(
                f"AUTH method 1 needs an RSA key, not {key_type(key).value}"
            )
        return sign(key, RSA_PKCS1_SHA1, octets)
    if method in _LEGACY_ECDSA:
        kt, h, width = _LEGACY_ECDSA[AuthMethod(method)]
        if key_type(key) != kt:
            raise SignatureAlgorithmMismatch(
                f"AUTH method {int(method)} needs a {kt.value} key, not {key_type(key).value}"
            )
        r, s = decode_dss_signature(sign(key, _BY_NAME[f"ecdsa-with-{_HASH_NAMES[h]}"], octets))
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")
    raise UnknownSignatureAlgorithm(f"AUTH method {int(method)} is not a signature method")


def verify_auth(
    key: PublicKey,
    method: int,
    auth_data: bytes,
    octets: bytes,
    policy: SignaturePolicy = DEFAULT_POLICY,
) -> SignatureScheme:
    """Verify a peer's AUTH payload with the public key of its end-entity certificate.

    Checks, in order: method known and allowed, AlgorithmIdentifier parses (method 14) and
    is acceptable (hash in policy.hashes, REQUIREMENTS 7427-04), fits the key type/size,
    signature verifies. Returns the scheme used; raises a SignatureError subclass."""
    kt = key_type(key)
    _check_rsa_size(key, policy)
    if method == AuthMethod.DIGITAL_SIGNATURE:
        scheme, sig = parse_auth_data(auth_data)
        if scheme.hash not in policy.hashes:
            raise UnacceptableSignatureAlgorithm(
                f"signature algorithm {scheme.name} uses hash {scheme.hash.name}, "
                "which we did not announce"
            )
        if scheme.is_pss and scheme.mgf1_hash not in policy.hashes:
            raise UnacceptableSignatureAlgorithm(
                f"RSASSA-PSS MGF1 hash {scheme.mgf1_hash!r} is not acceptable"
            )
        verify(key, scheme, octets, sig)
        return scheme
    if method not in AuthMethod._value2member_map_ or (
        method != AuthMethod.RSA_SIG and method not in _LEGACY_ECDSA
    ):
        raise UnknownSignatureAlgorithm(f"AUTH method {method} is not a signature method")
    am = AuthMethod(method)
    if am not in policy.legacy_methods:
        raise UnacceptableSignatureAlgorithm(f"AUTH method {am.name} ({int(am)}) is not allowed")
    if am == AuthMethod.RSA_SIG:
        if kt != KeyType.RSA:
            raise SignatureAlgorithmMismatch(f"AUTH method 1 (RSA) with a {kt.value} key")
        verify(key, RSA_PKCS1_SHA1, octets, auth_data)
        return RSA_PKCS1_SHA1
    want, h, width = _LEGACY_ECDSA[am]
    if kt != want:
        raise SignatureAlgorithmMismatch(
            f"AUTH method {am.name} ({int(am)}) needs a {want.value} key, not {kt.value}"
        )
    if len(auth_data) != 2 * width:
        raise MalformedAuthData(
            f"ECDSA signature of {len(auth_data)} octets, RFC 4754 wants r|s of {2 * width}"
        )
    r = int.from_bytes(auth_data[:width], "big")
    s = int.from_bytes(auth_data[width:], "big")
    scheme = _BY_NAME[f"ecdsa-with-{_HASH_NAMES[h]}"]
    verify(key, scheme, octets, encode_dss_signature(r, s))
    return scheme
