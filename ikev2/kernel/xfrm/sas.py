"""The SAD part of the xfrm backend: the XFRM_MSG_NEWSA/UPDSA body and attributes of each
direction of a CHILD_SA (REQUIREMENTS X-08, X-09, X-10)."""

from __future__ import annotations

from typing import Any

from ikev2.errors import KernelError
from ikev2.kernel.base import IPPROTO_AH, ChildSaSpec, ip_protocol
from ikev2.kernel.xfrm.algorithms import AUTH, algorithm_attrs
from ikev2.kernel.xfrm.consts import XFRM_INF, StateFlag, UdpEncap
from ikev2.kernel.xfrm.cstruct import family_of, pack_addr
from ikev2.kernel.xfrm.policies import mode_of


def sa_attrs_common(spec: ChildSaSpec) -> list[tuple[str, Any]]:
    attrs: list[tuple[str, Any]] = []
    if spec.mark_mask:
        attrs.append(("XFRMA_MARK", {"v": spec.mark, "m": spec.mark_mask}))
    if spec.if_id:
        attrs.append(("XFRMA_IF_ID", spec.if_id))
    return attrs


def _limit(n: int) -> int:
    return n if n > 0 else XFRM_INF


def sa_message(spec: ChildSaSpec, kreqid: int, inbound: bool,
               carry: dict[str, Any] | None = None) -> tuple[dict[str, Any], list]:
    """xfrm_usersa_info + attributes for one direction of `spec`. `carry` holds the replay
    state and current lifetime of an SA being re-added (migration fallback)."""
    proto = ip_protocol(spec.protocol)
    src, dst = (spec.remote, spec.local) if inbound else (spec.local, spec.remote)
    spi = spec.spi_in if inbound else spec.spi_out
    if proto == IPPROTO_AH:
        auth = AUTH.get(spec.integ_id)
        if auth is None:
            raise KernelError(f"AH needs an integrity algorithm (got {spec.integ_id})")
        key = spec.integ_key_in if inbound else spec.integ_key_out
        attrs: list[tuple[str, Any]] = [("XFRMA_ALG_AUTH_TRUNC", {
            "alg_name": auth.name, "alg_key_len": len(key) * 8,
            "alg_trunc_len": auth.trunc_bits, "alg_key": key})]
    else:
        attrs = algorithm_attrs(
            spec.encr_id, spec.integ_id,
            spec.encr_key_in if inbound else spec.encr_key_out,
            spec.integ_key_in if inbound else spec.integ_key_out,
        )
    # REQUIREMENTS X-09: the u8 replay_window only without ESN and up to 32 packets
    esn_state = spec.esn or spec.replay_window > 32
    body = {
        "id": {"daddr": pack_addr(dst), "spi": spi, "proto": proto},
        "saddr": pack_addr(src),
        "lft": {
            "soft_byte_limit": _limit(spec.soft_bytes),
            "hard_byte_limit": _limit(spec.hard_bytes),
            "soft_packet_limit": _limit(spec.soft_packets),
            "hard_packet_limit": _limit(spec.hard_packets),
            "soft_add_expires_seconds": max(0, spec.soft_time),
            "hard_add_expires_seconds": max(0, spec.hard_time),
        },
        "family": family_of(dst),
        "mode": int(mode_of(spec)),
        "reqid": kreqid,
        "replay_window": 0 if esn_state else max(0, spec.replay_window),
        # tunnel mode: keep the SA's selector family unspecified so that IPv4 and IPv6
        # inner traffic can share it (without the flag the kernel sets it to `family`)
        "flags": (int(StateFlag.ESN) if spec.esn else 0)
        | (int(StateFlag.AF_UNSPEC) if spec.mode == "tunnel" else 0),
    }
    carry = carry or {}
    if esn_state:
        esn = carry.get("esn") or {}
        window = max(1, spec.replay_window)
        attrs.append(("XFRMA_REPLAY_ESN_VAL", {**esn, "replay_window": window}))
    elif carry.get("replay"):
        attrs.append(("XFRMA_REPLAY_VAL", carry["replay"]))
    if carry.get("curlft"):
        attrs.append(("XFRMA_LTIME_VAL", carry["curlft"]))
    if spec.encap is not None:
        lport, rport = spec.encap
        sport, dport = (rport, lport) if inbound else (lport, rport)
        attrs.append(("XFRMA_ENCAP", {"encap_type": int(UdpEncap.ESPINUDP),
                                      "encap_sport": sport, "encap_dport": dport}))
    attrs += sa_attrs_common(spec)
    return body, attrs
