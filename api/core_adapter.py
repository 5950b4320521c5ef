"""The only module of the API that reads engine internals (ARCHITECTURE.md: the API reads
snapshots and sends commands). Each function says what the core should expose instead;
once it does, only this module changes.

- `ike_states`: the current (ike_id, state) of every IKE SA, so the cached SA list also
  sees SAs and state changes that raise no event (half-open SAs, REKEYING, DELETING).
  Wanted: `Engine.ike_states() -> dict[int, str]` (or a change counter per SA).
- `child_spec`: the kernel spec of one CHILD_SA, for `kernel.child_stats(spec)` (bytes and
  packets) and for its ESP keys (Wireshark export, `GET /child-sas/{id}/keys`).
- `child_outbound`: whether a CHILD_SA's outbound SA carries traffic yet (a rekey
  responder's new SA waits for the old one's delete, 7296-64).
  Wanted: the flag in `ChildSaInfo`.
  Wanted: `Engine.child_stats(ike_id, child_id) -> ChildSaStats` and
  `Engine.child_keys(ike_id, child_id) -> ChildSaSpec` (or a keys-only snapshot).
- `ike_keys`: SK_ei/SK_er/SK_ai/SK_ar of an IKE SA. The core does not keep them today
  (`ike_init.use_keys` builds the SK crypters and drops the keys), so this returns None
  unless the engine offers `Engine.ike_keys(ike_id)` returning an object with the
  attributes of `IkeKeyMaterial` below.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ikev2.kernel.base import ChildSaSpec, ChildSaStats


@dataclass(frozen=True, slots=True)
class IkeKeyMaterial:
    """What a Wireshark `ikev2_decryption_table` line needs (RFC 7296 §2.14)."""

    spi_i: bytes
    spi_r: bytes
    encr_id: int
    encr_key_bits: int | None
    integ_id: int  # 0 for AEAD
    sk_ei: bytes  # AEAD: key | salt, as derived
    sk_er: bytes
    sk_ai: bytes
    sk_ar: bytes


def ike_states(engine: Any) -> Iterator[tuple[int, str]]:
    """(ike_id, state value) of every IKE SA the engine holds, cheaply (no snapshots)."""
    for ike_id, sa in engine.by_id.items():
        yield ike_id, sa.state.value


def child_spec(engine: Any, ike_id: int, child_id: int) -> ChildSaSpec | None:
    sa = engine.by_id.get(ike_id)
    if sa is None:
        return None
    child = sa.children.get(child_id)
    return child.spec if child is not None else None


def child_outbound(engine: Any, ike_id: int, child_id: int) -> bool:
    sa = engine.by_id.get(ike_id)
    child = sa.children.get(child_id) if sa is not None else None
    return bool(child is not None and child.outbound)


def child_stats(engine: Any, ike_id: int, child_id: int) -> ChildSaStats | None:
    """Kernel counters of one CHILD_SA; None when unknown or the kernel cannot say."""
    spec = child_spec(engine, ike_id, child_id)
    if spec is None:
        return None
    stats = getattr(engine.kernel, "child_stats", None)
    if stats is None:
        return None
    try:
        return stats(spec)  # type: ignore[no-any-return]
    except Exception:  # a kernel refusal must not fail the API request
        return None


def ike_keys(engine: Any, ike_id: int) -> IkeKeyMaterial | None:
    getter = getattr(engine, "ike_keys", None)
    if getter is None:
        return None
    try:
        keys = getter(ike_id)
    except (KeyError, ValueError):
        return None
    if keys is None:
        return None
    return IkeKeyMaterial(
        keys.spi_i, keys.spi_r, keys.encr_id, keys.encr_key_bits, keys.integ_id,
        keys.sk_ei, keys.sk_er, keys.sk_ai, keys.sk_ar,
    )
