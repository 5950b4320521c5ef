"""The configuration payload in IKE_AUTH (RFC 7296 §2.19, §3.15; RFC 5026 §4.4;
REQUIREMENTS 7296-90, 7296-91, 4877-17, 4877-27).

Initiator: `request` builds CP(CFG_REQUEST) with INTERNAL_IP6_ADDRESS (empty for "::", else
the address as a hint) and/or an empty MIP6_HOME_PREFIX; `on_reply` records what the
CFG_REPLY assigned on the IKE SA (local_vips, home_prefix). Our dynamic TSi is then
"any IPv6 address" in the request, which the responder narrows to the assigned address.

Responder: `answer` gives the connection's configured address / home prefix (the HA's
layout writes one connection per MN identity, so this is the per-identity authorisation).
A hint is honoured when the identity may use it, else replaced by the authorised value.
Requested but nothing to assign: INTERNAL_ADDRESS_FAILURE and no CHILD_SA (§3.15.4). A
connection without CP settings ignores a CP, as an implementation without CP support does.
Unknown attributes are ignored (7296-91); a malformed known one is INVALID_SYNTAX.
"""

from __future__ import annotations

import ipaddress
import logging

from ikev2.config.model import CpConfig
from ikev2.core.sa import IkeSa, IkeState
from ikev2.errors import InvalidSyntax
from ikev2.protocol import cfgattr
from ikev2.protocol.enums import CfgAttr, CfgType, NotifyType, ProtocolId
from ikev2.protocol.payloads import CP, Notify
from ikev2.protocol.ts import TrafficSelector

log = logging.getLogger("ikev2.core")
_ANY6 = ipaddress.IPv6Address("::")
ANY_IPV6 = TrafficSelector.from_network("::/0")


# -- initiator ----------------------------------------------------------------------------
def request(cfg: CpConfig) -> CP:
    """CP(CFG_REQUEST): one INTERNAL_IP6_ADDRESS per vip ("::": empty, any address),
    MIP6_HOME_PREFIX (empty) when asked for."""
    attrs = [
        (CfgAttr.INTERNAL_IP6_ADDRESS, b"" if v == _ANY6 else cfgattr.encode_ip6(v))
        for v in cfg.vips
    ]
    if cfg.request_home_prefix:
        attrs.append((CfgAttr.MIP6_HOME_PREFIX, b""))
    return CP(CfgType.CFG_REQUEST, tuple(attrs))


def on_reply(sa: IkeSa, cfg: CpConfig, payloads: list) -> None:
    """Record the addresses / home prefix of the responder's CFG_REPLY on the IKE SA. A
    malformed attribute is skipped with a warning (a response is never answered)."""
    reply = next((p for p in payloads if isinstance(p, CP)), None)
    vips: list[str] = []
    if reply is not None and reply.cfg_type == CfgType.CFG_REPLY:
        for attr_type, value in reply.attributes:
            try:
                if attr_type == CfgAttr.INTERNAL_IP6_ADDRESS and cfg.vips:
                    got = cfgattr.decode_ip6(value)
                    if got is not None:
                        vips.append(str(got[0]))
                elif attr_type == CfgAttr.MIP6_HOME_PREFIX and cfg.request_home_prefix:
                    prefix = cfgattr.decode_home_prefix(value)
                    if prefix is not None and not sa.home_prefix:
                        sa.home_prefix = str(prefix[0])
                        log.info("IKE_SA %s[%d] home prefix %s assigned (lifetime %ds)",
                                 sa.name, sa.ike_id, prefix[0], prefix[1])
            except cfgattr.CfgAttrError as e:
                log.warning("IKE_SA %s[%d] ignoring a malformed CFG_REPLY attribute: %s",
                            sa.name, sa.ike_id, e)
    sa.local_vips = tuple(vips)
    if vips:
        log.info("IKE_SA %s[%d] virtual IP %s assigned", sa.name, sa.ike_id, ", ".join(vips))
    elif cfg.vips:
        log.warning("IKE_SA %s[%d] asked for a virtual IP (vips), the responder assigned "
                    "none; the CHILD_SA uses our outer address", sa.name, sa.ike_id)


def local_selector(sa: IkeSa, outer: str) -> list[TrafficSelector]:
    """Our 'dynamic' selector on an IKE SA that requests (or got) a virtual IP: the
    assigned addresses, or any IPv6 address while the request is outstanding."""
    if sa.local_vips:
        return [TrafficSelector.from_network(v) for v in sa.local_vips]
    cfg = sa.conn.cp if sa.conn is not None else None
    if sa.state != IkeState.ESTABLISHED and cfg is not None and cfg.vips:
        return [ANY_IPV6]
    return [TrafficSelector.from_network(outer)]


# -- responder ----------------------------------------------------------------------------
def respond(sa: IkeSa, cp: CP) -> list:
    """[CP(CFG_REPLY)], [N(INTERNAL_ADDRESS_FAILURE)] or [] for the peer's CP in IKE_AUTH
    (§2.19, §3.15.4), by the connection picked for its identity (sa.conn)."""
    conn = sa.conn
    assert conn is not None
    if cp.cfg_type != CfgType.CFG_REQUEST:
        log.info("IKE_SA %s[%d] ignoring a CP of type %d in IKE_AUTH (only CFG_REQUEST is "
                 "answered)", sa.name, sa.ike_id, cp.cfg_type)
        return []
    if conn.cp is None or not conn.cp.assigns:
        log.info("IKE_SA %s[%d] %s sent a CFG_REQUEST; connection %s assigns nothing "
                 "(assign_address / assign_home_prefix), so no CFG_REPLY", sa.name, sa.ike_id,
                 sa.remote_id, conn.name)
        return []
    return answer(sa, conn.cp, cp)


def answer(sa: IkeSa, cfg: CpConfig, cp: CP) -> list:
    """The CFG_REPLY for the peer's CFG_REQUEST ([] if it asked for nothing we know), or
    [N(INTERNAL_ADDRESS_FAILURE)] when it asked and nothing can be assigned (§3.15.4).
    Sets sa.remote_vips / sa.home_prefix. Raises InvalidSyntax for a malformed attribute."""
    want_addr = want_prefix = False
    hint: ipaddress.IPv6Address | None = None
    prefix_hint: ipaddress.IPv6Network | None = None
    for attr_type, value in cp.attributes:
        try:
            if attr_type == CfgAttr.INTERNAL_IP6_ADDRESS:
                got = cfgattr.decode_ip6(value)
                if not want_addr and got is not None:
                    hint = got[0]
                want_addr = True
            elif attr_type == CfgAttr.MIP6_HOME_PREFIX:
                got_p = cfgattr.decode_home_prefix(value)
                if not want_prefix and got_p is not None:
                    prefix_hint = got_p[0]
                want_prefix = True
        except cfgattr.CfgAttrError as e:
            raise InvalidSyntax(f"CFG_REQUEST: {e}") from None
    if not (want_addr or want_prefix):
        return []
    attrs: list[tuple[int, bytes]] = []
    peer = sa.remote_id
    if want_addr:
        addr = _address_for(cfg, hint)
        if hint is not None and addr != hint:
            log.info("IKE_SA %s[%d] %s asked for address %s, which it is not authorised "
                     "for; assigning %s", sa.name, sa.ike_id, peer, hint,
                     addr if addr is not None else "nothing")
        if addr is not None:
            attrs.append((CfgAttr.INTERNAL_IP6_ADDRESS, cfgattr.encode_ip6(addr)))
            sa.remote_vips = (str(addr),)
    if want_prefix and cfg.assign_home_prefix is not None:
        prefix = cfg.assign_home_prefix
        if prefix_hint is not None:
            if prefix_hint.subnet_of(prefix):
                prefix = prefix_hint
            else:
                log.info("IKE_SA %s[%d] %s asked for home prefix %s, which it is not "
                         "authorised for; assigning %s", sa.name, sa.ike_id, peer,
                         prefix_hint, prefix)
        attrs.append((CfgAttr.MIP6_HOME_PREFIX,
                      cfgattr.encode_home_prefix(prefix, cfg.home_prefix_lifetime)))
        sa.home_prefix = str(prefix)
    if not attrs:
        log.info("IKE_SA %s[%d] %s asked for %s; connection %s assigns nothing: "
                 "INTERNAL_ADDRESS_FAILURE, no CHILD_SA (set assign_address / "
                 "assign_home_prefix)", sa.name, sa.ike_id, peer,
                 "an address" if want_addr else "a home prefix", sa.name)
        return [Notify(ProtocolId.NONE, NotifyType.INTERNAL_ADDRESS_FAILURE)]
    log.info("IKE_SA %s[%d] assigned to %s: %s", sa.name, sa.ike_id, peer,
             ", ".join([*sa.remote_vips, *([sa.home_prefix] if sa.home_prefix else [])]))
    return [CP(CfgType.CFG_REPLY, tuple(attrs))]


def _address_for(
    cfg: CpConfig, hint: ipaddress.IPv6Address | None
) -> ipaddress.IPv6Address | None:
    """The hint if the identity may use it (the configured address, or one in the
    configured home prefix), else the configured address."""
    if hint is not None and (hint == cfg.assign_address or (
            cfg.assign_home_prefix is not None and hint in cfg.assign_home_prefix)):
        return hint
    return cfg.assign_address
