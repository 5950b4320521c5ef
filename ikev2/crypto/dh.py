"""Key exchange methods (transform type 4): MODP, ECP, Curve25519/448, with RFC 6989 checks
(RFC 7296 §2.14, RFC 3526, RFC 5903 §7, RFC 8031 §2, RFC 6989 §2)."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import dh, ec, x448, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ikev2.crypto._modp import MODP_PRIMES
from ikev2.errors import InvalidPublicValue
from ikev2.protocol.enums import DhGroup

__all__ = ["DhGroupImpl", "KeyPair", "get_group", "supported_groups"]

RandomBytes = Callable[[int], bytes]

# Private exponent bits for MODP: twice the group's symmetric strength (RFC 3526 §8,
# NIST SP 800-56A Rev. 3 5.6.1.1.1), rounded up to whole octets.
_MODP_EXPONENT_BITS = {2: 160, 5: 192, 14: 256, 15: 256, 16: 320, 17: 384, 18: 512}


class KeyPair:
    """Our ephemeral key: `public` is KE payload data; `shared_secret(peer)` is g^ir."""

    __slots__ = ("group", "public")

    def __init__(self, group: DhGroupImpl, public: bytes) -> None:
        self.group = group
        self.public = public

    def shared_secret(self, peer_public: bytes) -> bytes:
        """g^ir from the peer's KE data after RFC 6989 checks (RFC 7296 §2.14)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"KeyPair({self.group.name})"


class DhGroupImpl:
    """One key exchange method: `public_size` is the KE data length."""

    __slots__ = ("id", "name", "public_size")

    def __init__(self, group_id: int, name: str, public_size: int) -> None:
        self.id = group_id
        self.name = name
        self.public_size = public_size

    def generate(self, random_bytes: RandomBytes) -> KeyPair:
        """A fresh key pair from injected randomness (RFC 7296 §2.12)."""
        raise NotImplementedError

    def _check_length(self, peer_public: bytes) -> None:
        """Wrong-length KE data is rejected (RFC 6989 §2.3, RFC 8031 §2)."""
        if len(peer_public) != self.public_size:
            raise InvalidPublicValue(
                f"{self.name}: KE data is {len(peer_public)} octets, expected {self.public_size}"
            )

    def __repr__(self) -> str:
        return f"DhGroupImpl({self.name})"


# --- MODP (RFC 3526) ---------------------------------------------------------------------


class _ModpKeyPair(KeyPair):
    __slots__ = ("_private",)

    def __init__(self, group: _ModpGroup, public: bytes, private: dh.DHPrivateKey) -> None:
        super().__init__(group, public)
        self._private = private

    def shared_secret(self, peer_public: bytes) -> bytes:
        """g^ir big-endian, padded to the modulus length (RFC 7296 §2.14, RFC 6989 §2.1)."""
        group: _ModpGroup = self.group  # type: ignore[assignment]
        y = group.check_public(peer_public)
        peer = dh.DHPublicNumbers(y, group.numbers).public_key()
        return self._private.exchange(peer).rjust(group.public_size, b"\x00")


class _ModpGroup(DhGroupImpl):
    """MODP group with a short private exponent; modexp runs in OpenSSL (~7x Python pow)."""

    __slots__ = ("_generator_key", "exponent_bytes", "numbers", "p")

    def __init__(self, group_id: int, p: int, exponent_bits: int) -> None:
        size = (p.bit_length() + 7) // 8
        super().__init__(group_id, f"modp{p.bit_length()}", size)
        self.p = p
        self.numbers = dh.DHParameterNumbers(p, 2)
        self.exponent_bytes = exponent_bits // 8
        self._generator_key: dh.DHPublicKey | None = None

    def check_public(self, peer_public: bytes) -> int:
        """RFC 6989 §2.1: exact length and 1 < y < p-1."""
        self._check_length(peer_public)
        y = int.from_bytes(peer_public, "big")
        if not 1 < y < self.p - 1:
            raise InvalidPublicValue(f"{self.name}: public value not in 1 < y < p-1")
        return y

    def generate(self, random_bytes: RandomBytes) -> KeyPair:
        """x = short random exponent with its top bit set; public = 2^x mod p (RFC 3526 §8)."""
        raw = random_bytes(self.exponent_bytes)
        if len(raw) != self.exponent_bytes:
            raise ValueError("random source returned too few octets")
        x = int.from_bytes(raw, "big") | (1 << (self.exponent_bytes * 8 - 1))
        if self._generator_key is None:
            self._generator_key = dh.DHPublicNumbers(2, self.numbers).public_key()
        # OpenSSL computes g^x by an exchange with the generator as "peer"
        seed = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(2, self.numbers)).private_key()
        public = seed.exchange(self._generator_key).rjust(self.public_size, b"\x00")
        y = int.from_bytes(public, "big")
        private = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(y, self.numbers)).private_key()
        return _ModpKeyPair(self, public, private)


# --- ECP (RFC 5903) ----------------------------------------------------------------------


class _EcpKeyPair(KeyPair):
    __slots__ = ("_private",)

    def __init__(
        self, group: _EcpGroup, public: bytes, private: ec.EllipticCurvePrivateKey
    ) -> None:
        super().__init__(group, public)
        self._private = private

    def shared_secret(self, peer_public: bytes) -> bytes:
        """x-coordinate of the shared point, fixed width (RFC 5903 §7, RFC 6989 §2.3)."""
        group: _EcpGroup = self.group  # type: ignore[assignment]
        peer = group.load_public(peer_public)
        return self._private.exchange(ec.ECDH(), peer)


class _EcpGroup(DhGroupImpl):
    __slots__ = ("coord_size", "curve", "field_p", "mask", "order")

    def __init__(self, group_id: int, curve: ec.EllipticCurve, field_p: int, order: int) -> None:
        coord = (field_p.bit_length() + 7) // 8
        super().__init__(group_id, f"ecp{curve.key_size}", 2 * coord)
        self.curve = curve
        self.field_p = field_p
        self.order = order
        self.coord_size = coord
        self.mask = (1 << order.bit_length()) - 1

    def load_public(self, peer_public: bytes) -> ec.EllipticCurvePublicKey:
        """RFC 6989 §2.3: exact length, not infinity, coordinates < p, point on the curve."""
        self._check_length(peer_public)
        n = self.coord_size
        x = int.from_bytes(peer_public[:n], "big")
        y = int.from_bytes(peer_public[n:], "big")
        if x == 0 and y == 0:
            raise InvalidPublicValue(f"{self.name}: point at infinity")
        if x >= self.field_p or y >= self.field_p:
            raise InvalidPublicValue(f"{self.name}: coordinate not below the field prime")
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(self.curve, b"\x04" + peer_public)
        except ValueError:
            raise InvalidPublicValue(f"{self.name}: point not on the curve") from None

    def generate(self, random_bytes: RandomBytes) -> KeyPair:
        """Private scalar by rejection sampling in [1, n-1] (FIPS 186-5 A.2.2); public =
        x | y without the 0x04 prefix (RFC 5903 §7)."""
        for _ in range(64):
            raw = random_bytes(self.coord_size)
            k = int.from_bytes(raw, "big") & self.mask
            if 0 < k < self.order:
                break
        else:
            raise ValueError("random source keeps returning out-of-range scalars")
        private = ec.derive_private_key(k, self.curve)
        point = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return _EcpKeyPair(self, point[1:], private)


# --- Curve25519 / Curve448 (RFC 8031) ----------------------------------------------------


class _XKeyPair(KeyPair):
    __slots__ = ("_private",)

    def __init__(
        self,
        group: _XGroup,
        public: bytes,
        private: x25519.X25519PrivateKey | x448.X448PrivateKey,
    ) -> None:
        super().__init__(group, public)
        self._private = private

    def shared_secret(self, peer_public: bytes) -> bytes:
        """Raw X25519/X448 output, rejected if all-zero (RFC 8031 §2, RFC 7748 §6)."""
        group: _XGroup = self.group  # type: ignore[assignment]
        group._check_length(peer_public)
        try:
            secret = self._private.exchange(group.public_cls.from_public_bytes(peer_public))
        except ValueError:
            # OpenSSL refuses an all-zero result (small-order peer point)
            raise InvalidPublicValue(f"{group.name}: all-zero shared secret") from None
        if not any(secret):
            raise InvalidPublicValue(f"{group.name}: all-zero shared secret")
        return secret


class _XGroup(DhGroupImpl):
    __slots__ = ("private_cls", "public_cls")

    def __init__(
        self,
        group_id: int,
        name: str,
        size: int,
        private_cls: type[x25519.X25519PrivateKey] | type[x448.X448PrivateKey],
        public_cls: type[x25519.X25519PublicKey] | type[x448.X448PublicKey],
    ) -> None:
        super().__init__(group_id, name, size)
        self.private_cls = private_cls
        self.public_cls = public_cls

    def generate(self, random_bytes: RandomBytes) -> KeyPair:
        """32/56 random octets, clamped by the library (RFC 7748 §5, RFC 8031 §2)."""
        raw = random_bytes(self.public_size)
        if len(raw) != self.public_size:
            raise ValueError("random source returned too few octets")
        private = self.private_cls.from_private_bytes(raw)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return _XKeyPair(self, public, private)


_P256 = 2**256 - 2**224 + 2**192 + 2**96 - 1
_P384 = 2**384 - 2**128 - 2**96 + 2**32 - 1
_P521 = 2**521 - 1
_N256 = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
_N384 = int(
    "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
    16,
)
_N521 = int(
    "01FF" + "FFFFFFFF" * 7 + "FFFFFFFA51868783BF2F966B7FCC0148F709A5D0"
    "3BB5C9B8899C47AEBB6FB71E91386409",
    16,
)

_GROUPS: dict[int, DhGroupImpl] = {
    g: _ModpGroup(g, p, _MODP_EXPONENT_BITS[g]) for g, p in MODP_PRIMES.items()
}
_GROUPS[DhGroup.ECP_256] = _EcpGroup(DhGroup.ECP_256, ec.SECP256R1(), _P256, _N256)
_GROUPS[DhGroup.ECP_384] = _EcpGroup(DhGroup.ECP_384, ec.SECP384R1(), _P384, _N384)
_GROUPS[DhGroup.ECP_521] = _EcpGroup(DhGroup.ECP_521, ec.SECP521R1(), _P521, _N521)
_GROUPS[DhGroup.CURVE25519] = _XGroup(
    DhGroup.CURVE25519, "x25519", 32, x25519.X25519PrivateKey, x25519.X25519PublicKey
)
_GROUPS[DhGroup.CURVE448] = _XGroup(
    DhGroup.CURVE448, "x448", 56, x448.X448PrivateKey, x448.X448PublicKey
)


def get_group(group_id: int) -> DhGroupImpl:
    """The key exchange method for a type 4 ID; ValueError if unsupported (RFC 7296 §3.3.2)."""
    try:
        return _GROUPS[group_id]
    except KeyError:
        raise ValueError(f"unsupported Diffie-Hellman group {group_id}") from None


def supported_groups() -> tuple[int, ...]:
    """Group IDs this build implements (RFC 8247 §3.4)."""
    return tuple(_GROUPS)
