"""The validated configuration the core consumes: frozen values, no parsing here.

The TOML loader (`ikev2.config.loader`) builds these; the REST API (later) builds the same
objects from JSON, so both share one schema.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ikev2.protocol.enums import IdType
from ikev2.protocol.ts import TrafficSelector

if TYPE_CHECKING:
    from ikev2.crypto.certs import CertChain, TrustStore

# (transform type, transform id, key length in bits or None), in preference order
TransformSpec = tuple[int, int, int | None]
ProposalSpec = tuple[TransformSpec, ...]


@dataclass(frozen=True, slots=True)
class Identity:
    """An IKE identity (RFC 7296 §3.5)."""

    id_type: IdType
    data: bytes

    @classmethod
    def parse(cls, text: str) -> Identity:
        """'user@example.org' → RFC822, '192.0.2.1' / '2001:db8::1' → IP, 'gw.example.org'
        → FQDN, 'C=DE, O=Example, CN=gw' → distinguished name (ID_DER_ASN1_DN, RDNs in the
        order written, as strongSwan writes them); explicit prefixes 'fqdn:',
        'email:'/'rfc822:', 'keyid:' (hex or text), 'ipv4:', 'ipv6:', 'dn:' override the
        guess."""
        text = text.strip()
        if not text:
            raise ValueError("empty identity")
        prefix, sep, rest = text.partition(":")
        if sep and prefix in _PREFIXES:
            kind = _PREFIXES[prefix]
            if kind is IdType.ID_DER_ASN1_DN:
                return cls._dn(rest)
            if kind is IdType.ID_KEY_ID:
                data = (
                    bytes.fromhex(rest[2:].replace(":", ""))
                    if rest.startswith("0x")
                    else rest.encode()
                )
                return cls(kind, data)
            if kind in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
                return cls(kind, ipaddress.ip_address(rest).packed)
            return cls(kind, rest.encode())
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            pass
        else:
            return cls(IdType.ID_IPV4_ADDR if ip.version == 4 else IdType.ID_IPV6_ADDR, ip.packed)
        if "=" in text:
            return cls._dn(text)
        if "@" in text:
            return cls(IdType.ID_RFC822_ADDR, text.encode())
        return cls(IdType.ID_FQDN, text.encode())

    def __str__(self) -> str:
        if self.id_type in (IdType.ID_IPV4_ADDR, IdType.ID_IPV6_ADDR):
            try:
                return str(ipaddress.ip_address(self.data))
            except ValueError:
                return self.data.hex()
        if self.id_type == IdType.ID_KEY_ID:
            return "keyid:0x" + self.data.hex()
        if self.id_type in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR):
            return self.data.decode("utf-8", "replace")
        if self.id_type == IdType.ID_DER_ASN1_DN:
            from ikev2.crypto.certs import name_dn

            try:
                return name_dn(self.data)
            except ValueError:
                pass
        name = self.id_type.name if isinstance(self.id_type, IdType) else f"ID{self.id_type}"
        return f"{name}:0x{self.data.hex()}"

    @classmethod
    def _dn(cls, text: str) -> Identity:
        """A distinguished name (certs.parse_dn syntax) as ID_DER_ASN1_DN (RFC 7296 §3.5)."""
        from ikev2.crypto.certs import parse_dn

        return cls(IdType.ID_DER_ASN1_DN, parse_dn(text).public_bytes())


_PREFIXES = {
    "fqdn": IdType.ID_FQDN,
    "email": IdType.ID_RFC822_ADDR,
    "rfc822": IdType.ID_RFC822_ADDR,
    "keyid": IdType.ID_KEY_ID,
    "ipv4": IdType.ID_IPV4_ADDR,
    "ipv6": IdType.ID_IPV6_ADDR,
    "dn": IdType.ID_DER_ASN1_DN,
    "asn1dn": IdType.ID_DER_ASN1_DN,
}


class AuthKind(StrEnum):
    PSK = "psk"
    PUBKEY = "pubkey"


class Mode(StrEnum):
    TUNNEL = "tunnel"
    TRANSPORT = "transport"


class StartAction(StrEnum):
    NONE = "none"
    INITIATE = "initiate"
    TRAP = "trap"


class DpdAction(StrEnum):
    """What to do when the peer is found dead (RFC 7296 §2.4)."""

    CLEAR = "clear"  # forget the SAs
    RESTART = "restart"  # re-initiate the connection at once
    HOLD = "hold"  # forget the SAs; re-initiate on demand (trap policies, kernel issue)


@dataclass(frozen=True, slots=True)
class Credential:
    """One certificate chain of ours (end entity first, then intermediates) and the
    private key of its end-entity certificate (RFC 7296 §3.6, §3.8)."""

    chain: CertChain
    key: Any = field(compare=False, repr=False)  # ikev2.crypto.signature.PrivateKey


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """One side's authentication. `id` None on the remote side means any identity (with
    certificates: any identity the peer's certificate is bound to).

    auth = PUBKEY, local side: `credentials`, the chains we can send; the first one whose
    CAs answer the peer's CERTREQ is used, else the first (RFC 7296 §3.7). Remote side:
    `trust`, the CA certificates the peer's chain must lead to and the CRLs we hold."""

    id: Identity | None
    auth: AuthKind = AuthKind.PSK
    psk: bytes | None = None
    credentials: tuple[Credential, ...] = ()
    trust: TrustStore | None = field(default=None, hash=False)  # CRL objects are unhashable


@dataclass(frozen=True, slots=True)
class TsConfig:
    """A traffic selector as configured. `dynamic` = this side's outer address (/32 or /128)."""

    selector: TrafficSelector | None = None
    dynamic: bool = False

    def resolve(self, outer_address: str) -> TrafficSelector:
        if self.dynamic or self.selector is None:
            return TrafficSelector.from_network(outer_address)
        return self.selector


@dataclass(frozen=True, slots=True)
class ChildConfig:
    name: str
    local_ts: tuple[TsConfig, ...] = (TsConfig(dynamic=True),)
    remote_ts: tuple[TsConfig, ...] = (TsConfig(dynamic=True),)
    mode: Mode = Mode.TUNNEL
    esp_proposals: tuple[ProposalSpec, ...] = ()
    start_action: StartAction = StartAction.NONE
    replay_window: int = 32
    install_policies: bool = True
    rekey_time: float = 3600.0  # 0: never rekey
    life_time: float | None = None  # hard expiry; default rekey_time * 1.1
    rand_time: float | None = None  # rekey jitter; default life_time - rekey_time
    rekey_bytes: int = 0  # soft byte/packet limits, enforced by the kernel (0: none)
    rekey_packets: int = 0
    life_bytes: int = 0
    life_packets: int = 0

    @property
    def hard_time(self) -> float:
        if self.life_time is not None:
            return self.life_time
        return self.rekey_time * 1.1

    @property
    def jitter(self) -> float:
        if self.rand_time is not None:
            return self.rand_time
        return max(0.0, self.hard_time - self.rekey_time)


@dataclass(frozen=True, slots=True)
class RetransmitConfig:
    """RFC 7296 §2.4 retransmission: timeout·base^n, capped, `tries` retransmissions."""

    timeout: float = 4.0
    base: float = 1.8
    tries: int = 5
    max_interval: float = 60.0


@dataclass(frozen=True, slots=True)
class CpConfig:
    """Configuration payload in IKE_AUTH (RFC 7296 §2.19, RFC 5026 §4.4). As initiator:
    `vips` to request ("::" asks for any IPv6 address, an address is a hint) and
    `request_home_prefix`; as responder: what this connection's peer is given."""

    vips: tuple[ipaddress.IPv6Address, ...] = ()
    request_home_prefix: bool = False
    assign_address: ipaddress.IPv6Address | None = None
    assign_home_prefix: ipaddress.IPv6Network | None = None
    home_prefix_lifetime: int = 86400

    @property
    def requests(self) -> bool:
        return bool(self.vips) or self.request_home_prefix

    @property
    def assigns(self) -> bool:
        return self.assign_address is not None or self.assign_home_prefix is not None


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    name: str
    local_addrs: tuple[str, ...]
    remote_addrs: tuple[str, ...]
    local: AuthConfig
    remote: AuthConfig
    ike_proposals: tuple[ProposalSpec, ...] = ()
    children: tuple[ChildConfig, ...] = ()
    local_port: int | None = None  # None: EngineConfig.ike_port
    remote_port: int | None = None  # None: EngineConfig.ike_port
    encap: bool = False
    mobike: bool = True
    fragmentation: bool = True
    # RFC 7383 §2.5.1: the largest IP datagram an IKE fragment may fill (IP and UDP
    # headers and the non-ESP marker included); None: 1280 over IPv6, 576 over IPv4
    fragment_size: int | None = None
    send_initial_contact: bool = True
    retransmit: RetransmitConfig = field(default_factory=RetransmitConfig)
    rekey_time: float = 14400.0  # IKE SA rekey (§2.8); 0: never
    reauth_time: float = 0.0  # reauthentication: a new IKE SA from scratch; 0: never
    over_time: float | None = None  # hard expiry after rekey/reauth time; default 10 %
    rand_time: float | None = None  # jitter subtracted from rekey/reauth; default over_time
    dpd_delay: float = 0.0  # liveness check after this long without inbound traffic; 0: off
    dpd_action: DpdAction = DpdAction.CLEAR
    cp: CpConfig | None = None  # None: no CP sent, a peer's CP request ignored

    @property
    def renew_time(self) -> float:
        """When the IKE SA is rekeyed or reauthenticated, whichever comes first."""
        times = [t for t in (self.rekey_time, self.reauth_time) if t > 0]
        return min(times) if times else 0.0

    @property
    def margin(self) -> float:
        if self.over_time is not None:
            return self.over_time
        return self.renew_time * 0.1

    @property
    def jitter(self) -> float:
        return self.rand_time if self.rand_time is not None else self.margin

    def child(self, name: str) -> ChildConfig:
        for c in self.children:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Daemon-wide knobs the core needs."""

    ike_port: int = 500
    natt_port: int = 4500
    nonce_size: int = 32
    half_open_timeout: float = 30.0
    cookie_threshold: int = 1000  # half-open SAs above which IKE_SA_INIT needs a COOKIE
    block_threshold: int = 0  # half-open SAs per peer address above which we drop; 0: off
    cookie_rotation: float = 120.0  # seconds between cookie secret changes (§2.6)
    response_cache_time: float = 300.0
