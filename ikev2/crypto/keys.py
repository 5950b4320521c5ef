"""IKE SA and Child SA key derivation (RFC 7296 §2.13, §2.14, §2.17, §2.18)."""

from __future__ import annotations

from dataclasses import dataclass

from ikev2.crypto.encr import Encr
from ikev2.crypto.integ import Integ
from ikev2.crypto.prf import Prf, prf_plus

__all__ = [
    "ChildKeys",
    "IkeKeys",
    "compute_skeyseed",
    "derive_child_keys",
    "derive_ike_keys",
    "derive_rekeyed_ike_keys",
]


@dataclass(frozen=True, slots=True)
class IkeKeys:
    """{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} (RFC 7296 §2.14)."""

    sk_d: bytes
    sk_ai: bytes
    sk_ar: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_pi: bytes
    sk_pr: bytes

    def __repr__(self) -> str:  # never log key material by accident
        return "IkeKeys(<redacted>)"


@dataclass(frozen=True, slots=True)
class ChildKeys:
    """Child SA KEYMAT split; _i = initiator->responder SA, _r = responder->initiator."""

    encr_i: bytes
    integ_i: bytes
    encr_r: bytes
    integ_r: bytes

    def __repr__(self) -> str:
        return "ChildKeys(<redacted>)"


def compute_skeyseed(prf: Prf, ni: bytes, nr: bytes, shared: bytes) -> bytes:
    """SKEYSEED = prf(Ni | Nr, g^ir); fixed-key PRFs take Ni[:8] | Nr[:8] (RFC 7296 §2.14)."""
    key = ni[:8] + nr[:8] if prf.fixed_key else ni + nr
    return prf(key, shared)


def _split_ike(prf: Prf, skeyseed: bytes, seed: bytes, encr: Encr, integ: Integ | None) -> IkeKeys:
    """Take SK_* in order from prf+(SKEYSEED, seed) (RFC 7296 §2.14 and 7296-55 sizes)."""
    p = prf.key_size
    a = integ.key_size if integ is not None else 0
    e = encr.key_size
    km = prf_plus(prf, skeyseed, seed, 3 * p + 2 * a + 2 * e)
    i = p
    sk_ai, sk_ar = km[i : i + a], km[i + a : i + 2 * a]
    i += 2 * a
    sk_ei, sk_er = km[i : i + e], km[i + e : i + 2 * e]
    i += 2 * e
    return IkeKeys(km[:p], sk_ai, sk_ar, sk_ei, sk_er, km[i : i + p], km[i + p : i + 2 * p])


def derive_ike_keys(
    prf: Prf,
    encr: Encr,
    integ: Integ | None,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
    shared: bytes,
) -> IkeKeys:
    """Keys of a new IKE SA: prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 §2.14)."""
    skeyseed = compute_skeyseed(prf, ni, nr, shared)
    return _split_ike(prf, skeyseed, ni + nr + spi_i + spi_r, encr, integ)


def derive_rekeyed_ike_keys(
    old_prf: Prf,
    old_sk_d: bytes,
    new_prf: Prf,
    encr: Encr,
    integ: Integ | None,
    shared: bytes,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
) -> IkeKeys:
    """Rekeyed IKE SA: SKEYSEED = prf_old(SK_d old, g^ir | Ni | Nr); prf+ uses the NEW SA's
    PRF with the new SPIs (RFC 7296 §2.18)."""
    skeyseed = old_prf(old_sk_d, shared + ni + nr)
    return _split_ike(new_prf, skeyseed, ni + nr + spi_i + spi_r, encr, integ)


def derive_child_keys(
    prf: Prf,
    sk_d: bytes,
    ni: bytes,
    nr: bytes,
    encr: Encr,
    integ: Integ | None,
    shared: bytes | None = None,
) -> ChildKeys:
    """KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); initiator->responder keys first, each
    encryption then integrity (RFC 7296 §2.17)."""
    e = encr.key_size
    a = integ.key_size if integ is not None else 0
    seed = ni + nr if shared is None else shared + ni + nr
    km = prf_plus(prf, sk_d, seed, 2 * (e + a))
    return ChildKeys(km[:e], km[e : e + a], km[e + a : 2 * e + a], km[2 * e + a :])
