"""Strict payload-chain parser and builder (RFC 7296 §3.2-§3.16, RFC 7383 §2.5).

Decoding raises only `ikev2.errors` exceptions: InvalidSyntax with a message naming the
payload, the field and the value; UnsupportedCriticalPayload for an unknown type with the
critical bit (7296-08). Every RESERVED field of RFC 7296 is "sent as zero, ignored on
receipt", so none of them is checked. Encoding trusts the values it is given and raises
ValueError for ones that do not fit the wire format (a caller bug, never peer input).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from ikev2.errors import InvalidSyntax, UnsupportedCriticalPayload
from ikev2.protocol.enums import PayloadType
from ikev2.protocol.header import HEADER, HEADER_LEN, IKEV2_VERSION, Header, parse_header
from ikev2.protocol.payloads import (
    AF_TV,
    AUTH,
    CERT,
    CERTREQ,
    CP,
    EAP,
    KE,
    SA,
    SK,
    SKF,
    Delete,
    IDi,
    IDr,
    Nonce,
    Notify,
    Payload,
    Proposal,
    Transform,
    TSi,
    TSr,
    Unknown,
    VendorId,
    fast_constructor,
)
from ikev2.protocol.ts import TrafficSelector, TsType

__all__ = [
    "GENERIC",
    "build_message",
    "decode_payloads",
    "encode_payloads",
    "parse_message",
    "payload_name",
]

# Next Payload(1) C|RESERVED(1) Payload Length(2)  (RFC 7296 §3.2)
GENERIC = struct.Struct("!BBH")
_gen_unpack = GENERIC.unpack_from
_gen_pack = GENERIC.pack
# Last(1) RESERVED(1) Length(2) Num(1) Protocol(1) SPI Size(1) #Transforms(1)  (§3.3.1)
_PROPOSAL = struct.Struct("!BBHBBBB")
# Last(1) RESERVED(1) Length(2) Type(1) RESERVED(1) Transform ID(2)  (§3.3.2)
_TRANSFORM = struct.Struct("!BBHBBH")
_H = struct.Struct("!H")
_HH = struct.Struct("!HH")
_BBH = struct.Struct("!BBH")
# TS Type(1) IP Protocol(1) Selector Length(2) Start Port(2) End Port(2)  (§3.13.1)
_TS = struct.Struct("!BBHHH")

_T_SK = PayloadType.SK.value
_T_SKF = PayloadType.SKF.value
_SEALED = frozenset((_T_SK, _T_SKF))
_TV_KEY_LENGTH = AF_TV | 14
_CRITICAL = 0x80

_PROTO_IKE, _PROTO_AH, _PROTO_ESP = 1, 2, 3
# Proposal SPI sizes: IKE 0 (IKE_SA_INIT) or 8 (rekey), AH/ESP 4 (RFC 7296 §3.3.1).
_PROPOSAL_SPI_SIZES = {_PROTO_IKE: (0, 8), _PROTO_AH: (4,), _PROTO_ESP: (4,)}
# Delete SPI sizes (RFC 7296 §3.11, 7296-19).
_DELETE_SPI_SIZE = {_PROTO_IKE: 0, _PROTO_AH: 4, _PROTO_ESP: 4}
_TS_LEN = {TsType.TS_IPV4_ADDR_RANGE.value: 16, TsType.TS_IPV6_ADDR_RANGE.value: 40}
_TS_TYPES = {t.value: t for t in TsType}
_NAMES = {t.value: t.name for t in PayloadType}



# Fast positional constructors for the decoders (see payloads.fast_constructor).
_new_SA = fast_constructor(SA)
_new_KE = fast_constructor(KE)
_new_IDi = fast_constructor(IDi)
_new_IDr = fast_constructor(IDr)
_new_CERT = fast_constructor(CERT)
_new_CERTREQ = fast_constructor(CERTREQ)
_new_AUTH = fast_constructor(AUTH)
_new_Nonce = fast_constructor(Nonce)
_new_Notify = fast_constructor(Notify)
_new_Delete = fast_constructor(Delete)
_new_VendorId = fast_constructor(VendorId)
_new_TSi = fast_constructor(TSi)
_new_TSr = fast_constructor(TSr)
_new_CP = fast_constructor(CP)
_new_EAP = fast_constructor(EAP)
_new_SK = fast_constructor(SK)
_new_SKF = fast_constructor(SKF)
_new_Unknown = fast_constructor(Unknown)
_new_Transform = fast_constructor(Transform)
_new_Proposal = fast_constructor(Proposal)


def payload_name(ptype: int) -> str:
    """'NONCE(40)' for log and error messages."""
    return f"{_NAMES.get(ptype, 'payload')}({ptype})"


def _short(what: str, need: int, have: int) -> InvalidSyntax:
    """The error for a payload body shorter than its fixed part."""
    return InvalidSyntax(f"{what}: body of {have} octets, need at least {need}")


# --------------------------------------------------------------------------- decoders
# Each takes (buf, start of body, end of body, Next Payload of this payload's header).


def _dec_sa(buf: bytes, off: int, end: int, _nxt: int) -> SA:
    """SA payload with its proposals and transforms (RFC 7296 §3.3.1-§3.3.5)."""
    proposals: list[Proposal] = []
    prev_num = 0
    while True:
        pi = len(proposals) + 1
        if end - off < 8:
            raise InvalidSyntax(
                f"SA: proposal #{pi} truncated ({end - off} octets left, need 8)"
            )
        last, _r, plen, num, proto, spisz, ntrans = _PROPOSAL.unpack_from(buf, off)
        if last != 0 and last != 2:
            raise InvalidSyntax(f"SA: proposal #{pi} Last Substruc {last}, must be 0 or 2")
        if plen < 8 + spisz:
            raise InvalidSyntax(
                f"SA: proposal #{pi} Proposal Length {plen} < 8 + SPI Size {spisz}"
            )
        pend = off + plen
        if pend > end:
            raise InvalidSyntax(
                f"SA: proposal #{pi} Proposal Length {plen} overruns the SA payload by "
                f"{pend - end} octets"
            )
        if num == 0 or (prev_num and num != prev_num + 1):
            raise InvalidSyntax(
                f"SA: proposal #{pi} Proposal Num {num}, expected "
                f"{prev_num + 1 if prev_num else 'at least 1'}"
            )
        sizes = _PROPOSAL_SPI_SIZES.get(proto)
        if sizes is not None and spisz not in sizes:
            raise InvalidSyntax(
                f"SA: proposal #{pi} SPI Size {spisz} invalid for protocol {proto}"
            )
        t = off + 8 + spisz
        spi = buf[off + 8 : t]
        transforms: list[Transform] = []
        for k in range(ntrans):
            if pend - t < 8:
                raise InvalidSyntax(
                    f"SA: proposal #{pi} transform #{k + 1} of {ntrans} truncated "
                    f"({pend - t} octets left in the proposal)"
                )
            tlast, _r1, tlen, ttype, _r2, tid = _TRANSFORM.unpack_from(buf, t)
            want = 0 if k == ntrans - 1 else 3
            if tlast != want:
                raise InvalidSyntax(
                    f"SA: proposal #{pi} transform #{k + 1} of {ntrans} Last Substruc "
                    f"{tlast}, expected {want}"
                )
            if tlen < 8:
                raise InvalidSyntax(
                    f"SA: proposal #{pi} transform #{k + 1} Transform Length {tlen} < 8"
                )
            tend = t + tlen
            if tend > pend:
                raise InvalidSyntax(
                    f"SA: proposal #{pi} transform #{k + 1} Transform Length {tlen} overruns "
                    f"the proposal by {tend - pend} octets"
                )
            if tlen == 8:
                transforms.append(_new_Transform(ttype, tid, None, ()))
                t = tend
                continue
            key_length: int | None = None
            attrs: list[tuple[int, bytes]] = []
            a = t + 8
            while a < tend:
                if tend - a < 4:
                    raise InvalidSyntax(
                        f"SA: proposal #{pi} transform #{k + 1} attribute truncated "
                        f"({tend - a} octets left, need 4)"
                    )
                atype, aval = _HH.unpack_from(buf, a)
                if atype & AF_TV:
                    if atype == _TV_KEY_LENGTH and key_length is None:
                        key_length = aval
                    else:
                        attrs.append((atype, buf[a + 2 : a + 4]))
                    a += 4
                else:
                    aend = a + 4 + aval
                    if aend > tend:
                        raise InvalidSyntax(
                            f"SA: proposal #{pi} transform #{k + 1} attribute {atype} "
                            f"Length {aval} overruns the transform by {aend - tend} octets"
                        )
                    attrs.append((atype, buf[a + 4 : aend]))
                    a = aend
            transforms.append(_new_Transform(ttype, tid, key_length, tuple(attrs) if attrs else ()))
            t = tend
        if t != pend:
            raise InvalidSyntax(
                f"SA: proposal #{pi} has {pend - t} octets after its {ntrans} transforms "
                f"(#Transforms {ntrans} does not match Proposal Length {plen})"
            )
        proposals.append(_new_Proposal(num, proto, spi, tuple(transforms)))
        prev_num = num
        off = pend
        if last == 0:
            if off != end:
                raise InvalidSyntax(
                    f"SA: {end - off} octets after the last proposal (#{pi}, Last Substruc 0)"
                )
            break
        if off == end:
            raise InvalidSyntax(
                f"SA: proposal #{pi} has Last Substruc 2 but no proposal follows"
            )
    if len(proposals) > 1 and proposals[0].num != 1:
        raise InvalidSyntax(
            f"SA: first of {len(proposals)} proposals has Proposal Num {proposals[0].num}, "
            "must be 1"
        )
    return _new_SA(tuple(proposals))


def _dec_ke(buf: bytes, off: int, end: int, _nxt: int) -> KE:
    """Key Exchange payload (RFC 7296 §3.4)."""
    if end - off < 4:
        raise _short("KE", 4, end - off)
    return _new_KE(_H.unpack_from(buf, off)[0], buf[off + 4 : end])


def _dec_idi(buf: bytes, off: int, end: int, _nxt: int) -> IDi:
    """Identification payload (RFC 7296 §3.5)."""
    if end - off < 4:
        raise _short("IDi", 4, end - off)
    return _new_IDi(buf[off], buf[off + 4 : end])


def _dec_idr(buf: bytes, off: int, end: int, _nxt: int) -> IDr:
    """Identification payload (RFC 7296 §3.5)."""
    if end - off < 4:
        raise _short("IDr", 4, end - off)
    return _new_IDr(buf[off], buf[off + 4 : end])


def _dec_cert(buf: bytes, off: int, end: int, _nxt: int) -> CERT:
    """Certificate payload (RFC 7296 §3.6)."""
    if end - off < 1:
        raise _short("CERT", 1, end - off)
    return _new_CERT(buf[off], buf[off + 1 : end])


def _dec_certreq(buf: bytes, off: int, end: int, _nxt: int) -> CERTREQ:
    """Certificate Request payload (RFC 7296 §3.7)."""
    if end - off < 1:
        raise _short("CERTREQ", 1, end - off)
    return _new_CERTREQ(buf[off], buf[off + 1 : end])


def _dec_auth(buf: bytes, off: int, end: int, _nxt: int) -> AUTH:
    """Authentication payload (RFC 7296 §3.8)."""
    if end - off < 4:
        raise _short("AUTH", 4, end - off)
    return _new_AUTH(buf[off], buf[off + 4 : end])


def _dec_nonce(buf: bytes, off: int, end: int, _nxt: int) -> Nonce:
    """Nonce payload: 16..256 octets (RFC 7296 §3.9, 7296-16)."""
    n = end - off
    if n < 16 or n > 256:
        raise InvalidSyntax(f"Nonce: {n} octets, must be 16..256")
    return _new_Nonce(buf[off:end])


def _dec_notify(buf: bytes, off: int, end: int, _nxt: int) -> Notify:
    """Notify payload (RFC 7296 §3.10); Protocol ID is not judged (ignored if no SPI)."""
    if end - off < 4:
        raise _short("Notify", 4, end - off)
    proto, spisz, ntype = _BBH.unpack_from(buf, off)
    d = off + 4 + spisz
    if d > end:
        raise InvalidSyntax(
            f"Notify type {ntype}: SPI Size {spisz} overruns the payload body of "
            f"{end - off} octets"
        )
    return _new_Notify(proto, ntype, buf[off + 4 : d], buf[d:end])


def _dec_delete(buf: bytes, off: int, end: int, _nxt: int) -> Delete:
    """Delete payload: SPI Size 0 for IKE, 4 for AH/ESP, #SPIs x size = body (§3.11)."""
    if end - off < 4:
        raise _short("Delete", 4, end - off)
    proto, spisz, count = _BBH.unpack_from(buf, off)
    want = _DELETE_SPI_SIZE.get(proto)
    if want is None:
        raise InvalidSyntax(f"Delete: Protocol ID {proto}, must be 1 (IKE), 2 (AH) or 3 (ESP)")
    if spisz != want:
        raise InvalidSyntax(f"Delete: SPI Size {spisz} for protocol {proto}, must be {want}")
    n = end - off - 4
    if spisz == 0:
        if count != 0 or n != 0:
            raise InvalidSyntax(
                f"Delete: IKE SA deletion with #SPIs {count} and {n} SPI octets, both must be 0"
            )
        return _new_Delete(proto, ())
    if count * spisz != n:
        raise InvalidSyntax(
            f"Delete: #SPIs {count} x SPI Size {spisz} != {n} octets of SPIs"
        )
    s = off + 4
    return _new_Delete(proto, tuple([buf[i : i + spisz] for i in range(s, end, spisz)]))


def _dec_vendor(buf: bytes, off: int, end: int, _nxt: int) -> VendorId:
    """Vendor ID payload (RFC 7296 §3.12)."""
    return _new_VendorId(buf[off:end])


def _dec_selectors(name: str, buf: bytes, off: int, end: int) -> tuple[TrafficSelector, ...]:
    """Traffic Selector payload body (RFC 7296 §3.13, §3.13.1, 7296-20)."""
    if end - off < 4:
        raise _short(name, 4, end - off)
    count = buf[off]
    if count == 0:
        raise InvalidSyntax(f"{name}: Number of TSs is 0")
    out: list[TrafficSelector] = []
    p = off + 4
    for i in range(count):
        if end - p < 8:
            raise InvalidSyntax(
                f"{name}: selector #{i + 1} of {count} truncated ({end - p} octets left)"
            )
        tstype, proto, slen, sport, eport = _TS.unpack_from(buf, p)
        want = _TS_LEN.get(tstype)
        if want is None:
            raise InvalidSyntax(f"{name}: selector #{i + 1} has unknown TS Type {tstype}")
        if slen != want:
            raise InvalidSyntax(
                f"{name}: selector #{i + 1} (TS Type {tstype}) Selector Length {slen}, must "
                f"be {want}"
            )
        q = p + want
        if q > end:
            raise InvalidSyntax(
                f"{name}: selector #{i + 1} overruns the payload by {q - end} octets"
            )
        alen = (want - 8) >> 1
        mid = p + 8 + alen
        out.append(
            TrafficSelector(_TS_TYPES[tstype], proto, sport, eport, buf[p + 8 : mid], buf[mid:q])
        )
        p = q
    if p != end:
        raise InvalidSyntax(
            f"{name}: {end - p} octets after {count} selectors (Number of TSs {count})"
        )
    return tuple(out)


def _dec_tsi(buf: bytes, off: int, end: int, _nxt: int) -> TSi:
    """TSi payload (RFC 7296 §3.13)."""
    return _new_TSi(_dec_selectors("TSi", buf, off, end))


def _dec_tsr(buf: bytes, off: int, end: int, _nxt: int) -> TSr:
    """TSr payload (RFC 7296 §3.13)."""
    return _new_TSr(_dec_selectors("TSr", buf, off, end))


def _dec_cp(buf: bytes, off: int, end: int, _nxt: int) -> CP:
    """Configuration payload; the attribute R bit is ignored (RFC 7296 §3.15, §3.15.1)."""
    if end - off < 4:
        raise _short("CP", 4, end - off)
    cfg_type = buf[off]
    attrs: list[tuple[int, bytes]] = []
    p = off + 4
    while p < end:
        if end - p < 4:
            raise InvalidSyntax(
                f"CP: attribute #{len(attrs) + 1} truncated ({end - p} octets left, need 4)"
            )
        atype, alen = _HH.unpack_from(buf, p)
        atype &= 0x7FFF
        q = p + 4 + alen
        if q > end:
            raise InvalidSyntax(
                f"CP: attribute #{len(attrs) + 1} (type {atype}) Length {alen} overruns the "
                f"payload by {q - end} octets"
            )
        attrs.append((atype, buf[p + 4 : q]))
        p = q
    return _new_CP(cfg_type, tuple(attrs))


def _dec_eap(buf: bytes, off: int, end: int, _nxt: int) -> EAP:
    """EAP payload holding one EAP message (RFC 7296 §3.16, RFC 3748 §4)."""
    n = end - off
    if n < 4:
        raise _short("EAP", 4, n)
    elen = _H.unpack_from(buf, off + 2)[0]
    if elen < 4 or elen > n:
        raise InvalidSyntax(f"EAP: EAP Length {elen} does not fit the {n}-octet payload body")
    return _new_EAP(buf[off:end])


def _dec_sk(buf: bytes, off: int, end: int, nxt: int) -> SK:
    """Encrypted payload, kept sealed (RFC 7296 §3.14)."""
    return _new_SK(nxt, buf[off:end])


def _dec_skf(buf: bytes, off: int, end: int, nxt: int) -> SKF:
    """Encrypted Fragment payload, kept sealed (RFC 7383 §2.5)."""
    if end - off < 4:
        raise _short("SKF", 4, end - off)
    num, total = _HH.unpack_from(buf, off)
    if num == 0 or total == 0 or num > total:
        raise InvalidSyntax(
            f"SKF: Fragment Number {num} / Total Fragments {total}, need 1 <= number <= total"
        )
    return _new_SKF(nxt, num, total, buf[off + 4 : end])


_DECODERS: dict[int, Callable[[bytes, int, int, int], Payload]] = {
    PayloadType.SA.value: _dec_sa,
    PayloadType.KE.value: _dec_ke,
    PayloadType.IDI.value: _dec_idi,
    PayloadType.IDR.value: _dec_idr,
    PayloadType.CERT.value: _dec_cert,
    PayloadType.CERTREQ.value: _dec_certreq,
    PayloadType.AUTH.value: _dec_auth,
    PayloadType.NONCE.value: _dec_nonce,
    PayloadType.NOTIFY.value: _dec_notify,
    PayloadType.DELETE.value: _dec_delete,
    PayloadType.VENDOR.value: _dec_vendor,
    PayloadType.TSI.value: _dec_tsi,
    PayloadType.TSR.value: _dec_tsr,
    PayloadType.SK.value: _dec_sk,
    PayloadType.CP.value: _dec_cp,
    PayloadType.EAP.value: _dec_eap,
    PayloadType.SKF.value: _dec_skf,
}


def decode_payloads(first_type: int, data: bytes | memoryview) -> list[Payload]:
    """Walk and decode a payload chain (RFC 7296 §3.2); SK/SKF must come last (§3.14).

    A memoryview is copied once into bytes; each field is then a single slice of it.
    """
    buf = data if type(data) is bytes else bytes(data)
    return _walk(buf, 0, first_type)


def _walk(buf: bytes, off: int, this: int, n: int = -1) -> list[Payload]:
    """Decode the chain in buf[off:n] starting with payload type `this` (RFC 7296 §3.2)."""
    if n < 0:
        n = len(buf)
    base = off
    out: list[Payload] = []
    append = out.append
    decoders = _DECODERS
    while this:
        if n - off < 4:
            raise InvalidSyntax(
                f"{payload_name(this)} at offset {off - base}: generic header truncated "
                f"({n - off} octets left, need 4)"
            )
        nxt, cflags, plen = _gen_unpack(buf, off)
        if plen < 4:
            raise InvalidSyntax(
                f"{payload_name(this)} at offset {off - base}: Payload Length {plen} < 4"
            )
        end = off + plen
        if end > n:
            raise InvalidSyntax(
                f"{payload_name(this)} at offset {off - base}: Payload Length {plen} "
                f"overruns the message by {end - n} octets"
            )
        dec = decoders.get(this)
        if dec is None:
            if cflags & _CRITICAL:
                raise UnsupportedCriticalPayload(this)
            append(_new_Unknown(this, False, buf[off + 4 : end]))
        else:
            append(dec(buf, off + 4, end, nxt))
            if this in _SEALED:
                if end != n:
                    raise InvalidSyntax(
                        f"{payload_name(this)} at offset {off - base} is not the last "
                        f"payload ({n - end} octets follow it)"
                    )
                return out
        off = end
        this = nxt
    if off != n:
        raise InvalidSyntax(
            f"{n - off} octets after the last payload (Next Payload 0 ends the chain at "
            f"offset {off - base})"
        )
    return out


# --------------------------------------------------------------------------- encoders


def _enc_transform(t: Transform, last: bool) -> bytes:
    """Transform substructure (RFC 7296 §3.3.2, §3.3.5)."""
    parts = []
    if t.key_length is not None:
        parts.append(_HH.pack(_TV_KEY_LENGTH, t.key_length))
    for atype, value in t.attrs:
        if atype & AF_TV:
            if len(value) != 2:
                raise ValueError(f"TV attribute {atype:#x} needs a 2-octet value")
            parts.append(_H.pack(atype) + value)
        else:
            parts.append(_HH.pack(atype, len(value)) + value)
    attrs = b"".join(parts)
    return _TRANSFORM.pack(0 if last else 3, 0, 8 + len(attrs), t.type, 0, t.id) + attrs


def _enc_sa(p: SA) -> bytes:
    """SA payload body (RFC 7296 §3.3.1)."""
    out = []
    nprop = len(p.proposals)
    for i, prop in enumerate(p.proposals):
        tr = prop.transforms
        nt = len(tr)
        body = b"".join([_enc_transform(t, k == nt - 1) for k, t in enumerate(tr)])
        spi = prop.spi
        out.append(
            _PROPOSAL.pack(
                0 if i == nprop - 1 else 2, 0, 8 + len(spi) + len(body), prop.num,
                prop.protocol, len(spi), nt,
            )
        )
        out.append(spi)
        out.append(body)
    return b"".join(out)


def _enc_ke(p: KE) -> bytes:
    """KE body: DH Group | RESERVED | data (RFC 7296 §3.4)."""
    return _HH.pack(p.group, 0) + p.data


def _enc_id(p: IDi | IDr) -> bytes:
    """ID body: ID Type | RESERVED(3) | data (RFC 7296 §3.5)."""
    return bytes((p.id_type, 0, 0, 0)) + p.data


def _enc_cert(p: CERT | CERTREQ) -> bytes:
    """CERT / CERTREQ body: Encoding | data (RFC 7296 §3.6, §3.7)."""
    return bytes((p.encoding,)) + p.data


def _enc_auth(p: AUTH) -> bytes:
    """AUTH body: Auth Method | RESERVED(3) | data (RFC 7296 §3.8)."""
    return bytes((p.method, 0, 0, 0)) + p.data


def _enc_data(p: Nonce | VendorId | EAP | SK | Unknown) -> bytes:
    """Opaque bodies: Nonce, V, EAP, SK, unknown (RFC 7296 §3.9, §3.12, §3.14, §3.16)."""
    return p.data


def _enc_notify(p: Notify) -> bytes:
    """Notify body: Protocol | SPI Size | Type | SPI | data (RFC 7296 §3.10)."""
    return _BBH.pack(p.protocol, len(p.spi), p.type) + p.spi + p.data


def _enc_delete(p: Delete) -> bytes:
    """Delete body; SPI Size from the protocol (7296-19) or from the SPIs given."""
    spis = p.spis
    size = len(spis[0]) if spis else _DELETE_SPI_SIZE.get(p.protocol, 0)
    if any(len(s) != size for s in spis):
        raise ValueError("Delete: all SPIs must have the same size")
    return _BBH.pack(p.protocol, size, len(spis)) + b"".join(spis)


def _enc_selectors(sels: tuple[TrafficSelector, ...]) -> bytes:
    """Traffic Selector payload body (RFC 7296 §3.13.1)."""
    out = [bytes((len(sels), 0, 0, 0))]
    for ts in sels:
        if 8 + len(ts.start_addr) + len(ts.end_addr) != _TS_LEN.get(ts.ts_type):
            raise ValueError(f"traffic selector {ts!r}: addresses do not fit TS Type")
        out.append(
            _TS.pack(
                ts.ts_type, ts.ip_proto, 8 + len(ts.start_addr) + len(ts.end_addr),
                ts.start_port, ts.end_port,
            )
        )
        out.append(ts.start_addr)
        out.append(ts.end_addr)
    return b"".join(out)


def _enc_ts(p: TSi | TSr) -> bytes:
    """TSi / TSr body (RFC 7296 §3.13)."""
    return _enc_selectors(p.selectors)


def _enc_cp(p: CP) -> bytes:
    """CP body: CFG Type | RESERVED(3) | attributes (RFC 7296 §3.15, §3.15.1)."""
    out = [bytes((p.cfg_type, 0, 0, 0))]
    for atype, value in p.attributes:
        out.append(_HH.pack(atype & 0x7FFF, len(value)))
        out.append(value)
    return b"".join(out)


def _enc_skf(p: SKF) -> bytes:
    """SKF body: Fragment Number | Total Fragments | data (RFC 7383 §2.5)."""
    return _HH.pack(p.fragment_number, p.total_fragments) + p.data


_ENCODERS: dict[type, Callable[..., bytes]] = {
    SA: _enc_sa,
    KE: _enc_ke,
    IDi: _enc_id,
    IDr: _enc_id,
    CERT: _enc_cert,
    CERTREQ: _enc_cert,
    AUTH: _enc_auth,
    Nonce: _enc_data,
    Notify: _enc_notify,
    Delete: _enc_delete,
    VendorId: _enc_data,
    TSi: _enc_ts,
    TSr: _enc_ts,
    CP: _enc_cp,
    EAP: _enc_data,
    SK: _enc_data,
    SKF: _enc_skf,
    Unknown: _enc_data,
}


def encode_payloads(payloads: Sequence[Payload]) -> tuple[int, bytes]:
    """Build a payload chain; returns (first payload type, octets) (RFC 7296 §3.2).

    The last payload's Next Payload is 0, except SK/SKF whose header carries the first
    inner payload type (§3.14); SK/SKF must be the last payload.
    """
    return _encode(payloads, 0)


def _encode(payloads: Sequence[Payload], tail: int) -> tuple[int, bytes]:
    """encode_payloads with `tail` as the last payload's Next Payload (for HDR, X, SK)."""
    n = len(payloads)
    if n == 0:
        return tail, b""
    types = [p.type if type(p) is Unknown else p.TYPE for p in payloads]  # type: ignore[union-attr]
    out: list[bytes] = []
    encoders = _ENCODERS
    i = 0
    try:
        for i, p in enumerate(payloads):
            cls = type(p)
            body = encoders[cls](p)
            flags = 0
            if cls is SK or cls is SKF:
                if i != n - 1:
                    raise ValueError(f"{cls.__name__} must be the last payload")
                nxt = p.next_type  # type: ignore[union-attr]
            else:
                nxt = types[i + 1] if i + 1 < n else tail
                if cls is Unknown and p.critical:  # type: ignore[union-attr]
                    flags = _CRITICAL
            out.append(_gen_pack(nxt, flags, 4 + len(body)))
            out.append(body)
    except (struct.error, OverflowError, TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"cannot encode payload #{i + 1} ({payloads[i]!r:.80}): {e}") from e
    return types[0], b"".join(out)


def parse_message(data: bytes) -> tuple[Header, list[Payload]]:
    """Parse an unprotected IKE message: header + payload chain (RFC 7296 §3.1, §3.2)."""
    buf = data if type(data) is bytes else bytes(data)
    hdr = parse_header(buf)
    return hdr, _walk(buf, HEADER_LEN, hdr.next_payload)


def build_message(
    spi_i: bytes,
    spi_r: bytes,
    exchange: int,
    flags: int,
    message_id: int,
    payloads: Sequence[Payload],
) -> bytes:
    """Build an unprotected IKE message, e.g. IKE_SA_INIT (RFC 7296 §3.1, §3.2)."""
    if len(spi_i) != 8 or len(spi_r) != 8:
        raise ValueError("IKE SPIs must be 8 octets each")
    first, body = encode_payloads(payloads)
    return (
        HEADER.pack(
            spi_i, spi_r, first, IKEV2_VERSION, exchange, flags, message_id,
            HEADER_LEN + len(body),
        )
        + body
    )
