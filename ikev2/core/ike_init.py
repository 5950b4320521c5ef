"""IKE_SA_INIT, both roles (RFC 7296 §1.2, §2.6 cookies, §3.4 INVALID_KE_PAYLOAD)."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

from ikev2.config.model import AuthKind
from ikev2.core import ike_auth, natd
from ikev2.core.events import Endpoint
from ikev2.core.negotiation import Selected, check_choice, select, suite_of, to_proposals
from ikev2.core.sa import IkeSa, IkeState
from ikev2.crypto.certs import MalformedCertReq, certreq_payload, requested_authorities
from ikev2.crypto.dh import get_group
from ikev2.crypto.encr import get_encr
from ikev2.crypto.integ import get_integ
from ikev2.crypto.keys import IkeKeys, derive_ike_keys
from ikev2.crypto.prf import get_prf
from ikev2.crypto.proposals import default_proposals
from ikev2.crypto.signature import (
    DEFAULT_HASHES,
    MalformedHashAlgorithms,
    decode_hash_algorithms,
    encode_hash_algorithms,
)
from ikev2.crypto.sk import make_sk_crypter
from ikev2.errors import DropMessage, IkeError, InvalidSyntax, NoProposalChosen
from ikev2.protocol.codec import build_message, parse_message
from ikev2.protocol.enums import ExchangeType, NotifyType, ProtocolId, TransformType
from ikev2.protocol.header import Header
from ikev2.protocol.payloads import CERTREQ, KE, SA, Nonce, Notify

if TYPE_CHECKING:
    from ikev2.config.model import ConnectionConfig
    from ikev2.core.engine import Engine

log = logging.getLogger("ikev2.core")

_INIT = ExchangeType.IKE_SA_INIT
_ZERO_SPI = b"\0" * 8
_MAX_RETRIES = 5


def ike_proposals(conn: ConnectionConfig) -> tuple:
    return conn.ike_proposals or default_proposals(ProtocolId.IKE)


# -- initiator ----------------------------------------------------------------------------
def start(engine: Engine, sa: IkeSa, now: float) -> None:
    """Send (or re-send after COOKIE / INVALID_KE_PAYLOAD) our IKE_SA_INIT request (§1.2)."""
    conn = sa.conn
    assert conn is not None
    specs = ike_proposals(conn)
    if not sa.dh_group:
        sa.dh_group = next(t[1] for t in specs[0] if t[0] == TransformType.DH)
    if sa.dh is None:  # kept across a COOKIE retry: all but N(COOKIE) unchanged (7296-45)
        sa.dh = get_group(sa.dh_group).generate(engine.random)
    if not sa.ni:
        sa.ni = engine.random(engine.config.nonce_size)
    payloads: list = []
    if sa.cookie is not None:
        payloads.append(Notify(ProtocolId.NONE, NotifyType.COOKIE, b"", sa.cookie))
    payloads += [
        SA(to_proposals(specs, ProtocolId.IKE)),
        KE(sa.dh_group, sa.dh.public),
        Nonce(sa.ni),
    ]
    fake = hashlib.sha1(b"fake NAT-D " + sa.spi_i).digest() if conn.encap else None
    payloads += natd.payloads(sa.spi_i, _ZERO_SPI, sa.local, sa.remote, fake)
    if conn.fragmentation:
        payloads.append(Notify(ProtocolId.NONE, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
    if uses_certificates(conn):
        payloads.append(_hash_notify())
    sa.next_id_out = 0
    engine.send_request(sa, _INIT, payloads, on_response, now)
    log.info(
        "IKE_SA %s[%d] initiating %s[%d] -> %s[%d]", sa.name, sa.ike_id, *sa.local, *sa.remote
    )


def on_response(
    engine: Engine, sa: IkeSa, header: Header, payloads: list, data: bytes, now: float
) -> None:
    """Process the IKE_SA_INIT response (§1.2, §2.6, §3.4, §2.23) and go on to IKE_AUTH."""
    conn = sa.conn
    assert conn is not None
    notifies = [p for p in payloads if isinstance(p, Notify)]
    for n in notifies:
        if n.type == NotifyType.COOKIE:
            return _retry(engine, sa, now, cookie=n.data)
    for n in notifies:
        if n.type == NotifyType.INVALID_KE_PAYLOAD:
            group = int.from_bytes(n.data[:2], "big") if len(n.data) >= 2 else 0
            offered = {t[1] for spec in ike_proposals(conn) for t in spec if t[0] == 4}
            if group not in offered or group == sa.dh_group:
                engine.remove(
                    sa, f"peer asked for DH group {group} which we did not propose",
                    notify="INVALID_KE_PAYLOAD",
                )
                return None
            log.info("IKE_SA %s[%d] peer prefers DH group %d, retrying", sa.name, sa.ike_id, group)
            return _retry(engine, sa, now, group=group)
    for n in notifies:
        if n.type < 16384:
            name = _notify_name(n.type)
            engine.remove(sa, f"peer answered IKE_SA_INIT with {name}", notify=name)
            return None
    try:
        sa_p = _one(payloads, SA)
        ke = _one(payloads, KE)
        nonce = _one(payloads, Nonce)
        if header.spi_r == _ZERO_SPI:
            raise InvalidSyntax("responder SPI is zero")
        sel = check_choice(sa_p.proposals, to_proposals(ike_proposals(conn), ProtocolId.IKE),
                           ProtocolId.IKE)
        group = sel.get(TransformType.DH)
        if group is None or group[1] != sa.dh_group or ke.group != sa.dh_group:
            raise NoProposalChosen(f"responder's KE group {ke.group} is not the one we sent")
        shared = sa.dh.shared_secret(ke.data)
    except IkeError as e:
        engine.remove(sa, f"bad IKE_SA_INIT response: {e}",
                      notify=e.notify.name if e.notify else None)
        return None
    sa.spi_r = header.spi_r
    sa.nr = nonce.data
    sa.init_response = data
    sa.dh = None
    setup_keys(sa, sel, shared)
    sa.fragmentation = conn.fragmentation and any(
        n.type == NotifyType.IKEV2_FRAGMENTATION_SUPPORTED for n in notifies
    )  # RFC 7383 §2.3 (7383-01)
    sa.peer_hashes = _peer_hashes(sa, notifies)
    sa.peer_certreq = _peer_certreq(sa, payloads)
    present, nat_local, nat_remote = natd.check(notifies, sa.spi_i, sa.spi_r, sa.local, sa.remote)
    sa.nat_local, sa.nat_remote = nat_local, nat_remote
    sa.encap = conn.encap or nat_local or nat_remote
    if present and (sa.encap or conn.mobike):
        # float to the NAT-T port (§2.23) when the peer sits on the IKE port, as it does
        # everywhere but in tests that put two daemons on one address with other ports
        if sa.remote[1] == engine.config.ike_port:
            sa.local = (sa.local[0], engine.config.natt_port)
            sa.remote = (sa.remote[0], engine.config.natt_port)
        elif sa.encap:
            log.warning("IKE_SA %s[%d]: NAT detected but the peer's port %d is not the IKE "
                        "port %d; staying on it (ESP-in-UDP needs port %d on both sides)",
                        sa.name, sa.ike_id, sa.remote[1], engine.config.ike_port,
                        engine.config.natt_port)
    sa.state = IkeState.INIT_DONE
    ike_auth.start(engine, sa, now)
    return None


def _retry(
    engine: Engine, sa: IkeSa, now: float, *, cookie: bytes | None = None, group: int = 0
) -> None:
    """Retry with the same SPIi and Message ID 0 (7296-45, 7296-47, 7296-48)."""
    sa.init_retries += 1
    if sa.init_retries > _MAX_RETRIES:
        engine.remove(sa, "too many COOKIE / INVALID_KE_PAYLOAD rounds")
        return
    if cookie is not None:
        sa.cookie = cookie
    if group:
        sa.dh_group = group
        sa.dh = None
    start(engine, sa, now)


# -- responder ----------------------------------------------------------------------------
def handle_request(
    engine: Engine, header: Header, data: bytes, local: Endpoint, remote: Endpoint, now: float
) -> None:
    """An IKE_SA_INIT request: answer, or drop silently where §3.1 says so (7296-93)."""
    if not header.flags & 0x08 or header.spi_i == _ZERO_SPI:
        raise DropMessage("IKE_SA_INIT request without I flag or with zero SPIi")
    if header.spi_r != _ZERO_SPI or header.message_id != 0:
        raise DropMessage("IKE_SA_INIT request with non-zero SPIr or message ID")
    key = (header.spi_i, remote[0], remote[1])
    existing = engine.half_open.get(key)
    if existing is not None:
        if existing.init_request == data and existing.last_response is not None:
            for d in existing.last_response[1]:  # a retransmission (7296-42)
                engine.send(d, local, remote)
            return
        raise DropMessage("IKE_SA_INIT with a SPIi already in use from this address")
    try:
        payloads = parse_message(data)[1]
    except IkeError as e:
        log.info("malformed IKE_SA_INIT from %s[%d]: %s", remote[0], remote[1], e)
        if e.notify is not None:
            engine.error_response(header, e.notify, e.data, local, remote, now)
        return
    try:
        _respond(engine, header, data, payloads, local, remote, key, now)
    except IkeError as e:
        log.info("IKE_SA_INIT from %s[%d] refused: %s", remote[0], remote[1], e)
        if e.notify is not None:
            engine.error_response(header, e.notify, e.data, local, remote, now)


def _respond(
    engine: Engine, header: Header, data: bytes, payloads: list, local: Endpoint,
    remote: Endpoint, key: tuple[bytes, str, int], now: float,
) -> None:
    sa_p = _one(payloads, SA)
    ke = _one(payloads, KE)
    nonce = _one(payloads, Nonce)
    notifies = [p for p in payloads if isinstance(p, Notify)]
    candidates = tuple(
        c for c in engine.connections.values() if _matches(c.local_addrs, local[0])
        and _matches(c.remote_addrs, remote[0])
    )
    if not candidates:
        raise NoProposalChosen(f"no connection for {local[0]} <- {remote[0]}")
    block = engine.config.block_threshold
    if block and engine.half_open_by_ip.get(remote[0], 0) >= block:
        raise DropMessage(f"{remote[0]} already has {block} half-open IKE SAs (block_threshold)")
    _rotate_cookie_secret(engine, now)
    if len(engine.half_open) >= engine.config.cookie_threshold:
        cookie = next((n.data for n in notifies if n.type == NotifyType.COOKIE), None)
        if cookie is None or not engine.cookies.verify(cookie, nonce.data, remote[0], header.spi_i):
            _send_cookie(engine, header, nonce.data, local, remote, now)
            return
    sel: Selected | None = None
    for conn in candidates:
        try:
            sel = select(sa_p.proposals, ike_proposals(conn), ProtocolId.IKE, ke.group)
            break
        except NoProposalChosen:
            continue
    if sel is None:
        raise NoProposalChosen("no acceptable IKE proposal")
    group = sel.get(TransformType.DH)
    assert group is not None
    if ke.group != group[1]:
        raise _invalid_ke(group[1])
    dh = get_group(group[1]).generate(engine.random)
    shared = dh.shared_secret(ke.data)

    sa = IkeSa(engine.new_ike_id(), False, local, remote, None)
    sa.candidates = candidates
    sa.spi_i = header.spi_i
    sa.spi_r = engine.new_ike_spi()
    sa.ni = nonce.data
    sa.nr = engine.random(engine.config.nonce_size)
    sa.dh_group = group[1]
    sa.init_remote = remote
    setup_keys(sa, sel, shared)
    present, nat_local, nat_remote = natd.check(notifies, sa.spi_i, _ZERO_SPI, local, remote)
    sa.nat_local, sa.nat_remote = nat_local, nat_remote
    sa.encap = nat_local or nat_remote
    out = [SA((sel.proposal(ProtocolId.IKE, b""),)), KE(group[1], dh.public), Nonce(sa.nr)]
    # CERTREQ for the CAs we trust (RFC 7296 §1.2, §3.7)
    anchors = [a for c in candidates if c.remote.auth == AuthKind.PUBKEY and c.remote.trust
               for a in c.remote.trust.anchors]
    if anchors:
        out.append(certreq_payload(anchors))
    if present:
        out += natd.payloads(sa.spi_i, sa.spi_r, local, remote)
    if any(n.type == NotifyType.IKEV2_FRAGMENTATION_SUPPORTED for n in notifies) and any(
        c.fragmentation for c in candidates
    ):
        out.append(Notify(ProtocolId.NONE, NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
        sa.fragmentation = True  # both sent it (RFC 7383 §2.3)
    sa.peer_hashes = _peer_hashes(sa, notifies)
    if any(uses_certificates(c) for c in candidates):
        out.append(_hash_notify())
    response = build_message(sa.spi_i, sa.spi_r, _INIT, 0x20, 0, out)
    sa.init_request = data
    sa.init_response = response
    sa.next_id_in = 1
    sa.last_response = (0, [response])
    sa.last_request_hash = hash(data)
    sa.state = IkeState.INIT_DONE
    engine.by_spi[sa.spi_r] = sa
    engine.by_id[sa.ike_id] = sa
    engine.add_half_open(key, sa)
    sa.due["half_open"] = now + engine.config.half_open_timeout
    engine.schedule(sa)
    engine.send(response, local, remote)


def _rotate_cookie_secret(engine: Engine, now: float) -> None:
    """A fresh cookie secret every `cookie_rotation` seconds; the previous one still
    verifies, so a cookie handed out just before a change works (§2.6, 7296-46)."""
    if engine.cookie_rotated is None:
        engine.cookie_rotated = now
    elif now - engine.cookie_rotated >= engine.config.cookie_rotation:
        engine.cookies.rotate(engine.random(32))
        engine.cookie_rotated = now


def _send_cookie(
    engine: Engine, header: Header, ni: bytes, local: Endpoint, remote: Endpoint, now: float
) -> None:
    """Keep no state; answer N(COOKIE) only (7296-44)."""
    cookie = engine.cookies.make(ni, remote[0], header.spi_i)
    engine.error_response(header, NotifyType.COOKIE, cookie, local, remote, now)


def _invalid_ke(group: int) -> IkeError:
    from ikev2.errors import InvalidKePayload

    return InvalidKePayload(f"peer's KE uses another group, we want {group}", group)


def _matches(addrs: tuple[str, ...], addr: str) -> bool:
    if not addrs:
        return True
    return any(a in ("%any", "0.0.0.0", "::", addr) or _in_prefix(a, addr) for a in addrs)


def _in_prefix(prefix: str, addr: str) -> bool:
    if "/" not in prefix:
        return False
    import ipaddress

    try:
        return ipaddress.ip_address(addr) in ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False


# -- shared -------------------------------------------------------------------------------
def uses_certificates(conn: ConnectionConfig) -> bool:
    """Either side authenticates with a certificate: then we announce our signature hashes
    (RFC 7427 §4, 7427-06) and, for the peer's side, ask for its CA (CERTREQ)."""
    return AuthKind.PUBKEY in (conn.local.auth, conn.remote.auth)


def _hash_notify() -> Notify:
    """N(SIGNATURE_HASH_ALGORITHMS): the hashes we accept in AUTH method 14 (7427-01)."""
    return Notify(ProtocolId.NONE, NotifyType.SIGNATURE_HASH_ALGORITHMS, b"",
                  encode_hash_algorithms(DEFAULT_HASHES))


def _peer_hashes(sa: IkeSa, notifies: list) -> tuple[int, ...] | None:
    """The peer's SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4), None if it sent none; a
    malformed one counts as none (we then sign with methods 1/9/10/11 only)."""
    for n in notifies:
        if n.type == NotifyType.SIGNATURE_HASH_ALGORITHMS:
            try:
                return tuple(int(h) for h in decode_hash_algorithms(n.data))
            except MalformedHashAlgorithms as e:
                log.info("IKE_SA [%d]: ignoring the peer's SIGNATURE_HASH_ALGORITHMS: %s",
                         sa.ike_id, e)
                return None
    return None


def _peer_certreq(sa: IkeSa, payloads: list) -> frozenset[bytes]:
    """The CA key hashes the peer asked for in IKE_SA_INIT (RFC 7296 §3.7); a malformed
    CERTREQ is only a hint we cannot use."""
    try:
        return requested_authorities([p for p in payloads if isinstance(p, CERTREQ)])
    except MalformedCertReq as e:
        log.info("IKE_SA [%d]: ignoring the peer's CERTREQ: %s", sa.ike_id, e)
        return frozenset()


def setup_keys(sa: IkeSa, sel: Selected, shared: bytes) -> None:
    """SKEYSEED and SK_* (§2.14); SK crypters for both directions."""
    encr_t = sel.get(TransformType.ENCR)
    prf_t = sel.get(TransformType.PRF)
    integ_t = sel.get(TransformType.INTEG)
    assert encr_t is not None and prf_t is not None
    prf = get_prf(prf_t[1])
    encr = get_encr(encr_t[1], encr_t[2])
    integ = get_integ(integ_t[1]) if integ_t is not None else None
    keys = derive_ike_keys(prf, encr, integ, sa.ni, sa.nr, sa.spi_i, sa.spi_r, shared)
    use_keys(sa, sel, prf, encr, integ, keys)


def use_keys(sa: IkeSa, sel: Selected, prf: Any, encr: Any, integ: Any, keys: IkeKeys) -> None:
    """Install SK_* of a new or rekeyed IKE SA (§2.14, §2.18)."""
    crypt_i = make_sk_crypter(encr, keys.sk_ei, integ, keys.sk_ai)
    crypt_r = make_sk_crypter(encr, keys.sk_er, integ, keys.sk_ar)
    sa.crypter_out, sa.crypter_in = (crypt_i, crypt_r) if sa.initiator else (crypt_r, crypt_i)
    sa.prf = prf
    sa.sk_d, sa.sk_pi, sa.sk_pr = keys.sk_d, keys.sk_pi, keys.sk_pr
    sa.keys = keys  # kept for Engine.ike_keys (Wireshark key export, off by default)
    sa.transforms = sel.transforms
    sa.suite = suite_of(sel.transforms)


def _one(payloads: list, cls: type):
    for p in payloads:
        if isinstance(p, cls):
            return p
    raise InvalidSyntax(f"{cls.__name__} payload missing")


def _notify_name(t: int) -> str:
    try:
        return NotifyType(t).name
    except ValueError:
        return f"notify {t}"
