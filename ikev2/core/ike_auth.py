"""IKE_AUTH, both roles (RFC 7296 §1.2, §2.15 AUTH with a shared key or a certificate
signature, §3.6/§3.7 CERT and CERTREQ, RFC 7427 method 14, §2.21.2 failures)."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import TYPE_CHECKING

from asn1crypto import x509 as asn1_x509

from ikev2.config.model import AuthKind, ConnectionConfig, Credential, Identity
from ikev2.core import child, config_payload, lifetimes
from ikev2.core import mobike as mobike_mod
from ikev2.core.collect import collect
from ikev2.core.events import ChildSaEstablished, IkeSaEstablished
from ikev2.core.sa import IkeSa, IkeState
from ikev2.crypto import certs, signature
from ikev2.crypto.auth import psk_auth, signed_octets
from ikev2.errors import AuthenticationFailed, InvalidSyntax, KernelError
from ikev2.protocol.enums import AuthMethod, ExchangeType, IdType, NotifyType, ProtocolId
from ikev2.protocol.header import Header
from ikev2.protocol.payloads import AUTH, CERT, CERTREQ, CP, IDi, IDr, Notify

if TYPE_CHECKING:
    from ikev2.core.engine import Engine
    from ikev2.core.events import Endpoint

log = logging.getLogger("ikev2.core")
_AUTH = ExchangeType.IKE_AUTH


def _own_identity(conn: ConnectionConfig, local_addr: str, cred: Credential | None) -> Identity:
    """The configured ID; with a certificate, else its subject DN (what the certificate
    is surely bound to); else our address."""
    if conn.local.id is not None:
        return conn.local.id
    if cred is not None:
        return Identity(IdType.ID_DER_ASN1_DN, cred.chain.end_entity.subject.public_bytes())
    ip = ipaddress.ip_address(local_addr)
    return Identity(IdType.ID_IPV4_ADDR if ip.version == 4 else IdType.ID_IPV6_ADDR, ip.packed)


def _same_identity(configured: Identity, peer: Identity) -> bool:
    """Identity match; distinguished names compare by RFC 5280 §7.1 rules (case and
    whitespace folded, any string type), since peers encode the same DN differently."""
    if configured == peer:
        return True
    if configured.id_type != IdType.ID_DER_ASN1_DN or peer.id_type != IdType.ID_DER_ASN1_DN:
        return False
    try:
        return bool(asn1_x509.Name.load(configured.data, strict=True)
                    == asn1_x509.Name.load(peer.data, strict=True))
    except (ValueError, TypeError):
        return False


def _psk(conn: ConnectionConfig, *, ours: bool) -> bytes:
    side = conn.local if ours else conn.remote
    psk = side.psk if side.psk is not None else (conn.remote if ours else conn.local).psk
    if psk is None:
        raise AuthenticationFailed(f"connection {conn.name!r} has no pre-shared key")
    return psk


def _credential(conn: ConnectionConfig, requested: frozenset[bytes]) -> Credential | None:
    """The chain that answers the peer's CERTREQ, else our first (RFC 7296 §3.7)."""
    creds = conn.local.credentials
    if conn.local.auth != AuthKind.PUBKEY:
        return None
    if not creds:
        raise AuthenticationFailed(f"connection {conn.name!r}: auth = pubkey, but no "
                                   "certificate and key are configured")
    chain = certs.select_chain([c.chain for c in creds], requested)
    return next(c for c in creds if c.chain is chain)


def _our_auth(
    sa: IkeSa, conn: ConnectionConfig, cred: Credential | None, octets: bytes,
    requested: frozenset[bytes],
) -> list:
    """[CERT...], AUTH: a PSK MIC, or our signature with the method and hash the peer's
    SIGNATURE_HASH_ALGORITHMS allow (RFC 7296 §2.15, RFC 7427 §4, 7427-03)."""
    if cred is None:
        return [AUTH(AuthMethod.PSK, psk_auth(sa.prf, _psk(conn, ours=True), octets))]
    try:
        choice = signature.choose_auth(cred.key, sa.peer_hashes)
        data = signature.sign_auth(cred.key, octets, choice)
    except signature.SignatureError as e:
        raise AuthenticationFailed(f"cannot sign our AUTH payload: {e}") from None
    log.debug("IKE_SA %s[%d] signing AUTH with method %d (%s)", sa.name, sa.ike_id,
              int(choice.method), choice.scheme.name)
    return [*certs.chain_payloads(cred.chain, requested), AUTH(choice.method, data)]


def _certreq(conn: ConnectionConfig) -> list:
    """CERTREQ naming the CAs we trust for the peer's certificate (RFC 7296 §3.7)."""
    trust = conn.remote.trust
    if conn.remote.auth != AuthKind.PUBKEY or trust is None or not trust.anchors:
        return []
    return [trust.certreq_payload()]


def _requested(sa: IkeSa, payloads: list) -> frozenset[bytes]:
    try:
        return certs.requested_authorities([p for p in payloads if isinstance(p, CERTREQ)])
    except certs.MalformedCertReq as e:
        log.info("IKE_SA %s[%d]: ignoring the peer's CERTREQ: %s", sa.name, sa.ike_id, e)
        return frozenset()


def _verify_peer(
    engine: Engine, sa: IkeSa, conn: ConnectionConfig, peer: Identity, id_rest: bytes,
    auth: AUTH, cert_payloads: list, octets: bytes,
) -> None:
    """Check the peer's AUTH (RFC 7296 §2.15) against the method configured for it: a PSK
    MIC, or a signature by the key of a certificate that chains to our CAs at wall-clock
    time, is not revoked, and is bound to the peer's ID (7296-61). Raises
    AuthenticationFailed (or a subclass) with the reason."""
    if conn.remote.auth != AuthKind.PUBKEY:
        if auth.method != AuthMethod.PSK:
            raise AuthenticationFailed(
                f"{peer} used AUTH method {_method_name(auth.method)}, we expect a "
                "pre-shared key"
            )
        if not hmac.compare_digest(psk_auth(sa.prf, _psk(conn, ours=False), octets), auth.data):
            raise AuthenticationFailed(f"AUTH payload of {peer} does not verify (wrong PSK?)")
        return
    if auth.method == AuthMethod.PSK:
        raise AuthenticationFailed(
            f"{peer} used a pre-shared key (AUTH method 2), we expect a certificate signature"
        )
    trust = conn.remote.trust
    if trust is None or not trust.anchors:
        raise AuthenticationFailed(f"connection {conn.name!r}: no CA certificates to check "
                                   f"{peer}'s certificate against (remote cacerts)")
    if engine.wall_time is None:
        raise AuthenticationFailed(
            "no wall clock: certificate validity cannot be checked (Engine(wall_time=...))"
        )
    chain = certs.verify_peer_certificates(cert_payloads, id_rest[0], id_rest[4:], trust,
                                           engine.wall_time())
    try:
        scheme = signature.verify_auth(chain.public_key, auth.method, auth.data, octets)
    except signature.SignatureError as e:
        raise type(e)(f"AUTH payload of {peer} (certificate "
                      f"{certs.format_dn(chain.end_entity.subject)}): {e}") from None
    if log.isEnabledFor(logging.INFO):  # describe() formats every DN of the chain
        log.info("IKE_SA %s[%d] %s authenticated with a certificate signature (%s, AUTH "
                 "method %d): %s", sa.name, sa.ike_id, peer, scheme.name, auth.method,
                 chain.describe())


def _method_name(method: int) -> str:
    try:
        return f"{AuthMethod(method).name} ({method})"
    except ValueError:
        return str(method)


# -- initiator ----------------------------------------------------------------------------
def start(engine: Engine, sa: IkeSa, now: float) -> None:
    """Our IKE_AUTH request: IDi, [CERT+], [CERTREQ], [IDr], AUTH, SAi2, TSi, TSr (§1.2)."""
    conn = sa.conn
    assert conn is not None
    try:
        cred = _credential(conn, sa.peer_certreq)
    except AuthenticationFailed as e:
        engine.remove(sa, str(e))
        return
    ident = _own_identity(conn, sa.local[0], cred)
    sa.local_id = ident
    idi = IDi(ident.id_type, ident.data)
    octets = signed_octets(sa.init_request, sa.nr, sa.prf, sa.sk_pi, idi.rest())
    try:
        ours = _our_auth(sa, conn, cred, octets, sa.peer_certreq)
    except AuthenticationFailed as e:
        engine.remove(sa, str(e))
        return
    payloads: list = [idi, *ours[:-1], *_certreq(conn)]
    if conn.send_initial_contact and not _has_other_sa(engine, sa):
        payloads.append(Notify(ProtocolId.NONE, NotifyType.INITIAL_CONTACT))
    if conn.remote.id is not None:
        payloads.append(IDr(conn.remote.id.id_type, conn.remote.id.data))
    payloads.append(ours[-1])
    if conn.cp is not None and conn.cp.requests:
        payloads.append(config_payload.request(conn.cp))  # [CP] before SAi2 (§1.2)
    if conn.mobike:
        payloads.append(Notify(ProtocolId.NONE, NotifyType.MOBIKE_SUPPORTED))
        payloads += mobike_mod.address_list(engine, sa)
    if conn.children:
        try:
            payloads += child.build_request(engine, sa, sa.first_child or conn.children[0])
        except KernelError as e:
            log.warning("IKE_SA %s[%d]: no CHILD_SA, kernel refused an SPI: %s",
                        sa.name, sa.ike_id, e)
    engine.send_request(sa, _AUTH, payloads, on_response, now)


def on_response(
    engine: Engine, sa: IkeSa, header: Header, payloads: list, data: bytes, now: float
) -> None:
    """Verify the responder (§2.15) before installing anything (7296-27)."""
    conn = sa.conn
    assert conn is not None
    idr = auth = None
    error = None
    mobike = False
    cert_payloads: list[CERT] = []
    for p in payloads:
        if isinstance(p, IDr):
            idr = p
        elif isinstance(p, AUTH):
            auth = p
        elif isinstance(p, CERT):
            cert_payloads.append(p)
        elif isinstance(p, Notify):
            if p.type == NotifyType.MOBIKE_SUPPORTED:
                mobike = True
            elif p.type == NotifyType.SET_WINDOW_SIZE:
                _window(sa, p.data)
            elif p.type < 16384 and error is None:
                error = p.type
    if idr is None or auth is None:
        name = NotifyType(error).name if error in NotifyType._value2member_map_ else str(error)
        engine.remove(sa, f"peer refused IKE_AUTH: {name}", notify=name)
        return
    peer = Identity(IdType(idr.id_type) if idr.id_type in IdType._value2member_map_
                    else idr.id_type, idr.data)
    try:
        if conn.remote.id is not None and not _same_identity(conn.remote.id, peer):
            raise AuthenticationFailed(f"peer identity {peer} is not {conn.remote.id}")
        octets = signed_octets(sa.init_response, sa.ni, sa.prf, sa.sk_pr, idr.rest())
        _verify_peer(engine, sa, conn, peer, idr.rest(), auth, cert_payloads, octets)
    except AuthenticationFailed as e:
        log.info("IKE_SA %s[%d] authentication of the responder failed: %s", sa.name,
                 sa.ike_id, e)
        # report it in a separate INFORMATIONAL, then delete (7296-83)
        engine.send_oneshot(
            sa, ExchangeType.INFORMATIONAL,
            [Notify(ProtocolId.NONE, NotifyType.AUTHENTICATION_FAILED)],
        )
        engine.remove(sa, str(e), notify="AUTHENTICATION_FAILED")
        return
    sa.remote_id = peer
    sa.mobike = conn.mobike and mobike
    if sa.mobike:
        mobike_mod.note_peer_addresses(sa, [p for p in payloads if isinstance(p, Notify)])
    if conn.cp is not None and conn.cp.requests:
        config_payload.on_reply(sa, conn.cp, payloads)
    new_child = child.complete_request(engine, sa, payloads, now, emit=False)
    _established(engine, sa, now)
    if new_child is not None:
        engine.emit(ChildSaEstablished(sa.ike_id, new_child.info()))
    lifetimes.after_established(engine, sa, now)


# -- responder ----------------------------------------------------------------------------
def handle_request(
    engine: Engine, sa: IkeSa, header: Header, payloads: list, local: Endpoint,
    remote: Endpoint, now: float,
) -> list:
    """Authenticate the initiator, pick the connection by identity, answer (§1.2, §2.15)."""
    if sa.state != IkeState.INIT_DONE or sa.initiator:
        raise InvalidSyntax("IKE_AUTH on an IKE SA that is not waiting for it")
    idi = idr = auth = None
    initial_contact = mobike = False
    cp = None
    cert_payloads: list[CERT] = []
    for p in payloads:
        if isinstance(p, IDi):
            idi = p
        elif isinstance(p, IDr):
            idr = p
        elif isinstance(p, AUTH):
            auth = p
        elif isinstance(p, CERT):
            cert_payloads.append(p)
        elif isinstance(p, Notify):
            if p.type == NotifyType.INITIAL_CONTACT:
                initial_contact = True
            elif p.type == NotifyType.MOBIKE_SUPPORTED:
                mobike = True
            elif p.type == NotifyType.SET_WINDOW_SIZE:
                _window(sa, p.data)
        elif isinstance(p, CP):
            cp = p
    if idi is None or auth is None:
        raise AuthenticationFailed("IKE_AUTH request without IDi or AUTH (EAP not offered)")
    peer = Identity(IdType(idi.id_type) if idi.id_type in IdType._value2member_map_
                    else idi.id_type, idi.data)
    wanted = Identity(idr.id_type, idr.data) if idr is not None else None
    conn = _pick_connection(sa, peer, wanted)
    sa.conn = conn  # named in the logs from here on, even if authentication fails
    octets = signed_octets(sa.init_request, sa.nr, sa.prf, sa.sk_pi, idi.rest())
    _verify_peer(engine, sa, conn, peer, idi.rest(), auth, cert_payloads, octets)
    requested = _requested(sa, payloads)
    cred = _credential(conn, requested)
    sa.remote_id = peer
    ident = _own_identity(conn, local[0], cred)
    sa.local_id = ident
    sa.mobike = conn.mobike and mobike
    sa.local, sa.remote = local, remote  # the initiator may have moved to 4500 (§2.23)
    sa.encap = sa.encap or conn.encap
    # before anything changes: a malformed CFG_REQUEST is INVALID_SYNTAX (no IKE SA)
    assigned = config_payload.respond(sa, cp) if cp is not None else []
    if initial_contact:
        _initial_contact(engine, sa)
    own = IDr(ident.id_type, ident.data)
    mine = signed_octets(sa.init_response, sa.ni, sa.prf, sa.sk_pr, own.rest())
    out: list = [own, *_our_auth(sa, conn, cred, mine, requested)]
    if sa.mobike:
        out.append(Notify(ProtocolId.NONE, NotifyType.MOBIKE_SUPPORTED))
        out += mobike_mod.address_list(engine, sa)
        mobike_mod.note_peer_addresses(sa, [p for p in payloads if isinstance(p, Notify)])
    out += assigned
    if assigned and isinstance(assigned[0], Notify):  # INTERNAL_ADDRESS_FAILURE (§3.15.4)
        new_child = None
        if collect(payloads).sa is not None:
            name = conn.children[0].name if conn.children else "?"
            child.failed(engine, sa, name, "no address to assign (INTERNAL_ADDRESS_FAILURE)",
                         NotifyType.INTERNAL_ADDRESS_FAILURE.name)
    else:
        child_payloads, new_child = child.respond(engine, sa, payloads, now)
        out += child_payloads
    _established(engine, sa, now)
    if new_child is not None:
        engine.emit(ChildSaEstablished(sa.ike_id, new_child.info()))
    return out


def _window(sa: IkeSa, data: bytes) -> None:
    """SET_WINDOW_SIZE (§2.3): noted; we keep one request outstanding, within any window."""
    if len(data) == 4:
        sa.peer_window = max(1, int.from_bytes(data, "big"))


def _pick_connection(sa: IkeSa, peer: Identity, wanted: Identity | None) -> ConnectionConfig:
    for c in sa.candidates:
        if c.remote.id is not None and not _same_identity(c.remote.id, peer):
            continue
        if wanted is not None and c.local.id is not None and not _same_identity(
            c.local.id, wanted
        ):
            continue
        return c
    raise AuthenticationFailed(f"no connection accepts peer identity {peer}"
                               + (f" asking for us as {wanted}" if wanted is not None else ""))


def _established(engine: Engine, sa: IkeSa, now: float) -> None:
    sa.state = IkeState.ESTABLISHED
    sa.established_at = now
    sa.init_request = sa.init_response = b""
    engine.forget_half_open(sa)
    sa.due.pop("half_open", None)
    lifetimes.ike_established(engine, sa, now)
    log.debug(
        "IKE_SA %s[%d] established %s[%d]-%s[%d] %s-%s SPIs %s_i %s_r %s%s", sa.name, sa.ike_id,
        *sa.local, *sa.remote, sa.local_id, sa.remote_id, sa.spi_i.hex(), sa.spi_r.hex(),
        sa.suite, " NAT-T" if sa.encap else "",
    )
    engine.emit(IkeSaEstablished(sa.info()))


def _has_other_sa(engine: Engine, sa: IkeSa) -> bool:
    return any(
        o is not sa and o.conn is sa.conn and o.state == IkeState.ESTABLISHED
        for o in engine.by_id.values()
    )


def _initial_contact(engine: Engine, sa: IkeSa) -> None:
    """Drop other IKE SAs of the same authenticated identity (7296-71)."""
    for other in list(engine.by_id.values()):
        if (
            other is not sa
            and other.remote_id == sa.remote_id
            and other.conn is sa.conn
            and other.state == IkeState.ESTABLISHED
        ):
            engine.remove(other, "replaced: peer sent INITIAL_CONTACT")
