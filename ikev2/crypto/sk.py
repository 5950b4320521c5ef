"""Encrypted (SK) payload protection for one IKE SA direction (RFC 7296 §3.14, RFC 5282 §5,
RFC 7634 §3), and the same constructions for one ESP SA direction (RFC 4303 §2-§3,
RFC 4106, RFC 4309, RFC 7634 §2; mobility/esp.py).

The codec passes aad = IKE header + unencrypted payloads + SK generic header (ESP: SPI |
sequence number, RFC 4303 §2.1-§2.2 / RFC 4106 §5), the IV it put in the packet, and the
plaintext already padded (payloads | padding | Pad Length [| Next Header]).
`seal` returns ciphertext | ICV; `open` takes the same and raises IntegrityError.
`icv_suffix` is for ESP's extended sequence numbers with an integrity transform: octets
the ICV covers after the ciphertext but that are not sent (RFC 4303 §2.2.1, §3.3.2.1); an
AEAD covers them in the AAD instead (RFC 4106 §5), so AEAD crypters refuse a suffix.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from ikev2.crypto.encr import Encr
from ikev2.crypto.integ import Integ
from ikev2.errors import IntegrityError
from ikev2.protocol.enums import EncrId

__all__ = ["SkCrypter", "make_esp_crypter", "make_sk_crypter"]

_ZERO16 = bytes(16)


class SkCrypter:
    """Prepared cipher state for one direction of an IKE SA (RFC 7296 §3.14)."""

    __slots__ = ("block_size", "icv_size", "iv_size")

    def __init__(self, iv_size: int, block_size: int, icv_size: int) -> None:
        self.iv_size = iv_size
        self.block_size = block_size
        self.icv_size = icv_size

    def seal(self, aad: bytes, iv: bytes, plaintext: bytes, icv_suffix: bytes = b"") -> bytes:
        """Encrypt and authenticate; returns ciphertext | ICV (RFC 7296 §3.14)."""
        raise NotImplementedError

    def open(self, aad: bytes, iv: bytes, ciphertext_and_icv: bytes,
             icv_suffix: bytes = b"") -> bytes:
        """Verify then decrypt; IntegrityError if the ICV/tag fails (RFC 7296 §3.14)."""
        raise NotImplementedError


def _no_suffix(icv_suffix: bytes) -> None:
    if icv_suffix:
        raise ValueError("an AEAD covers the ESN high-order bits in the AAD (RFC 4106 §5), "
                         "not after the ciphertext")


class _AeadCrypter(SkCrypter):
    """AES-GCM-16 / AES-CCM / ChaCha20-Poly1305: nonce = salt | IV (RFC 5282 §5, RFC 7634 §3)."""

    __slots__ = ("_aead", "_salt")

    def __init__(self, encr: Encr, aead: AESGCM | AESCCM | ChaCha20Poly1305, salt: bytes) -> None:
        super().__init__(encr.iv_size, encr.block_size, encr.icv_size)
        self._aead = aead
        self._salt = salt

    def seal(self, aad: bytes, iv: bytes, plaintext: bytes, icv_suffix: bytes = b"") -> bytes:
        """AEAD encrypt with AAD = header octets (RFC 5282 §5.1, RFC 7634 §3)."""
        _no_suffix(icv_suffix)
        if len(iv) != self.iv_size:
            raise ValueError(f"IV must be {self.iv_size} octets")
        return self._aead.encrypt(self._salt + iv, plaintext, aad)

    def open(self, aad: bytes, iv: bytes, ciphertext_and_icv: bytes,
             icv_suffix: bytes = b"") -> bytes:
        """AEAD decrypt; tag failure -> IntegrityError (RFC 5282 §5.1, RFC 7634 §3)."""
        _no_suffix(icv_suffix)
        if len(iv) != self.iv_size or len(ciphertext_and_icv) < self.icv_size:
            raise IntegrityError("SK payload too short")
        try:
            return self._aead.decrypt(self._salt + iv, ciphertext_and_icv, aad)
        except InvalidTag:
            raise IntegrityError("AEAD tag mismatch") from None


class _GcmShortTagCrypter(SkCrypter):
    """AES-GCM with an 8- or 12-octet ICV (truncated tag, RFC 5282 §7.1, RFC 4106 §6)."""

    __slots__ = ("_algorithm", "_salt")

    def __init__(self, encr: Encr, key: bytes, salt: bytes) -> None:
        super().__init__(encr.iv_size, encr.block_size, encr.icv_size)
        self._algorithm = algorithms.AES(key)
        self._salt = salt

    def seal(self, aad: bytes, iv: bytes, plaintext: bytes, icv_suffix: bytes = b"") -> bytes:
        """GCM encrypt, tag truncated to icv_size (RFC 5282 §7.1)."""
        _no_suffix(icv_suffix)
        if len(iv) != self.iv_size:
            raise ValueError(f"IV must be {self.iv_size} octets")
        enc = Cipher(self._algorithm, modes.GCM(self._salt + iv)).encryptor()
        enc.authenticate_additional_data(aad)
        out = enc.update(plaintext) + enc.finalize()
        return out + enc.tag[: self.icv_size]

    def open(self, aad: bytes, iv: bytes, ciphertext_and_icv: bytes,
             icv_suffix: bytes = b"") -> bytes:
        """GCM decrypt against a truncated tag (RFC 5282 §7.1)."""
        _no_suffix(icv_suffix)
        n = self.icv_size
        if len(iv) != self.iv_size or len(ciphertext_and_icv) < n:
            raise IntegrityError("SK payload too short")
        tag = ciphertext_and_icv[-n:]
        mode = modes.GCM(self._salt + iv, tag, min_tag_length=n)
        dec = Cipher(self._algorithm, mode).decryptor()
        dec.authenticate_additional_data(aad)
        try:
            return dec.update(ciphertext_and_icv[:-n]) + dec.finalize()
        except InvalidTag:
            raise IntegrityError("AEAD tag mismatch") from None


class _MacThenCheck(SkCrypter):
    """Shared encrypt-then-MAC logic: ICV = integ(aad | IV | ciphertext) (RFC 7296 §3.14)."""

    __slots__ = ("_mac",)

    def __init__(self, encr: Encr, integ: Integ, integ_key: bytes) -> None:
        super().__init__(encr.iv_size, encr.block_size, integ.icv_size)
        self._mac: Callable[[bytes], bytes] = integ.prepare(integ_key)

    def _encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        """Cipher-specific encryption (RFC 7296 §3.14)."""
        raise NotImplementedError

    def _decrypt(self, iv: bytes, ciphertext: bytes) -> bytes:
        """Cipher-specific decryption (RFC 7296 §3.14)."""
        raise NotImplementedError

    def seal(self, aad: bytes, iv: bytes, plaintext: bytes, icv_suffix: bytes = b"") -> bytes:
        """Encrypt, then MAC header | IV | ciphertext [| ESN high bits] (RFC 7296 §3.14,
        RFC 4303 §3.3.2.1)."""
        if len(iv) != self.iv_size:
            raise ValueError(f"IV must be {self.iv_size} octets")
        if len(plaintext) % self.block_size:
            raise ValueError(f"plaintext must be a multiple of {self.block_size} octets")
        ct = self._encrypt(iv, plaintext)
        return ct + self._mac(aad + iv + ct + icv_suffix)

    def open(self, aad: bytes, iv: bytes, ciphertext_and_icv: bytes,
             icv_suffix: bytes = b"") -> bytes:
        """Check the ICV in constant time before decrypting (RFC 7296 §3.14, §2.21;
        RFC 4303 §3.4.4)."""
        n = self.icv_size
        ct_len = len(ciphertext_and_icv) - n
        if len(iv) != self.iv_size or ct_len < 0 or ct_len % self.block_size:
            raise IntegrityError("SK payload has a bad length")
        ct = ciphertext_and_icv[:ct_len]
        mac = self._mac(aad + iv + ct + icv_suffix)
        if not hmac.compare_digest(mac, ciphertext_and_icv[ct_len:]):
            raise IntegrityError("ICV mismatch")
        return self._decrypt(iv, ct)


class _CbcCrypter(_MacThenCheck):
    """AES-CBC on long-lived contexts: each context keeps its last ciphertext block, which is
    XOR-ed out of the first block so any IV can be used without a new context (RFC 3602 §2)."""

    __slots__ = ("_dec", "_dec_chain", "_enc", "_enc_chain", "_key")

    def __init__(self, encr: Encr, encr_key: bytes, integ: Integ, integ_key: bytes) -> None:
        super().__init__(encr, integ, integ_key)
        self._key = algorithms.AES(encr_key)
        # created on first use: one direction's crypter normally only seals or only opens
        self._enc: CipherContext | None = None
        self._dec: CipherContext | None = None
        self._enc_chain = 0
        self._dec_chain = 0

    def _encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        """CBC encrypt with explicit IV (RFC 3602 §2.3)."""
        if not plaintext:
            return b""
        first = int.from_bytes(plaintext[:16], "big") ^ int.from_bytes(iv, "big")
        first ^= self._enc_chain
        if self._enc is None:
            self._enc = Cipher(self._key, modes.CBC(_ZERO16)).encryptor()
        ct = self._enc.update(first.to_bytes(16, "big") + plaintext[16:])
        self._enc_chain = int.from_bytes(ct[-16:], "big")
        return ct

    def _decrypt(self, iv: bytes, ciphertext: bytes) -> bytes:
        """CBC decrypt with explicit IV (RFC 3602 §2.3)."""
        if not ciphertext:
            return b""
        if self._dec is None:
            self._dec = Cipher(self._key, modes.CBC(_ZERO16)).decryptor()
        out = self._dec.update(ciphertext)
        first = int.from_bytes(out[:16], "big") ^ int.from_bytes(iv, "big") ^ self._dec_chain
        self._dec_chain = int.from_bytes(ciphertext[-16:], "big")
        return first.to_bytes(16, "big") + out[16:]


class _CtrCrypter(_MacThenCheck):
    """AES-CTR: counter block = nonce | IV | 00000001 (RFC 3686 §4, RFC 5930 §2)."""

    __slots__ = ("_key", "_nonce")

    def __init__(self, encr: Encr, encr_key: bytes, integ: Integ, integ_key: bytes) -> None:
        super().__init__(encr, integ, integ_key)
        self._key = algorithms.AES(encr_key[: -encr.salt_size])
        self._nonce = encr_key[-encr.salt_size :]

    def _encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        """Keystream XOR (RFC 3686 §2)."""
        ctx = Cipher(self._key, modes.CTR(self._nonce + iv + b"\x00\x00\x00\x01")).encryptor()
        return ctx.update(plaintext) + ctx.finalize()

    _decrypt = _encrypt


class _NullCrypter(_MacThenCheck):
    """ENCR_NULL: integrity only, the payload goes in clear (RFC 2410; ESP only)."""

    __slots__ = ()

    def _encrypt(self, iv: bytes, plaintext: bytes) -> bytes:
        """The identity (RFC 2410 §2)."""
        return plaintext

    _decrypt = _encrypt


def make_sk_crypter(
    encr: Encr, encr_key: bytes, integ: Integ | None, integ_key: bytes
) -> SkCrypter:
    """Build the SK payload protector for one direction (SK_ei/SK_ai or SK_er/SK_ar)
    (RFC 7296 §3.14, RFC 5282 §5, RFC 7634 §3)."""
    if not encr.ike:
        raise ValueError(f"{encr.name} cannot protect an IKE SA")
    return _make(encr, encr_key, integ, integ_key)


def make_esp_crypter(
    encr: Encr, encr_key: bytes, integ: Integ | None, integ_key: bytes
) -> SkCrypter:
    """The same constructions for one direction of an ESP SA, NULL encryption included
    (RFC 4303 §3.2, RFC 4106 §3-§5, RFC 4309, RFC 7634 §2, RFC 2410): aad = SPI | sequence
    number (with ESN: SPI | high | low bits for an AEAD, the high bits as `icv_suffix`
    otherwise)."""
    return _make(encr, encr_key, integ, integ_key)


def _make(encr: Encr, encr_key: bytes, integ: Integ | None, integ_key: bytes) -> SkCrypter:
    if len(encr_key) != encr.key_size:
        raise ValueError(f"{encr.name} needs a {encr.key_size}-octet key, got {len(encr_key)}")
    if encr.is_aead:
        if integ is not None:
            raise ValueError("an AEAD cipher takes no integrity transform (RFC 5282 §8)")
        key, salt = encr_key[: -encr.salt_size], encr_key[-encr.salt_size :]
        if encr.id == EncrId.CHACHA20_POLY1305:
            return _AeadCrypter(encr, ChaCha20Poly1305(key), salt)
        if encr.id in (EncrId.AES_CCM_8, EncrId.AES_CCM_12, EncrId.AES_CCM_16):
            return _AeadCrypter(encr, AESCCM(key, tag_length=encr.icv_size), salt)
        if encr.icv_size == 16:
            return _AeadCrypter(encr, AESGCM(key), salt)
        return _GcmShortTagCrypter(encr, key, salt)
    if integ is None:
        raise ValueError(f"{encr.name} needs an integrity transform")
    if encr.id == EncrId.AES_CBC:
        return _CbcCrypter(encr, encr_key, integ, integ_key)
    if encr.id == EncrId.AES_CTR:
        return _CtrCrypter(encr, encr_key, integ, integ_key)
    if encr.id == EncrId.NULL:
        return _NullCrypter(encr, integ, integ_key)
    raise ValueError(f"no SK payload construction for {encr.name}")
