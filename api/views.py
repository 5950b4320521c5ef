"""JSON views of the core's snapshots (IkeSaInfo, ChildSaInfo), with strongSwan VICI
`list-sas` field names so scripts written for swanctl translate easily (docs/api.md).

Differences from VICI, on purpose: `uniqueid`/`reqid` and ports are numbers, SPIs are hex
strings without 0x (as VICI), times are absolute UNIX times (`established-at`, `rekey-at`,
`expire-at`, `install-at`) so a view can be cached, and `child-sas` is a list. A CHILD_SA
has its own `local-host`/`remote-host` (its outer addresses: the tunnel endpoints, or the
transport SA's addresses), which follow MOBIKE and K-bit moves unless the SA is bound to
other addresses than the IKE SA (RFC 4877 HoA transport SAs).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ikev2.core.events import ChildSaInfo, IkeSaInfo
from ikev2.protocol.enums import DhGroup, EncrId, EsnId, IntegId, PrfId, ProtocolId, TransformType

ToUnix = Callable[[float | None], float | None]
_ALG_ENUMS: dict[int, tuple[str, type]] = {
    TransformType.ENCR: ("encr-alg", EncrId),
    TransformType.INTEG: ("integ-alg", IntegId),
    TransformType.PRF: ("prf-alg", PrfId),
    TransformType.DH: ("dh-group", DhGroup),
}


@lru_cache(maxsize=256)
def suite_fields(suite: str, esp: bool) -> tuple[tuple[str, Any], ...]:
    """`aes128gcm16-prfsha256-x25519` → VICI-style algorithm fields (IANA names)."""
    out: dict[str, Any] = {"encr-alg": None, "encr-keysize": None, "integ-alg": None}
    if esp:
        out["dh-group"] = None
        out["esn"] = False
    else:
        out["prf-alg"] = None
        out["dh-group"] = None
    if suite:
        from ikev2.crypto.proposals import parse_proposal

        try:
            triples = parse_proposal(suite, ProtocolId.ESP if esp else ProtocolId.IKE)
        except ValueError:
            triples = ()
        for ttype, tid, bits in triples:
            if ttype == TransformType.ESN:
                out["esn"] = tid == EsnId.ESN
                continue
            field, enum = _ALG_ENUMS.get(ttype, (None, None))
            if field is None or field not in out:
                continue
            try:
                out[field] = enum(tid).name  # type: ignore[misc]
            except ValueError:
                out[field] = str(tid)
            if ttype == TransformType.ENCR:
                out["encr-keysize"] = bits
    return tuple(out.items())


def child_view(c: ChildSaInfo, ike_id: int, to_unix: ToUnix) -> dict[str, Any]:
    d: dict[str, Any] = {
        "uniqueid": c.child_id,
        "name": c.name,
        "ike-sa": ike_id,
        "reqid": c.reqid,
        "state": c.state,
        "mode": c.mode.upper(),
        "protocol": c.protocol.upper(),
        "encap": c.encap,
        "local-host": c.local,
        "remote-host": c.remote,
        "spi-in": f"{c.spi_in:08x}",
        "spi-out": f"{c.spi_out:08x}",
        "suite": c.suite,
    }
    d.update(suite_fields(c.suite, True))
    d["local-ts"] = list(c.local_ts)
    d["remote-ts"] = list(c.remote_ts)
    d["install-at"] = to_unix(c.installed_at)
    d["rekey-at"] = to_unix(c.rekey_at)
    d["expire-at"] = to_unix(c.expire_at)
    return d


def ike_view(sa: IkeSaInfo, to_unix: ToUnix, *, children: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {
        "uniqueid": sa.ike_id,
        "name": sa.name,
        "version": 2,
        "state": sa.state,
        "initiator": sa.initiator,
        "local-host": sa.local[0],
        "local-port": sa.local[1],
        "local-id": sa.local_id,
        "remote-host": sa.remote[0],
        "remote-port": sa.remote[1],
        "remote-id": sa.remote_id,
        "initiator-spi": f"{sa.spi_i:016x}",
        "responder-spi": f"{sa.spi_r:016x}",
        "nat-local": sa.nat_local,
        "nat-remote": sa.nat_remote,
        "nat-any": sa.nat_local or sa.nat_remote,
        "encap": sa.encap,
        "mobike": sa.mobike,
        "suite": sa.suite,
        # strongSwan VICI names: addresses assigned through the CP (RFC 7296 §2.19)
        "local-vips": list(sa.local_vips),
        "remote-vips": list(sa.remote_vips),
    }
    if sa.home_prefix:
        d["home-prefix"] = sa.home_prefix  # MIP6_HOME_PREFIX (RFC 5026 §4.4)
    d.update(suite_fields(sa.suite, False))
    d["established-at"] = to_unix(sa.established_at)
    d["rekey-at"] = to_unix(sa.rekey_at)
    d["expire-at"] = to_unix(sa.expire_at)
    if children:
        d["child-sas"] = [child_view(c, sa.ike_id, to_unix) for c in sa.children]
    return d


def unix_converter(now_clock: float, now_unix: float) -> ToUnix:
    """A converter from the engine's clock to UNIX time, fixed at one instant."""
    offset = now_unix - now_clock

    def to_unix(t: float | None) -> float | None:
        return None if t is None else round(t + offset, 3)

    return to_unix
