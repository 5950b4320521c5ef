"""Encryption transforms (type 1): sizes and capabilities (RFC 7296 §3.3.2, RFC 5282, RFC 7634)."""

from __future__ import annotations

from dataclasses import dataclass

from ikev2.protocol.enums import EncrId

__all__ = ["Encr", "UnsupportedTransform", "get_encr", "supported_encrs"]


class UnsupportedTransform(ValueError):
    """A transform ID / key length this build does not implement (-> NO_PROPOSAL_CHOSEN)."""


@dataclass(frozen=True, slots=True)
class Encr:
    """Sizes for one ENCR transform; `key_size` is KEYMAT octets including any salt/nonce."""

    id: int
    key_bits: int | None
    name: str
    key_size: int
    salt_size: int
    iv_size: int
    block_size: int
    icv_size: int
    is_aead: bool
    ike: bool  # allowed to protect the IKE SA (NULL is ESP-only, RFC 7296 §3.3.2)


# id -> (name stem, allowed key bits, salt, iv, block, icv, aead, ike)
_TABLE: dict[int, tuple[str, tuple[int, ...], int, int, int, int, bool, bool]] = {
    # RFC 3602 / RFC 7296 §3.14: CBC, IV = block = 16, key length attribute required
    EncrId.AES_CBC: ("aes{}", (128, 192, 256), 0, 16, 16, 0, False, True),
    # RFC 3686 §5.1 / RFC 5930 §2: 4-octet nonce from KEYMAT, 8-octet IV, stream (block 1)
    EncrId.AES_CTR: ("aes{}ctr", (128, 192, 256), 4, 8, 1, 0, False, True),
    # RFC 4309 §7.1 / RFC 5282 §4: 3-octet salt, 8-octet IV
    EncrId.AES_CCM_8: ("aes{}ccm8", (128, 192, 256), 3, 8, 1, 8, True, True),
    EncrId.AES_CCM_12: ("aes{}ccm12", (128, 192, 256), 3, 8, 1, 12, True, True),
    EncrId.AES_CCM_16: ("aes{}ccm16", (128, 192, 256), 3, 8, 1, 16, True, True),
    # RFC 4106 §8.1 / RFC 5282 §7.1: 4-octet salt, 8-octet IV
    EncrId.AES_GCM_8: ("aes{}gcm8", (128, 192, 256), 4, 8, 1, 8, True, True),
    EncrId.AES_GCM_12: ("aes{}gcm12", (128, 192, 256), 4, 8, 1, 12, True, True),
    EncrId.AES_GCM_16: ("aes{}gcm16", (128, 192, 256), 4, 8, 1, 16, True, True),
    # RFC 7634 §2, §4: 32-octet key + 4-octet salt, no Key Length attribute
    EncrId.CHACHA20_POLY1305: ("chacha20poly1305", (256,), 4, 8, 1, 16, True, True),
    # RFC 2410: ESP only
    EncrId.NULL: ("null", (0,), 0, 0, 1, 0, False, False),
}

_FIXED_KEY = frozenset({EncrId.CHACHA20_POLY1305, EncrId.NULL})


def _build(encr_id: int, key_bits: int | None) -> Encr:
    """Validate (id, key length) and compute the sizes (RFC 7296 §3.3.5 key length rules)."""
    try:
        stem, allowed, salt, iv, block, icv, aead, ike = _TABLE[encr_id]
    except KeyError:
        raise UnsupportedTransform(f"unsupported encryption transform ID {encr_id}") from None
    name_id = _name(encr_id)
    if encr_id in _FIXED_KEY:
        # RFC 7634 §2: no Key Length attribute; accept an explicit 256 from lax peers
        if key_bits not in (None, allowed[0]):
            raise UnsupportedTransform(f"{name_id} takes no key length, got {key_bits}")
        bits = allowed[0]
        stored: int | None = None
    else:
        if key_bits is None:
            raise UnsupportedTransform(f"{name_id} requires a Key Length attribute")
        if key_bits not in allowed:
            raise UnsupportedTransform(
                f"{name_id} does not support {key_bits}-bit keys (valid: {allowed})"
            )
        bits = key_bits
        stored = key_bits
    return Encr(
        id=encr_id,
        key_bits=stored,
        name=stem.format(bits),
        key_size=bits // 8 + salt,
        salt_size=salt,
        iv_size=iv,
        block_size=block,
        icv_size=icv,
        is_aead=aead,
        ike=ike,
    )


def _name(encr_id: int) -> str:
    """IANA name of an ENCR ID for messages (RFC 7296 §3.3.2)."""
    try:
        return EncrId(encr_id).name
    except ValueError:
        return str(encr_id)


_CACHE: dict[tuple[int, int | None], Encr] = {}


def get_encr(encr_id: int, key_bits: int | None) -> Encr:
    """The ENCR transform for (ID, Key Length); UnsupportedTransform (a ValueError) if not
    implemented (RFC 7296 §3.3.2, §3.3.5)."""
    key = (encr_id, key_bits)
    encr = _CACHE.get(key)
    if encr is None:
        encr = _CACHE[key] = _build(encr_id, key_bits)
    return encr


def supported_encrs() -> tuple[tuple[int, int | None], ...]:
    """(ID, key bits) pairs this build implements (RFC 8247 §3.1, RFC 8221 §5)."""
    out: list[tuple[int, int | None]] = []
    for encr_id, row in _TABLE.items():
        if encr_id in _FIXED_KEY:
            out.append((encr_id, None))
        else:
            out.extend((encr_id, bits) for bits in row[1])
    return tuple(out)
