"""Golden inputs: strongSwan captures in /work/shared/interop/captures (peer.sh capture).

For every capture NAME.pcap (pcapng or pcap, read with the stdlib): take every IKE message
(UDP 500, or UDP 4500 after the non-ESP marker; ESP and NAT keepalives skipped), parse it
with the codec, decrypt SK/SKF with the keys the A-side charon logged (NAME-charon-a.log,
"Sk_ei secret => ..." and the hex dump after it), reassemble SKF fragments (RFC 7383), and
compare the sequence of payload types (and notify types) of each message with tshark's
decryption of the same frame (NAME-decrypted.txt, `tshark -V`). The PSK capture's two AUTH
payloads are checked against RFC 7296 §2.15 with the peer.sh PSK.

Decryption runs twice: with a reference AES-GCM crypter written here on `cryptography`
(tests the codec alone) and with the crypto layer's `make_sk_crypter` (tests both).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import ipaddress
import os
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CAPTURES = Path(os.environ.get("IKEV2D_CAPTURES", "/work/shared/interop/captures"))
PSK = b"peer.sh test psk, not a secret"
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
NATT_PORT = 4500
IKE_PORT = 500

T_SA, T_IDI, T_IDR, T_AUTH, T_NONCE, T_NOTIFY = 33, 35, 36, 39, 40, 41
T_SK, T_SKF = 46, 53
SUBSTRUCTURES = {2, 3}  # Proposal and Transform lines in the dump are not payloads
ENCR_AES_GCM_16 = 20
PRF_HMAC_SHA2_256 = 5
AUTH_SHARED_KEY_MIC = 2

# ------------------------------------------------------------------------ pcap / pcapng


@dataclass
class Frame:
    number: int  # 1-based, as tshark counts
    linktype: int
    data: bytes


def read_capture(path: Path) -> list[Frame]:
    """Classic pcap (µs or ns, either byte order) or pcapng (EPB/SPB/OPB blocks)."""
    raw = path.read_bytes()
    magic = raw[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        return list(_read_pcapng(raw))
    for endian in ("<", ">"):
        (m,) = struct.unpack(endian + "I", magic)
        if m in (0xA1B2C3D4, 0xA1B23C4D):
            return list(_read_pcap(raw, endian))
    raise ValueError(f"{path}: not a pcap or pcapng file (magic {magic.hex()})")


def _read_pcap(raw: bytes, e: str) -> Iterator[Frame]:
    linktype = struct.unpack_from(e + "I", raw, 20)[0] & 0x0FFFFFFF
    off, n = 24, 0
    while off + 16 <= len(raw):
        _, _, incl, _ = struct.unpack_from(e + "IIII", raw, off)
        n += 1
        yield Frame(n, linktype, raw[off + 16 : off + 16 + incl])
        off += 16 + incl


def _read_pcapng(raw: bytes) -> Iterator[Frame]:
    off, n, e = 0, 0, "<"
    linktypes: list[int] = []
    while off + 12 <= len(raw):
        if raw[off : off + 4] == b"\x0a\x0d\x0d\x0a":  # Section Header Block
            bom = raw[off + 8 : off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes = []
        btype, blen = struct.unpack_from(e + "II", raw, off)
        if blen < 12 or off + blen > len(raw):
            raise ValueError(f"pcapng: bad block length {blen} at {off}")
        body = raw[off + 8 : off + blen - 4]
        if btype == 1:  # Interface Description Block
            linktypes.append(struct.unpack_from(e + "H", body, 0)[0])
        elif btype == 6:  # Enhanced Packet Block
            ifid, _, _, caplen, _ = struct.unpack_from(e + "IIIII", body, 0)
            n += 1
            yield Frame(n, linktypes[ifid], body[20 : 20 + caplen])
        elif btype == 3:  # Simple Packet Block (interface 0, snaplen-limited)
            (origlen,) = struct.unpack_from(e + "I", body, 0)
            n += 1
            yield Frame(n, linktypes[0], body[4 : 4 + origlen])
        elif btype == 2:  # obsolete Packet Block
            ifid, _, _, _, caplen, _ = struct.unpack_from(e + "HHIIII", body, 0)
            n += 1
            yield Frame(n, linktypes[ifid], body[20 : 20 + caplen])
        off += blen


@dataclass
class Udp:
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


_V6_EXT = {0, 43, 60}  # hop-by-hop, routing, destination options


def decode_udp(frame: Frame) -> Udp | None:
    """Ethernet (with 802.1Q), Linux cooked or raw IP → UDP; None for anything else."""
    d = frame.data
    if frame.linktype == LINKTYPE_ETHERNET:
        off, ethertype = 14, struct.unpack_from("!H", d, 12)[0]
        while ethertype in (0x8100, 0x88A8):
            ethertype = struct.unpack_from("!H", d, off + 2)[0]
            off += 4
    elif frame.linktype == LINKTYPE_LINUX_SLL:
        off, ethertype = 16, struct.unpack_from("!H", d, 14)[0]
    elif frame.linktype == LINKTYPE_RAW:
        off, ethertype = 0, {4: 0x0800, 6: 0x86DD}.get(d[0] >> 4, 0)
    else:
        raise ValueError(f"frame {frame.number}: unsupported link type {frame.linktype}")
    if ethertype == 0x0800:
        ihl = (d[off] & 0x0F) * 4
        proto = d[off + 9]
        frag = struct.unpack_from("!H", d, off + 6)[0]
        if proto != 17 or frag & 0x3FFF:  # not UDP, or an IP fragment
            return None
        src = str(ipaddress.IPv4Address(d[off + 12 : off + 16]))
        dst = str(ipaddress.IPv4Address(d[off + 16 : off + 20]))
        off += ihl
    elif ethertype == 0x86DD:
        nxt = d[off + 6]
        src = str(ipaddress.IPv6Address(d[off + 8 : off + 24]))
        dst = str(ipaddress.IPv6Address(d[off + 24 : off + 40]))
        off += 40
        while nxt in _V6_EXT:
            nxt, hlen = d[off], (d[off + 1] + 1) * 8
            off += hlen
        if nxt != 17:
            return None
    else:
        return None
    sport, dport, ulen = struct.unpack_from("!HHH", d, off)
    return Udp(src, sport, dst, dport, d[off + 8 : off + ulen])


@dataclass
class CapturedIke:
    frame: int
    udp: Udp
    data: bytes  # the IKE message, non-ESP marker removed


def ike_messages(frames: list[Frame]) -> list[CapturedIke]:
    out = []
    for f in frames:
        u = decode_udp(f)
        if u is None:
            continue
        if NATT_PORT in (u.sport, u.dport):
            # RFC 3948 §2.2: non-ESP marker = 4 zero octets; 0xFF alone = NAT keepalive;
            # anything else is ESP (first 4 octets = a non-zero SPI)
            if len(u.payload) < 4 or u.payload[:4] != b"\0\0\0\0":
                continue
            out.append(CapturedIke(f.number, u, u.payload[4:]))
        elif IKE_PORT in (u.sport, u.dport):
            out.append(CapturedIke(f.number, u, u.payload))
    return out


# ------------------------------------------------------------------------ charon log


def parse_charon_keys(text: str) -> list[dict[str, bytes]]:
    """charon (ike >= 4) logs "<conn|N> Sk_ei secret => 20 bytes @ 0x..." then hex-dump
    lines "<conn|N>    0: 75 49 ...  ascii". → one dict per IKE SA unique id, in log order
    (a later derivation for the same id, e.g. after a rekey, replaces the earlier one)."""
    head = re.compile(r"<[^|>]*\|(\d+)> (Sk_[a-z]+) secret => (\d+) bytes")
    dump = re.compile(r"<[^|>]*\|(\d+)>\s+\d+: ((?:[0-9A-Fa-f]{2} )+)")
    keys: dict[str, dict[str, bytearray]] = {}
    want: dict[tuple[str, str], int] = {}
    cur: tuple[str, str] | None = None
    for line in text.splitlines():
        m = head.search(line)
        if m:
            cur = (m.group(1), m.group(2))
            keys.setdefault(cur[0], {})[cur[1]] = bytearray()
            want[cur] = int(m.group(3))
            continue
        m = dump.search(line)
        if m and cur is not None and m.group(1) == cur[0]:
            buf = keys[cur[0]][cur[1]]
            buf += bytes.fromhex(m.group(2))[: want[cur] - len(buf)]
            continue
        cur = None
    for uid, d in keys.items():
        for name, v in d.items():
            assert len(v) == want[(uid, name)], f"IKE SA {uid}: {name} dump truncated"
    return [{k: bytes(v) for k, v in d.items()} for d in keys.values()]


# ------------------------------------------------------------------------ tshark -V dump


@dataclass
class DumpMessage:
    frame: int
    exchange: int
    message_id: int
    payloads: list[tuple[int, int | None]] = field(default_factory=list)


_FRAME = re.compile(r"^Frame (\d+):", re.M)
_PAYLOAD = re.compile(r"^\s+Payload: .+? \((\d+)\)(?: # \d+)?(?: - \S+)?$")
_NOTIFY_TYPE = re.compile(r"^\s+Notify Message Type: .*\((\d+)\)$")


def parse_dump(text: str) -> dict[int, DumpMessage]:
    """tshark -V of the IKE frames → per frame: exchange, message ID and the flat list of
    payloads (outer, then the decrypted/reassembled inner ones) with notify types."""
    out: dict[int, DumpMessage] = {}
    starts = [(m.start(), int(m.group(1))) for m in _FRAME.finditer(text)]
    for i, (pos, num) in enumerate(starts):
        block = text[pos : starts[i + 1][0] if i + 1 < len(starts) else len(text)]
        ex = re.search(r"^    Exchange type: .*\((\d+)\)$", block, re.M)
        mid = re.search(r"^    Message ID: (0x[0-9a-f]+)$", block, re.M)
        assert ex and mid, f"frame {num}: no ISAKMP header in the dump"
        msg = DumpMessage(num, int(ex.group(1)), int(mid.group(1), 16))
        for line in block.splitlines():
            m = _PAYLOAD.match(line)
            if m:
                ptype = int(m.group(1))
                if ptype not in SUBSTRUCTURES:
                    msg.payloads.append((ptype, None))
                continue
            m = _NOTIFY_TYPE.match(line)
            if m:
                assert msg.payloads and msg.payloads[-1] == (T_NOTIFY, None), line
                msg.payloads[-1] = (T_NOTIFY, int(m.group(1)))
        out[num] = msg
    return out


# ------------------------------------------------------------------------ crypters


class RefAesGcm:
    """AES-GCM with a 16-octet ICV for SK (RFC 5282): key = K | 4-octet salt, 8-octet IV."""

    iv_size = 8
    block_size = 1
    icv_size = 16

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key[:-4])
        self._salt = key[-4:]

    def seal(self, aad: bytes, iv: bytes, plaintext: bytes) -> bytes:
        return self._aead.encrypt(self._salt + iv, plaintext, aad)

    def open(self, aad: bytes, iv: bytes, ciphertext_and_icv: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._salt + iv, ciphertext_and_icv, aad)
        except InvalidTag as e:
            from ikev2.errors import IntegrityError

            raise IntegrityError("reference AES-GCM: bad ICV") from e


def ref_crypter(key: bytes) -> Any:
    return RefAesGcm(key)


def _crypto(name: str) -> Any:
    """A crypto-layer function: from `ikev2.crypto` if it re-exports it, else from the
    submodule that defines it; None if not there (yet)."""
    for modname in ("ikev2.crypto", *_CRYPTO_HOMES.get(name, ())):
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    return None


_CRYPTO_HOMES = {
    "make_sk_crypter": ("ikev2.crypto.sk",),
    "get_encr": ("ikev2.crypto.encr",),
    "get_prf": ("ikev2.crypto.prf",),
    "signed_octets": ("ikev2.crypto.auth",),
    "psk_auth": ("ikev2.crypto.auth",),
}


def layer_crypter(key: bytes) -> Any:
    """The crypto layer's SK crypter for AES-GCM-16 with len(key)-4 octets of key."""
    make, get_encr = _crypto("make_sk_crypter"), _crypto("get_encr")
    if make is None or get_encr is None:
        pytest.skip("crypto layer (make_sk_crypter, get_encr) not there yet")
    return make(get_encr(ENCR_AES_GCM_16, (len(key) - 4) * 8), key, None, b"")


CRYPTERS: dict[str, Callable[[bytes], Any]] = {"reference": ref_crypter, "layer": layer_crypter}


# ------------------------------------------------------------------------ the checks


def capture_names() -> list[str]:
    if not CAPTURES.is_dir():
        return []
    return sorted(p.stem for p in CAPTURES.glob("*.pcap"))


def _describe(p: Any) -> tuple[int, int | None]:
    from ikev2.protocol.payloads import Notify, Unknown

    if isinstance(p, Notify):
        return (T_NOTIFY, p.type)
    if isinstance(p, Unknown):
        return (p.type, None)
    return (int(p.TYPE), None)


@dataclass
class Decoded:
    frame: int
    header: Any
    payloads: list[tuple[int, int | None]]  # outer, then inner (what tshark shows)
    inner: list[Any]  # decrypted payload objects (empty for IKE_SA_INIT / fragment 1..n-1)
    outer: list[Any]


def decode_capture(name: str, make_crypter: Callable[[bytes], Any]) -> list[Decoded]:
    from ikev2.protocol import SK, SKF, parse_message, reassemble, unprotect, unprotect_fragment

    msgs = ike_messages(read_capture(CAPTURES / f"{name}.pcap"))
    keysets = parse_charon_keys((CAPTURES / f"{name}-charon-a.log").read_text(errors="replace"))
    # the log has one key set per IKE SA, in the order the SAs were created
    spis: list[bytes] = []
    for m in msgs:
        if m.data[:8] not in spis:
            spis.append(m.data[:8])
    assert len(keysets) >= len(spis), f"{name}: {len(spis)} IKE SAs, keys for {len(keysets)}"
    keys = dict(zip(spis, keysets, strict=False))
    crypters: dict[tuple[bytes, bool], Any] = {}
    pending: dict[tuple[bytes, int, bool], list[Any]] = {}
    out = []
    for m in msgs:
        hdr, outer = parse_message(m.data)
        described = [_describe(p) for p in outer]
        inner: list[Any] = []
        last = outer[-1] if outer else None
        if isinstance(last, SK | SKF):
            k = keys[hdr.spi_i]
            ck = (hdr.spi_i, hdr.is_initiator)
            if ck not in crypters:
                crypters[ck] = make_crypter(k["Sk_ei"] if hdr.is_initiator else k["Sk_er"])
            if isinstance(last, SK):
                inner = unprotect(m.data, hdr, crypters[ck])[len(outer) - 1 :]
            else:
                frag = unprotect_fragment(m.data, hdr, crypters[ck])
                assert frag.total_fragments >= 2
                fk = (hdr.spi_i, hdr.message_id, hdr.is_response)
                pending.setdefault(fk, []).append(frag)
                if len({f.fragment_number for f in pending[fk]}) == frag.total_fragments:
                    inner = reassemble(pending.pop(fk))
            described += [_describe(p) for p in inner]
        out.append(Decoded(m.frame, hdr, described, inner, outer))
    assert not pending, f"{name}: fragments never completed: {list(pending)}"
    return out


needs_captures = pytest.mark.skipif(not capture_names(), reason=f"no captures in {CAPTURES}")


@needs_captures
@pytest.mark.parametrize("name", capture_names())
def test_capture_framing(name: str) -> None:
    frames = read_capture(CAPTURES / f"{name}.pcap")
    assert frames and all(f.linktype == LINKTYPE_ETHERNET for f in frames), (
        f"{name}: expected Ethernet frames (captured on the veth)"
    )
    msgs = ike_messages(frames)
    dump = parse_dump((CAPTURES / f"{name}-decrypted.txt").read_text())
    # every frame tshark decoded as ISAKMP is one we took as IKE, and nothing else
    assert [m.frame for m in msgs] == sorted(dump)
    for m in msgs:
        assert len(m.data) == struct.unpack_from("!I", m.data, 24)[0]  # IKE Length field
    # after IKE_SA_INIT both sides moved to 4500 (charon's encap=yes fakes a NAT)
    assert all(m.udp.sport == m.udp.dport == IKE_PORT for m in msgs[:2])
    assert all(m.udp.sport == m.udp.dport == NATT_PORT for m in msgs[2:])


def test_charon_key_log_parser() -> None:
    log = (
        "2026-11-22T09:53:09.607 09[IKE] <psk|1> Sk_ei secret => 20 bytes @ 0x7f6140010ec0\n"
        "2026-11-22T09:53:09.607 09[IKE] <psk|1>    0: 75 49 2E 6A A7 20 60 FA 27 1C 06 D9 "
        "77 D6 4A 48  uI.j. `.'...w.JH\n"
        "2026-11-22T09:53:09.607 09[IKE] <psk|1>   16: 88 D6 94 51                    ...Q\n"
        "2026-11-22T09:53:09.607 09[IKE] <psk|1> Sk_er secret => 2 bytes @ 0x7f6140010ed4\n"
        "2026-11-22T09:53:09.607 09[IKE] <psk|1>    0: 35 13  5.\n"
        "2026-11-22T09:53:09.607 09[IKE] <psk|1> reinitiating already active tasks\n"
    )
    (k,) = parse_charon_keys(log)
    assert k["Sk_ei"] == bytes.fromhex("75492e6aa72060fa271c06d977d64a4888d69451")
    assert k["Sk_er"] == b"\x35\x13"


@needs_captures
@pytest.mark.parametrize("crypter", sorted(CRYPTERS))
@pytest.mark.parametrize("name", capture_names())
def test_payloads_match_tshark(name: str, crypter: str) -> None:
    dump = parse_dump((CAPTURES / f"{name}-decrypted.txt").read_text())
    decoded = decode_capture(name, CRYPTERS[crypter])
    assert [d.frame for d in decoded] == sorted(dump)
    for d in decoded:
        want = dump[d.frame]
        assert (d.header.exchange, d.header.message_id) == (want.exchange, want.message_id)
        assert d.payloads == want.payloads, f"{name} frame {d.frame}"
    # the captures hold what they promise: PSK = SK only, cert = IKE_AUTH in 2 fragments
    kinds = {type(d.outer[-1]).__name__ for d in decoded if d.header.exchange != 34}
    assert kinds == ({"SKF", "SK"} if name.startswith("cert") else {"SK"})


def _prf(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def _psk_capture() -> str | None:
    names = [n for n in capture_names() if n.startswith("psk")]
    return names[0] if names else None


@dataclass
class AuthCase:
    real_message: bytes  # the IKE_SA_INIT message this side sent
    nonce_peer: bytes  # the other side's Nonce data
    id_rest: bytes  # RestOfInit/RespIDPayload
    sk_p: bytes  # SK_pi or SK_pr
    auth: Any  # the AUTH payload this side sent


def _auth_cases(name: str) -> dict[str, AuthCase]:
    from ikev2.protocol import AUTH, IDi, IDr, Nonce

    decoded = decode_capture(name, ref_crypter)
    msgs = {m.frame: m for m in ike_messages(read_capture(CAPTURES / f"{name}.pcap"))}
    (keys,) = parse_charon_keys((CAPTURES / f"{name}-charon-a.log").read_text(errors="replace"))
    init_req, init_resp = decoded[0], decoded[1]
    assert init_req.header.exchange == init_resp.header.exchange == 34
    auth_req = next(d for d in decoded if d.header.exchange == 35 and not d.header.is_response)
    auth_resp = next(d for d in decoded if d.header.exchange == 35 and d.header.is_response)

    def one(ps: list[Any], cls: type) -> Any:
        (p,) = [p for p in ps if isinstance(p, cls)]
        return p

    ni = one(init_req.outer, Nonce).data
    nr = one(init_resp.outer, Nonce).data
    return {
        "initiator": AuthCase(
            msgs[init_req.frame].data, nr, one(auth_req.inner, IDi).rest(), keys["Sk_pi"],
            one(auth_req.inner, AUTH),
        ),
        "responder": AuthCase(
            msgs[init_resp.frame].data, ni, one(auth_resp.inner, IDr).rest(), keys["Sk_pr"],
            one(auth_resp.inner, AUTH),
        ),
    }  # fmt: skip


@pytest.mark.skipif(_psk_capture() is None, reason="no PSK capture")
@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_psk_auth_reference(side: str) -> None:
    """RFC 7296 §2.15 computed here (HMAC-SHA-256 was the PRF): proves the capture, the
    logged SK_p keys and our parsing agree before the crypto layer is judged on them."""
    name = _psk_capture()
    assert name is not None
    c = _auth_cases(name)[side]
    assert c.auth.method == AUTH_SHARED_KEY_MIC
    octets = c.real_message + c.nonce_peer + _prf(c.sk_p, c.id_rest)
    assert c.auth.data == _prf(_prf(PSK, b"Key Pad for IKEv2"), octets)


@pytest.mark.skipif(_psk_capture() is None, reason="no PSK capture")
@pytest.mark.parametrize("side", ["initiator", "responder"])
def test_psk_auth_crypto_layer(side: str) -> None:
    """The same AUTH values through the crypto layer's signed_octets/psk_auth."""
    get_prf, signed_octets, psk_auth = (
        _crypto(n) for n in ("get_prf", "signed_octets", "psk_auth")
    )
    if get_prf is None or signed_octets is None or psk_auth is None:
        pytest.skip("crypto layer has no get_prf/signed_octets/psk_auth yet")
    name = _psk_capture()
    assert name is not None
    c = _auth_cases(name)[side]
    prf = get_prf(PRF_HMAC_SHA2_256)
    # signed_octets(real_message, peer_nonce, prf, sk_p, id_rest) (ikev2/crypto/auth.py)
    octets = signed_octets(c.real_message, c.nonce_peer, prf, c.sk_p, c.id_rest)
    assert octets == c.real_message + c.nonce_peer + _prf(c.sk_p, c.id_rest)
    assert psk_auth(prf, PSK, octets) == c.auth.data
