"""The Encrypted payload SK (RFC 7296 §3.14, RFC 5282 §5 for AEAD) and its fragments
SKF (RFC 7383 §2.5).

The cipher is a duck-typed crypter from the crypto layer:

    iv_size, block_size (padding alignment, 1 = none), icv_size: int
    seal(aad, iv, plaintext) -> ciphertext || ICV
    open(aad, iv, ciphertext || ICV) -> plaintext      (raises IntegrityError)

with aad = IKE header (final Length) | unprotected payloads | SK generic header (for SKF
also Fragment Number and Total Fragments). A non-AEAD crypter MACs aad | iv | ciphertext
and must check the ICV before decrypting (7296-22).

Error policy of the receive side: anything wrong *before* the ICV verified (outer chain,
SK missing, SK too short or misaligned, bad ICV) raises DropMessage (IntegrityError for
the cipher checks): the message is not authenticated, so it gets no answer. Anything
wrong in the authenticated plaintext raises InvalidSyntax / UnsupportedCriticalPayload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ikev2.errors import DropMessage, IkeError, IntegrityError, InvalidSyntax
from ikev2.protocol.codec import GENERIC, _encode, _walk, encode_payloads
from ikev2.protocol.enums import PayloadType
from ikev2.protocol.header import HEADER, HEADER_LEN, IKEV2_VERSION, Header
from ikev2.protocol.payloads import SK, SKF, Payload

__all__ = [
    "Crypter",
    "protect",
    "protect_fragments",
    "reassemble",
    "unprotect",
    "unprotect_fragment",
]

_gen_pack = GENERIC.pack
_T_SK = PayloadType.SK.value
_T_SKF = PayloadType.SKF.value
_SKF_HDR = 8  # generic header + Fragment Number(2) + Total Fragments(2)


class Crypter(Protocol):
    """What sk.py needs of the crypto layer's negotiated IKE cipher (RFC 7296 §3.14)."""

    iv_size: int
    block_size: int
    icv_size: int

    def seal(self, aad: bytes, iv: bytes, plaintext: bytes) -> bytes: ...

    def open(self, aad: bytes, iv: bytes, ciphertext_and_icv: bytes) -> bytes: ...


def _padded(inner: bytes, block_size: int, pad_len: int) -> bytes:
    """inner | Padding (zeros) | Pad Length, aligned to block_size (RFC 7296 §3.14)."""
    padding = (-(len(inner) + 1)) % block_size + pad_len * block_size
    if padding > 255:
        raise ValueError(f"SK padding of {padding} octets exceeds 255")
    return b"".join((inner, bytes(padding), bytes((padding,))))


def _check_spis(spi_i: bytes, spi_r: bytes) -> None:
    if len(spi_i) != 8 or len(spi_r) != 8:
        raise ValueError("IKE SPIs must be 8 octets each")


def protect(
    spi_i: bytes,
    spi_r: bytes,
    exchange: int,
    flags: int,
    message_id: int,
    payloads: Sequence[Payload],
    crypter: Crypter,
    iv: bytes,
    pad_len: int = 0,
    *,
    unprotected: Sequence[Payload] = (),
) -> bytes:
    """Build HDR, [unprotected payloads,] SK{payloads} (RFC 7296 §3.14, RFC 5282 §5).

    pad_len: extra blocks of padding beyond the minimum. iv: crypter.iv_size octets from
    the caller's RNG.
    """
    _check_spis(spi_i, spi_r)
    if len(iv) != crypter.iv_size:
        raise ValueError(f"IV of {len(iv)} octets, the cipher needs {crypter.iv_size}")
    inner_first, inner = encode_payloads(payloads)
    plaintext = _padded(inner, crypter.block_size, pad_len)
    icv_size = crypter.icv_size
    sk_len = 4 + len(iv) + len(plaintext) + icv_size
    if sk_len > 0xFFFF:
        raise ValueError(f"SK payload of {sk_len} octets exceeds 65535: fragment it")
    first, pre = _encode(unprotected, _T_SK)
    aad = b"".join(
        (
            HEADER.pack(
                spi_i, spi_r, first, IKEV2_VERSION, exchange, flags, message_id,
                HEADER_LEN + len(pre) + sk_len,
            ),
            pre,
            _gen_pack(inner_first, 0, sk_len),
        )
    )
    sealed = crypter.seal(aad, iv, plaintext)
    if len(sealed) != len(plaintext) + icv_size:
        raise ValueError("crypter.seal output length != plaintext + ICV")
    return b"".join((aad, iv, sealed))


def _open(
    buf: bytes, body_off: int, body: bytes, crypter: Crypter, what: str
) -> bytes:
    """Verify and decrypt IV | ciphertext | ICV, strip padding (RFC 7296 §3.14)."""
    iv_size = crypter.iv_size
    icv_size = crypter.icv_size
    enc_len = len(body) - iv_size - icv_size
    if enc_len < 1:
        raise IntegrityError(
            f"{what}: {len(body)} octets cannot hold IV ({iv_size}), Pad Length and ICV "
            f"({icv_size})"
        )
    if enc_len % crypter.block_size:
        raise IntegrityError(
            f"{what}: {enc_len} encrypted octets are not a multiple of the block size "
            f"{crypter.block_size}"
        )
    plaintext = crypter.open(buf[:body_off], body[:iv_size], body[iv_size:])
    n = len(plaintext)
    if n == 0:
        raise InvalidSyntax(f"{what}: empty plaintext")
    pad = plaintext[-1]
    if pad + 1 > n:
        raise InvalidSyntax(f"{what}: Pad Length {pad} exceeds the {n}-octet plaintext")
    return plaintext[: n - 1 - pad]


def _outer(buf: bytes, header: Header) -> list[Payload]:
    try:
        return _walk(buf, HEADER_LEN, header.next_payload)
    except IkeError as e:
        raise DropMessage(f"unauthenticated part of a protected message: {e}") from e


def unprotect(data: bytes | memoryview, header: Header, crypter: Crypter) -> list[Payload]:
    """Verify, decrypt and parse HDR, [payloads,] SK{...} (RFC 7296 §3.14, 7296-21/22).

    Returns the payloads before SK (normally none), then the inner payloads.
    """
    buf = data if type(data) is bytes else bytes(data)
    outer = _outer(buf, header)
    last = outer[-1] if outer else None
    if type(last) is not SK:
        if type(last) is SKF:
            raise DropMessage("message carries SKF: use unprotect_fragment")
        raise DropMessage("protected message has no SK payload")
    body = last.data
    plain = _open(buf, len(buf) - len(body), body, crypter, "SK")
    inner = _walk(plain, 0, last.next_type)
    if len(outer) == 1:
        return inner
    return outer[:-1] + inner


def protect_fragments(
    spi_i: bytes,
    spi_r: bytes,
    exchange: int,
    flags: int,
    message_id: int,
    payloads: Sequence[Payload],
    crypter: Crypter,
    ivs: Sequence[bytes] | Callable[[], bytes],
    max_size: int,
) -> list[bytes]:
    """Build the SKF fragments of HDR, SK{payloads} (RFC 7383 §2.5, §2.5.3).

    max_size: the largest IKE message (header included; the caller has taken off the
    IP/UDP headers and any non-ESP marker). ivs: one IV per fragment, or a callable
    returning the next IV. Fragment 1's SKF header carries the first inner payload type.
    """
    _check_spis(spi_i, spi_r)
    inner_first, inner = encode_payloads(payloads)
    iv_size = crypter.iv_size
    icv_size = crypter.icv_size
    bs = crypter.block_size
    avail = max_size - HEADER_LEN - _SKF_HDR - iv_size - icv_size
    chunk = avail - avail % bs - 1
    if chunk < 1:
        raise ValueError(f"max_size {max_size} leaves no room for fragment content")
    pieces = [inner[i : i + chunk] for i in range(0, len(inner), chunk)] or [b""]
    total = len(pieces)
    if total > 0xFFFF:
        raise ValueError(f"{total} fragments exceed the 65535 limit")
    next_iv = ivs if callable(ivs) else iter(ivs).__next__
    out = []
    for num, piece in enumerate(pieces, 1):
        iv = next_iv()
        if len(iv) != iv_size:
            raise ValueError(f"IV of {len(iv)} octets, the cipher needs {iv_size}")
        plaintext = _padded(piece, bs, 0)
        skf_len = _SKF_HDR + iv_size + len(plaintext) + icv_size
        aad = b"".join(
            (
                HEADER.pack(
                    spi_i, spi_r, _T_SKF, IKEV2_VERSION, exchange, flags, message_id,
                    HEADER_LEN + skf_len,
                ),
                _gen_pack(inner_first if num == 1 else 0, 0, skf_len),
                num.to_bytes(2, "big"),
                total.to_bytes(2, "big"),
            )
        )
        sealed = crypter.seal(aad, iv, plaintext)
        if len(sealed) != len(plaintext) + icv_size:
            raise ValueError("crypter.seal output length != plaintext + ICV")
        out.append(b"".join((aad, iv, sealed)))
    return out


def unprotect_fragment(data: bytes | memoryview, header: Header, crypter: Crypter) -> SKF:
    """Verify and decrypt one SKF message (RFC 7383 §2.6: check the ICV before storing).

    Returns the SKF with `data` = its plaintext content (padding removed). Unprotected
    payloads before SKF (allowed only in fragment 1, §2.5.3) are not returned.
    """
    buf = data if type(data) is bytes else bytes(data)
    outer = _outer(buf, header)
    last = outer[-1] if outer else None
    if type(last) is not SKF:
        raise DropMessage("message carries no SKF payload")
    body = last.data
    content = _open(buf, len(buf) - len(body), body, crypter, "SKF")
    return SKF(last.next_type, last.fragment_number, last.total_fragments, content)


def reassemble(fragments: Sequence[SKF]) -> list[Payload]:
    """Join decrypted fragments in Fragment Number order and parse them (RFC 7383 §2.6).

    All Total Fragments must agree and numbers 1..total be present; a repeated number
    with identical content is a retransmission and ignored.
    """
    if not fragments:
        raise InvalidSyntax("SKF reassembly: no fragments")
    total = fragments[0].total_fragments
    by_num: dict[int, SKF] = {}
    for f in fragments:
        if f.total_fragments != total:
            raise InvalidSyntax(
                f"SKF reassembly: Total Fragments {f.total_fragments} != {total}"
            )
        seen = by_num.get(f.fragment_number)
        if seen is not None and seen != f:
            raise InvalidSyntax(
                f"SKF reassembly: two different fragments numbered {f.fragment_number}"
            )
        by_num[f.fragment_number] = f
    if len(by_num) != total or any(k < 1 or k > total for k in by_num):
        missing = sorted(set(range(1, total + 1)) - set(by_num))
        raise InvalidSyntax(f"SKF reassembly: fragments {missing} of {total} missing")
    content = b"".join([by_num[k].data for k in range(1, total + 1)])
    return _walk(content, 0, by_num[1].next_type)
