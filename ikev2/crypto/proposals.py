"""strongSwan-style proposal strings (`aes128gcm16-prfsha256-x25519`) to transform lists
and back (RFC 7296 §3.3, §3.3.3; keywords are IANA transform IDs under familiar names)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ikev2.crypto.dh import supported_groups
from ikev2.crypto.encr import get_encr
from ikev2.protocol.enums import (
    DhGroup,
    EncrId,
    EsnId,
    IntegId,
    PrfId,
    ProtocolId,
    TransformType,
)

__all__ = [
    "TransformInfo",
    "TransformTriple",
    "default_proposals",
    "parse_proposal",
    "parse_proposals",
    "suite_name",
    "supported_transforms",
]

TransformTriple = tuple[int, int, int | None]
"""(transform type, transform ID, key length in bits or None)."""

_E, _P, _I, _D, _S = (
    TransformType.ENCR,
    TransformType.PRF,
    TransformType.INTEG,
    TransformType.DH,
    TransformType.ESN,
)


@dataclass(frozen=True, slots=True)
class TransformInfo:
    """One supported transform, its keyword and where it may be used."""

    name: str
    type: int
    id: int
    key_bits: int | None
    ike: bool
    esp: bool
    aliases: tuple[str, ...] = ()


def _build_table() -> list[TransformInfo]:
    """Keyword table from IANA IDs (RFC 7296 §3.3.2, RFC 8247 §3)."""
    rows: list[TransformInfo] = []
    for bits in (128, 192, 256):
        a = f"aes{bits}"
        rows.append(
            TransformInfo(a, _E, EncrId.AES_CBC, bits, True, True, ("aes",) if bits == 128 else ())
        )
        rows.append(TransformInfo(f"{a}ctr", _E, EncrId.AES_CTR, bits, True, True))
        for icv, eid, alias in ((8, EncrId.AES_GCM_8, 64), (12, EncrId.AES_GCM_12, 96)):
            rows.append(
                TransformInfo(f"{a}gcm{icv}", _E, eid, bits, True, True, (f"{a}gcm{alias}",))
            )
        rows.append(
            TransformInfo(
                f"{a}gcm16", _E, EncrId.AES_GCM_16, bits, True, True, (f"{a}gcm128", f"{a}gcm")
            )
        )
        for icv, eid, alias in (
            (8, EncrId.AES_CCM_8, 64),
            (12, EncrId.AES_CCM_12, 96),
            (16, EncrId.AES_CCM_16, 128),
        ):
            rows.append(
                TransformInfo(f"{a}ccm{icv}", _E, eid, bits, True, True, (f"{a}ccm{alias}",))
            )
    rows.append(TransformInfo("chacha20poly1305", _E, EncrId.CHACHA20_POLY1305, None, True, True))
    rows.append(TransformInfo("null", _E, EncrId.NULL, None, False, True))
    integ = (
        ("sha1", IntegId.HMAC_SHA1_96, ("sha",)),
        ("sha256", IntegId.HMAC_SHA2_256_128, ("sha2_256",)),
        ("sha384", IntegId.HMAC_SHA2_384_192, ("sha2_384",)),
        ("sha512", IntegId.HMAC_SHA2_512_256, ("sha2_512",)),
        ("aesxcbc", IntegId.AES_XCBC_96, ()),
        ("aescmac", IntegId.AES_CMAC_96, ()),
    )
    rows.extend(TransformInfo(n, _I, i, None, True, True, al) for n, i, al in integ)
    prf = (
        ("prfsha1", PrfId.HMAC_SHA1),
        ("prfsha256", PrfId.HMAC_SHA2_256),
        ("prfsha384", PrfId.HMAC_SHA2_384),
        ("prfsha512", PrfId.HMAC_SHA2_512),
        ("prfaesxcbc", PrfId.AES128_XCBC),
        ("prfaescmac", PrfId.AES128_CMAC),
    )
    rows.extend(TransformInfo(n, _P, i, None, True, False) for n, i in prf)
    dh = (
        ("modp1024", DhGroup.MODP_1024, ()),
        ("modp1536", DhGroup.MODP_1536, ()),
        ("modp2048", DhGroup.MODP_2048, ()),
        ("modp3072", DhGroup.MODP_3072, ()),
        ("modp4096", DhGroup.MODP_4096, ()),
        ("modp6144", DhGroup.MODP_6144, ()),
        ("modp8192", DhGroup.MODP_8192, ()),
        ("ecp256", DhGroup.ECP_256, ()),
        ("ecp384", DhGroup.ECP_384, ()),
        ("ecp521", DhGroup.ECP_521, ()),
        ("x25519", DhGroup.CURVE25519, ("curve25519",)),
        ("x448", DhGroup.CURVE448, ("curve448",)),
    )
    groups = set(supported_groups())
    rows.extend(TransformInfo(n, _D, g, None, True, True, al) for n, g, al in dh if g in groups)
    rows.append(TransformInfo("esn", _S, EsnId.ESN, None, False, True))
    rows.append(TransformInfo("noesn", _S, EsnId.NO_ESN, None, False, True))
    for row in rows:  # every ENCR row must be implemented by encr.py
        if row.type == _E:
            get_encr(row.id, row.key_bits)
    return rows


_TABLE = _build_table()
_BY_NAME: dict[str, TransformInfo] = {}
for _row in _TABLE:
    for _n in (_row.name, *_row.aliases):
        _BY_NAME[_n] = _row
_BY_TRIPLE: dict[TransformTriple, TransformInfo] = {(r.type, r.id, r.key_bits): r for r in _TABLE}

# In IKE, an integrity keyword also proposes the matching PRF unless a prf* keyword is given.
_IMPLIED_PRF: dict[int, int] = {
    IntegId.HMAC_SHA1_96: PrfId.HMAC_SHA1,
    IntegId.HMAC_SHA2_256_128: PrfId.HMAC_SHA2_256,
    IntegId.HMAC_SHA2_384_192: PrfId.HMAC_SHA2_384,
    IntegId.HMAC_SHA2_512_256: PrfId.HMAC_SHA2_512,
    IntegId.AES_XCBC_96: PrfId.AES128_XCBC,
    IntegId.AES_CMAC_96: PrfId.AES128_CMAC,
}

_AEAD_IDS = frozenset(
    {
        EncrId.AES_GCM_8,
        EncrId.AES_GCM_12,
        EncrId.AES_GCM_16,
        EncrId.AES_CCM_8,
        EncrId.AES_CCM_12,
        EncrId.AES_CCM_16,
        EncrId.CHACHA20_POLY1305,
    }
)

_TYPE_ORDER = (_E, _P, _I, _D, _S)  # wire order used in RFC 7296 §3.3 examples
_DISPLAY_ORDER = (_E, _I, _P, _D, _S)  # how people write them: aes256-sha256-prfsha256-...

DEFAULT_IKE = (
    "aes128gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512"
    "-x25519-ecp256-ecp384-modp3072-modp2048",
    "aes128-aes256-sha256-sha384-sha512-x25519-ecp256-ecp384-modp3072-modp2048",
)
DEFAULT_ESP = ("aes128gcm16-aes256gcm16", "aes128-aes256-sha256-sha384-sha512")


def _valid_names(protocol: ProtocolId) -> str:
    """Keywords usable for `protocol`, for error messages (RFC 7296 §3.3.3)."""
    names = []
    for row in _TABLE:
        if _allowed(row, protocol):
            names.append(row.name)
    return ", ".join(names)


def _allowed(row: TransformInfo, protocol: ProtocolId) -> bool:
    """Whether a transform type/ID may appear for `protocol` (RFC 7296 §3.3.3)."""
    if protocol == ProtocolId.IKE:
        return row.ike
    if protocol == ProtocolId.AH:
        return row.type in (_I, _D, _S)
    return row.esp


def parse_proposal(text: str, protocol: ProtocolId) -> tuple[TransformTriple, ...]:
    """One proposal string -> (type, id, key bits) triples, types in RFC 7296 §3.3 order and
    user order within a type; checks the mandatory transform types (RFC 7296 §3.3.3)."""
    protocol = ProtocolId(protocol)
    spec = text.strip().lower()
    if spec == "default":
        raise ValueError("'default' expands to several proposals: use parse_proposals()")
    if not spec:
        raise ValueError("empty proposal")
    chosen: dict[int, list[TransformTriple]] = {t: [] for t in _TYPE_ORDER}
    for token in spec.split("-"):
        row = _BY_NAME.get(token)
        if row is None:
            raise ValueError(
                f"unknown algorithm {token!r} in {protocol.name} proposal {text!r}; "
                f"valid: {_valid_names(protocol)}"
            )
        if not _allowed(row, protocol):
            raise ValueError(
                f"{token!r} cannot be used in an {protocol.name} proposal ({text!r}); "
                f"valid: {_valid_names(protocol)}"
            )
        triple = (row.type, row.id, row.key_bits)
        if triple not in chosen[row.type]:
            chosen[row.type].append(triple)
    _complete(chosen, protocol, text)
    return tuple(t for typ in _TYPE_ORDER for t in chosen[typ])


def _complete(chosen: dict[int, list[TransformTriple]], protocol: ProtocolId, text: str) -> None:
    """Apply implied PRFs / default ESN and enforce RFC 7296 §3.3.3 (+ RFC 5282 §8)."""
    encrs, integs = chosen[_E], chosen[_I]
    aead = [t for t in encrs if t[1] in _AEAD_IDS]
    plain = [t for t in encrs if t[1] not in _AEAD_IDS]
    if protocol == ProtocolId.AH:
        if not integs:
            raise ValueError(f"AH proposal {text!r} needs an integrity algorithm")
    elif not encrs:
        raise ValueError(f"{protocol.name} proposal {text!r} needs an encryption algorithm")
    if aead and plain:
        raise ValueError(
            f"proposal {text!r} mixes AEAD and non-AEAD encryption; write them as two proposals"
        )
    if aead and integs:
        raise ValueError(
            f"proposal {text!r}: AEAD algorithms take no integrity algorithm (RFC 5282 §8)"
        )
    if plain and not integs:
        raise ValueError(f"proposal {text!r}: {_name(plain[0])} needs an integrity algorithm")
    if protocol == ProtocolId.IKE:
        if not chosen[_P]:
            for integ in integs:
                chosen[_P].append((_P, _IMPLIED_PRF[integ[1]], None))
        if not chosen[_P]:
            raise ValueError(f"IKE proposal {text!r} needs a PRF (e.g. prfsha256)")
        if not chosen[_D]:
            raise ValueError(f"IKE proposal {text!r} needs a key exchange group (e.g. x25519)")
    elif not chosen[_S]:
        chosen[_S].append((_S, EsnId.NO_ESN, None))


def parse_proposals(text: str, protocol: ProtocolId) -> tuple[tuple[TransformTriple, ...], ...]:
    """A comma/space separated list of proposals; `default` expands in place (RFC 7296 §3.3)."""
    out: list[tuple[TransformTriple, ...]] = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        if item.lower() == "default":
            out.extend(p for p in default_proposals(protocol) if p not in out)
        else:
            proposal = parse_proposal(item, protocol)
            if proposal not in out:
                out.append(proposal)
    if not out:
        raise ValueError("no proposals given")
    return tuple(out)


def default_proposals(protocol: ProtocolId) -> tuple[tuple[TransformTriple, ...], ...]:
    """Built-in proposals in RFC 8247 §3 / RFC 8221 §5-§6 spirit (REQUIREMENTS 8247-07)."""
    protocol = ProtocolId(protocol)
    if protocol == ProtocolId.IKE:
        texts = DEFAULT_IKE
    elif protocol == ProtocolId.ESP:
        texts = DEFAULT_ESP
    else:
        texts = ("sha256-sha384-sha512",)
    return tuple(parse_proposal(t, protocol) for t in texts)


def _triple(t: Any) -> TransformTriple:
    """A triple or payloads.Transform as (type, id, key bits) (RFC 7296 §3.3.2)."""
    if isinstance(t, tuple):
        return (t[0], t[1], t[2] if len(t) > 2 else None)
    return (t.type, t.id, getattr(t, "key_length", None))


def _name(t: TransformTriple) -> str:
    """Keyword for one transform, or a generic name (RFC 7296 §3.3.2)."""
    row = _BY_TRIPLE.get((t[0], t[1], t[2]))
    if row is not None:
        return row.name
    kind = {_E: "encr", _P: "prf", _I: "integ", _D: "dh", _S: "esn"}.get(t[0], f"type{t[0]}-")
    return f"{kind}{t[1]}" + (f"_{t[2]}" if t[2] else "")


def suite_name(transforms: Iterable[Any]) -> str:
    """Negotiated transforms (triples or payloads.Transform) -> `aes256-sha256-prfsha256-
    modp2048` for logs and the API; a lone NO_ESN is left out (RFC 7296 §3.3.2)."""
    triples = [_triple(t) for t in transforms]
    ordered = [t for typ in _DISPLAY_ORDER for t in triples if t[0] == typ]
    ordered += [t for t in triples if t[0] not in _DISPLAY_ORDER]
    esn = [t for t in ordered if t[0] == _S]
    if len(esn) == 1 and esn[0][1] == EsnId.NO_ESN:
        ordered.remove(esn[0])
    return "-".join(_name(t) for t in ordered)


def supported_transforms() -> tuple[TransformInfo, ...]:
    """Every transform keyword this build accepts (RFC 8247 §3, RFC 8221 §5-§6)."""
    return tuple(_TABLE)
