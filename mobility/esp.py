"""ESP (RFC 4303) in user space, for Binding Updates and Acknowledgements on the MH-over-UDP
path: RFC 5555 §4.1 puts ESP between the inner IPv6 header and the Mobility Header
(mobility/transport.py has the datagram, mobility/protection.py the SAs and their keys).

The BU/BA CHILD_SA ikev2d negotiated (REQUIREMENTS 4877-01, 5555-02) is a transport SA the
kernel would apply to raw MH; a UDP socket cannot make the kernel apply it, so the agents
apply it themselves with the SA's keys (`GET /child-sas/{id}/keys`, docs/api.md).

    ESP packet = SPI (4) | Sequence Number (4: the low 32 bits) | IV | ciphertext | ICV
    plaintext  = payload | Padding 1, 2, 3, ... | Pad Length (1) | Next Header (1)

- Algorithms: the constructions of ikev2/crypto (`make_esp_crypter`): AES-GCM and AES-CCM
  with 8/12/16-octet ICVs (RFC 4106, RFC 4309), ChaCha20-Poly1305 (RFC 7634), AES-CBC and
  AES-CTR (RFC 3602, RFC 3686) or NULL (RFC 2410) with HMAC-SHA1-96, HMAC-SHA2-256/384/512
  (RFC 4868), AES-XCBC-MAC-96 or AES-CMAC-96. ESP without integrity is refused (4877-01).
- Sequence numbers (§2.2, §3.3.3): the sender counts from 1 and stops before the counter
  would cycle (2^32 - 1, or 2^64 - 1 with ESN). With ESN the high 32 bits are never sent:
  an integrity transform covers them after the ciphertext (§2.2.1, §3.3.2.1), an AEAD in
  its AAD, SPI | high | low (RFC 4106 §5, RFC 4309 §5, RFC 7634 §2.1).
- IV: for the counter-based modes (GCM, CCM, ChaCha20-Poly1305, CTR) the 64-bit sequence
  number XOR a random mask drawn per sender: unique per key as those RFCs require (RFC 4106
  §3.1, RFC 3686 §3.1), and two senders handed the same keys almost surely never meet; for
  CBC a random block (RFC 3602 §2.3).
- Padding (§2.4): to a multiple of the cipher block and of 4 octets, 1, 2, 3, ...; the
  receiver checks it.
- Anti-replay (§3.4.3, Appendix A): a sliding window, checked before the ICV and advanced
  only after the ICV verified; with ESN the high bits are inferred (Appendix A2.2).

Every failure raises an EspError subclass (mobility/errors.py) and changes no state: not the
sender's counter, not the receiver's window.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ikev2.crypto import Encr, Integ, SkCrypter, UnsupportedTransform, get_encr, get_integ
from ikev2.crypto.sk import make_esp_crypter
from ikev2.errors import IntegrityError
from ikev2.protocol.enums import EncrId
from mobility.errors import (
    EspIntegrityError,
    EspPaddingError,
    EspReplay,
    EspSequenceExhausted,
    EspTruncated,
    EspUnknownSpi,
    EspUnsupported,
)

NEXT_HEADER_NONE = 59  # a dummy packet (RFC 4303 §2.6): verified, then discarded
ESP_HEADER = struct.Struct("!II")
DEFAULT_REPLAY_WINDOW = 64  # RFC 4303 §3.4.3: "a minimum window size of 32 ... 64 SHOULD"
MAX_REPLAY_WINDOW = 4096
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_COUNTER_IV = frozenset({EncrId.AES_CTR, EncrId.AES_GCM_8, EncrId.AES_GCM_12,
                         EncrId.AES_GCM_16, EncrId.AES_CCM_8, EncrId.AES_CCM_12,
                         EncrId.AES_CCM_16, EncrId.CHACHA20_POLY1305})


@dataclass(frozen=True, slots=True)
class EspTransform:
    """The algorithms of an ESP SA (both directions share them)."""

    encr_id: int
    encr_key_bits: int | None
    integ_id: int  # 0: none (an AEAD)
    esn: bool

    def __post_init__(self) -> None:
        encr, integ = self.encr, self.integ  # raise EspUnsupported now, not per packet
        if encr.is_aead and integ is not None:
            raise EspUnsupported(f"{encr.name} takes no integrity transform (RFC 4303 §3.2)")
        if not encr.is_aead and integ is None:
            raise EspUnsupported(f"ESP with {encr.name} and no integrity cannot protect BU/BA "
                                 "(REQUIREMENTS 4877-01)")
        if encr.id not in _COUNTER_IV and encr.id not in (EncrId.AES_CBC, EncrId.NULL):
            raise EspUnsupported(f"no ESP construction for {encr.name}")

    @property
    def encr(self) -> Encr:
        try:
            return get_encr(self.encr_id, self.encr_key_bits)
        except UnsupportedTransform as exc:
            raise EspUnsupported(str(exc)) from None

    @property
    def integ(self) -> Integ | None:
        if not self.integ_id:
            return None
        try:
            return get_integ(self.integ_id)
        except ValueError as exc:
            raise EspUnsupported(str(exc)) from None

    @property
    def align(self) -> int:
        """The ciphertext is a multiple of this (RFC 4303 §2.4)."""
        return max(self.encr.block_size, 4)

    @property
    def name(self) -> str:
        integ = self.integ
        return self.encr.name + (f"-{integ.name}" if integ else "") + ("-esn" if self.esn
                                                                      else "")

    def crypter(self, keys: EspKeys) -> SkCrypter:
        try:
            return make_esp_crypter(self.encr, keys.encr_key, self.integ, keys.integ_key)
        except ValueError as exc:
            raise EspUnsupported(f"SPI {keys.spi:08x}: {exc}") from None


@dataclass(frozen=True, slots=True)
class EspKeys:
    """One direction of an ESP SA: its SPI and keys (an AEAD key includes its salt, as
    derived: RFC 4106 §8.1, RFC 7634 §2)."""

    spi: int
    encr_key: bytes
    integ_key: bytes = b""

    def __repr__(self) -> str:  # never log key material by accident
        return f"EspKeys(spi={self.spi:08x}, <redacted>)"


@dataclass(frozen=True, slots=True)
class Opened:
    """A verified ESP packet: its 64-bit sequence number, Next Header and payload."""

    spi: int
    seq: int
    next_header: int
    payload: bytes


def spi_of(packet: bytes) -> int:
    """The SPI of an ESP packet (to choose the receiver); EspTruncated if there is none."""
    if len(packet) < ESP_HEADER.size:
        raise EspTruncated(f"{len(packet)} octets: no ESP header")
    return int.from_bytes(packet[:4], "big")


def _aad(transform: EspTransform, spi: int, seq: int, aead: bool) -> tuple[bytes, bytes]:
    """(AAD, ICV suffix) for a sequence number (RFC 4303 §2.2.1, RFC 4106 §5)."""
    low = seq & _U32
    if not transform.esn:
        return ESP_HEADER.pack(spi, low), b""
    high = (seq >> 32).to_bytes(4, "big")
    if aead:
        return spi.to_bytes(4, "big") + high + low.to_bytes(4, "big"), b""
    return ESP_HEADER.pack(spi, low), high


class _Direction:
    """One direction of an ESP SA: its algorithms, keys and prepared crypter."""

    __slots__ = ("_aead", "_align", "_crypter", "_iv_size", "keys", "transform")

    def __init__(self, transform: EspTransform, keys: EspKeys) -> None:
        self.transform = transform
        self.keys = keys
        self._crypter = transform.crypter(keys)
        self._aead = transform.encr.is_aead
        self._align = transform.align
        self._iv_size = transform.encr.iv_size


class EspSender(_Direction):
    """The outbound direction of an ESP SA: numbers, pads, encrypts (RFC 4303 §3.1-§3.3)."""

    __slots__ = ("_iv_mask", "_random", "seq")

    def __init__(self, transform: EspTransform, keys: EspKeys, *, seq: int = 0,
                 iv_mask: int | None = None,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        super().__init__(transform, keys)
        self.seq = seq  # the last sequence number used (0: none yet)
        self._iv_mask = secrets.randbits(64) if iv_mask is None else iv_mask
        self._random = random

    @property
    def limit(self) -> int:
        return _U64 if self.transform.esn else _U32

    def seal(self, payload: bytes, next_header: int) -> bytes:
        """The ESP packet carrying `payload` (whose protocol is `next_header`)."""
        seq = self.seq + 1
        if seq > self.limit:
            raise EspSequenceExhausted(f"SPI {self.keys.spi:08x}: sequence number {seq - 1} "
                                       "used up; the SA must be rekeyed (RFC 4303 §3.3.3)")
        pad = -(len(payload) + 2) % self._align
        plain = payload + bytes(range(1, pad + 1)) + bytes((pad, next_header))
        if self._iv_size == 0:
            iv = b""
        elif self.transform.encr_id in _COUNTER_IV:
            iv = (seq ^ self._iv_mask).to_bytes(8, "big")
        else:
            iv = self._random(self._iv_size)
        aad, suffix = _aad(self.transform, self.keys.spi, seq, self._aead)
        sealed = self._crypter.seal(aad, iv, plain, suffix)
        self.seq = seq
        return ESP_HEADER.pack(self.keys.spi, seq & _U32) + iv + sealed


class ReplayWindow:
    """RFC 4303 §3.4.3 / Appendix A: the highest sequence number accepted (`top`) and a
    bitmap of the `size` numbers up to it; bit i stands for top - i."""

    __slots__ = ("bitmap", "esn", "size", "top")

    def __init__(self, size: int = DEFAULT_REPLAY_WINDOW, *, esn: bool = False) -> None:
        if not 1 <= size <= MAX_REPLAY_WINDOW:
            raise ValueError(f"replay window {size} is not in 1..{MAX_REPLAY_WINDOW}")
        self.size = size
        self.esn = esn
        self.top = 0
        self.bitmap = 0

    def sequence(self, low: int) -> int:
        """The full sequence number of a received low-order 32 bits (without ESN: `low`);
        with ESN the high bits are inferred from the window (RFC 4303 Appendix A2.2).
        -1 when the number would lie before the first one (a replay)."""
        if not self.esn:
            return low
        w, t_low, t_high = self.size, self.top & _U32, self.top >> 32
        if t_low >= w - 1:  # case A: the window lies within one 2^32 subspace
            high = t_high if low >= t_low - w + 1 else t_high + 1
        else:  # case B: it spans two subspaces
            high = t_high - 1 if low >= (t_low - w + 1) & _U32 else t_high
        if not 0 <= high <= _U32:
            return -1
        return high << 32 | low

    def check(self, seq: int) -> None:
        """EspReplay unless `seq` is new and not left of the window."""
        if seq <= 0:
            raise EspReplay("sequence number 0 (never sent)" if seq == 0 else
                            "sequence number before the first one")
        if seq > self.top:
            return
        behind = self.top - seq
        if behind >= self.size:
            raise EspReplay(f"sequence number {seq} is left of the anti-replay window "
                            f"({self.top - self.size + 1}..{self.top})")
        if self.bitmap >> behind & 1:
            raise EspReplay(f"sequence number {seq} was received before")

    def accept(self, seq: int) -> None:
        """Mark `seq` received (after its ICV verified); checks again first, so two copies
        of one packet verified side by side cannot both be accepted."""
        self.check(seq)
        if seq > self.top:
            shift = seq - self.top
            self.bitmap = (self.bitmap << shift | 1) & ((1 << self.size) - 1) \
                if shift < self.size else 1
            self.top = seq
        else:
            self.bitmap |= 1 << (self.top - seq)


class EspReceiver(_Direction):
    """The inbound direction of an ESP SA: replay check, ICV, decryption, padding
    (RFC 4303 §3.4)."""

    __slots__ = ("_min", "window")

    def __init__(self, transform: EspTransform, keys: EspKeys, *,
                 window: int = DEFAULT_REPLAY_WINDOW) -> None:
        super().__init__(transform, keys)
        self.window = ReplayWindow(window, esn=transform.esn)
        integ = transform.integ
        icv = integ.icv_size if integ is not None else transform.encr.icv_size
        self._min = ESP_HEADER.size + self._iv_size + self._align + icv

    def open(self, packet: bytes, *, commit: bool = True) -> Opened:
        """Verify and decrypt `packet`. With `commit=False` the window is not advanced: the
        caller calls `commit(opened)` once it has decided to act on the packet."""
        if len(packet) < self._min:
            raise EspTruncated(f"{len(packet)} octets: an ESP packet of SPI "
                               f"{self.keys.spi:08x} has at least {self._min}")
        spi, low = ESP_HEADER.unpack_from(packet)
        if spi != self.keys.spi:
            raise EspUnknownSpi(f"SPI {spi:08x} is not this SA's ({self.keys.spi:08x})")
        seq = self.window.sequence(low)
        self.window.check(seq)
        iv_end = ESP_HEADER.size + self._iv_size
        aad, suffix = _aad(self.transform, spi, seq, self._aead)
        try:
            plain = self._crypter.open(aad, packet[ESP_HEADER.size:iv_end], packet[iv_end:],
                                       suffix)
        except IntegrityError as exc:
            raise EspIntegrityError(f"SPI {spi:08x} sequence number {seq}: {exc}") from None
        if len(plain) < 2 or len(plain) % 4:
            raise EspPaddingError(f"SPI {spi:08x}: {len(plain)} octets of plaintext")
        pad, next_header = plain[-2], plain[-1]
        if pad + 2 > len(plain):
            raise EspPaddingError(f"SPI {spi:08x}: Pad Length {pad} beyond the "
                                  f"{len(plain)}-octet plaintext")
        end = len(plain) - 2 - pad
        if plain[end:-2] != bytes(range(1, pad + 1)):
            raise EspPaddingError(f"SPI {spi:08x}: padding is not 1, 2, 3, ... (RFC 4303 "
                                  "§2.4)")
        opened = Opened(spi, seq, next_header, plain[:end])
        if commit:
            self.commit(opened)
        return opened

    def commit(self, opened: Opened) -> None:
        """Advance the window past `opened` (EspReplay if that number was taken meanwhile)."""
        self.window.accept(opened.seq)
