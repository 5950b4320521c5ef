"""Proposal selection and checking (RFC 7296 §2.7, §3.3)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ikev2.config.model import ProposalSpec, TransformSpec
from ikev2.crypto.proposals import suite_name
from ikev2.errors import InvalidSyntax, NoProposalChosen
from ikev2.protocol.enums import EncrId, IntegId, ProtocolId, TransformType
from ikev2.protocol.payloads import Proposal, Transform

AEAD = frozenset(
    {
        EncrId.AES_GCM_8, EncrId.AES_GCM_12, EncrId.AES_GCM_16, EncrId.AES_CCM_8,
        EncrId.AES_CCM_12, EncrId.AES_CCM_16, EncrId.CHACHA20_POLY1305,
    }
)
KNOWN_TYPES = frozenset(int(t) for t in TransformType)
_T_ENCR, _T_PRF, _T_INTEG, _T_DH, _T_ESN = 1, 2, 3, 4, 5


@dataclass(frozen=True, slots=True)
class Selected:
    """A chosen proposal: its number and SPI as offered, one transform per type."""

    num: int
    spi: bytes
    transforms: tuple[TransformSpec, ...]

    def get(self, ttype: int) -> TransformSpec | None:
        for t in self.transforms:
            if t[0] == ttype:
                return t
        return None

    def proposal(self, protocol: int, spi: bytes) -> Proposal:
        return Proposal(
            self.num, protocol, spi, tuple(Transform(t, i, k) for t, i, k in self.transforms)
        )


def to_proposals(
    specs: tuple[ProposalSpec, ...], protocol: int, spi: bytes = b""
) -> tuple[Proposal, ...]:
    """Our configured proposals as SA payload content, numbered from 1 (7296-10)."""
    return tuple(
        Proposal(n, protocol, spi, tuple(Transform(t, i, k) for t, i, k in spec))
        for n, spec in enumerate(specs, 1)
    )


def _is_aead(transforms: tuple[TransformSpec, ...] | tuple[Transform, ...]) -> bool:
    for t in transforms:
        ttype, tid = (t.type, t.id) if isinstance(t, Transform) else (t[0], t[1])
        if ttype == _T_ENCR and tid in AEAD:
            return True
    return False


def _acceptable(p: Proposal, protocol: int) -> bool:
    """Unknown transform types make a proposal unacceptable; unknown attributes a transform
    (7296-12) — handled by the match since such a transform never equals ours."""
    if p.protocol != protocol:
        return False
    return all(t.type in KNOWN_TYPES for t in p.transforms)


def _match(
    spec: ProposalSpec, p: Proposal, protocol: int, prefer_group: int
) -> tuple[TransformSpec, ...] | None:
    offered: dict[int, list[Transform]] = {}
    for t in p.transforms:
        if not t.attrs:
            offered.setdefault(t.type, []).append(t)
        else:
            offered.setdefault(t.type, [])
    mine: dict[int, list[TransformSpec]] = {}
    for ts in spec:
        mine.setdefault(ts[0], []).append(ts)
    chosen: list[TransformSpec] = []
    for ttype, candidates in mine.items():
        theirs = offered.get(ttype)
        if not theirs:
            if ttype == _T_ESN and any(c[1] == 0 for c in candidates):
                continue  # peer omitted ESN: only "no ESN" is possible
            if ttype == _T_INTEG and all(c[1] == IntegId.NONE for c in candidates):
                continue
            return None
        pick = None
        if ttype == _T_DH and prefer_group:
            for c in candidates:
                if c[1] == prefer_group and any(o.id == prefer_group for o in theirs):
                    pick = c
                    break
        if pick is None:
            for c in candidates:
                if any(o.id == c[1] and o.key_length == c[2] for o in theirs):
                    pick = c
                    break
        if pick is None:
            return None
        if not (ttype == _T_INTEG and pick[1] == IntegId.NONE):
            chosen.append(pick)
    for ttype, theirs in offered.items():
        if ttype in mine:
            continue
        # a type we don't configure: fine only if it's INTEG NONE (AEAD) or DH NONE in ESP
        if ttype == _T_INTEG and all(o.id == IntegId.NONE for o in theirs):
            continue
        if ttype == _T_DH and all(o.id == 0 for o in theirs):
            continue
        return None
    if protocol == ProtocolId.IKE:
        types = {c[0] for c in chosen}
        need = {_T_ENCR, _T_PRF, _T_DH} | (set() if _is_aead(tuple(chosen)) else {_T_INTEG})
        if not need <= types:
            return None
    chosen.sort(key=lambda c: c[0])
    return tuple(chosen)


def select(
    offered: tuple[Proposal, ...],
    ours: tuple[ProposalSpec, ...],
    protocol: int,
    prefer_group: int = 0,
) -> Selected:
    """Responder choice: our preference order first, then the peer's (RFC 7296 §2.7).
    `prefer_group` = the KEi group, chosen when acceptable so no INVALID_KE round trip."""
    if prefer_group:
        for spec in ours:
            for p in offered:
                if _acceptable(p, protocol):
                    m = _match(spec, p, protocol, prefer_group)
                    if m is not None and any(
                        t[0] == _T_DH and t[1] == prefer_group for t in m
                    ):
                        return Selected(p.num, p.spi, m)
    for spec in ours:
        for p in offered:
            if _acceptable(p, protocol):
                m = _match(spec, p, protocol, 0)
                if m is not None:
                    return Selected(p.num, p.spi, m)
    raise NoProposalChosen("no acceptable proposal: " + describe(offered))


def check_choice(
    answer: tuple[Proposal, ...], offered: tuple[Proposal, ...], protocol: int
) -> Selected:
    """Initiator check of the responder's SA (7296-10, 7296-50): one proposal, one of ours,
    one transform per type, each one we offered in that proposal."""
    if len(answer) != 1:
        raise InvalidSyntax(f"responder returned {len(answer)} proposals, expected 1")
    p = answer[0]
    if p.protocol != protocol:
        raise NoProposalChosen(f"responder chose protocol {p.protocol}, we offered {protocol}")
    mine = next((o for o in offered if o.num == p.num), None)
    if mine is None:
        raise NoProposalChosen(f"responder chose proposal #{p.num} which we did not offer")
    seen: set[int] = set()
    out: list[TransformSpec] = []
    for t in p.transforms:
        if t.type in seen:
            raise NoProposalChosen(f"responder chose two transforms of type {t.type}")
        seen.add(t.type)
        if not any(o.type == t.type and o.id == t.id and o.key_length == t.key_length
                   for o in mine.transforms):
            raise NoProposalChosen(f"responder chose transform {t.type}/{t.id} we did not offer")
        if not (t.type == _T_INTEG and t.id == IntegId.NONE):
            out.append((t.type, t.id, t.key_length))
    for ttype in {o.type for o in mine.transforms}:
        if ttype not in seen and ttype not in (_T_INTEG, _T_ESN, _T_DH):
            raise NoProposalChosen(f"responder omitted transform type {ttype}")
    out.sort(key=lambda c: c[0])
    return Selected(p.num, p.spi, tuple(out))


def describe(offered: tuple[Proposal, ...]) -> str:
    return "; ".join(
        f"#{p.num}:" + ",".join(f"{t.type}/{t.id}" + (f"/{t.key_length}" if t.key_length else "")
                                for t in p.transforms)
        for p in offered
    )


@lru_cache(maxsize=1024)
def suite_of(transforms: tuple[TransformSpec, ...]) -> str:
    """The strongSwan-syntax name of a negotiated transform set, e.g. 'aes128gcm16-x25519'."""
    return suite_name(transforms)
