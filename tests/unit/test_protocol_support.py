"""Shared helpers for the protocol tests (no tests here): test crypters built directly on
`cryptography`, a stdlib pcap/pcapng reader, and the IKE keys charon logged."""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from pathlib import Path
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ikev2.errors import IntegrityError

CAPTURES = Path("/work/shared/interop/captures")
VECTORS = Path("/work/shared/rfc/vectors.md")


class GcmCrypter:
    """ENCR_AES_GCM_16 for IKE (RFC 5282 §5): key | 4-octet salt, 8-octet IV, 16-octet ICV."""

    iv_size = 8
    block_size = 1
    icv_size = 16

    def __init__(self, keymat: bytes) -> None:
        self._aead = AESGCM(keymat[:-4])
        self._salt = keymat[-4:]

    def seal(self, aad: bytes, iv: bytes, plaintext: bytes) -> bytes:
        return self._aead.encrypt(self._salt + iv, plaintext, aad)

    def open(self, aad: bytes, iv: bytes, ciphertext_and_icv: bytes) -> bytes:
        try:
            return self._aead.decrypt(self._salt + iv, ciphertext_and_icv, aad)
        except InvalidTag:
            raise IntegrityError("AES-GCM tag mismatch") from None


class CbcHmacCrypter:
    """ENCR_AES_CBC + AUTH_HMAC_SHA2_256_128 (RFC 7296 §3.14, RFC 4868): MAC-then-decrypt."""

    iv_size = 16
    block_size = 16
    icv_size = 16

    def __init__(self, enc_key: bytes, mac_key: bytes) -> None:
        self._enc_key = enc_key
        self._mac_key = mac_key

    def _icv(self, data: bytes) -> bytes:
        return hmac.new(self._mac_key, data, hashlib.sha256).digest()[:16]

    def seal(self, aad: bytes, iv: bytes, plaintext: bytes) -> bytes:
        enc = Cipher(algorithms.AES(self._enc_key), modes.CBC(iv)).encryptor()
        ct = enc.update(plaintext) + enc.finalize()
        return ct + self._icv(aad + iv + ct)

    def open(self, aad: bytes, iv: bytes, ciphertext_and_icv: bytes) -> bytes:
        ct, icv = ciphertext_and_icv[:-16], ciphertext_and_icv[-16:]
        if not hmac.compare_digest(icv, self._icv(aad + iv + ct)):
            raise IntegrityError("HMAC-SHA2-256-128 ICV mismatch")
        dec = Cipher(algorithms.AES(self._enc_key), modes.CBC(iv)).decryptor()
        return dec.update(ct) + dec.finalize()


# ------------------------------------------------------------------------- captures


class IkeDatagram(NamedTuple):
    frame: int  # 1-based, as tshark numbers frames
    sport: int
    dport: int
    ike: bytes  # the IKE message, non-ESP marker removed on port 4500


_PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",
                b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}


def _frames(raw: bytes) -> list[tuple[int, bytes]]:
    """(link type, frame) of every packet of a libpcap or pcapng file."""
    out: list[tuple[int, bytes]] = []
    e = _PCAP_MAGICS.get(raw[:4])
    if e is not None:  # libpcap
        linktype = struct.unpack_from(e + "I", raw, 20)[0]
        off = 24
        while off + 16 <= len(raw):
            incl = struct.unpack_from(e + "I", raw, off + 8)[0]
            out.append((linktype, raw[off + 16 : off + 16 + incl]))
            off += 16 + incl
        return out
    if raw[:4] != b"\x0a\x0d\x0d\x0a":
        raise ValueError("neither pcap nor pcapng")
    e = "<"
    links: list[int] = []
    off = 0
    while off + 12 <= len(raw):
        btype = struct.unpack_from(e + "I", raw, off)[0]
        if btype == 0x0A0D0D0A:  # Section Header Block: byte order, new interface list
            e = "<" if raw[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        blen = struct.unpack_from(e + "I", raw, off + 4)[0]
        if btype == 1:  # Interface Description Block
            links.append(struct.unpack_from(e + "H", raw, off + 8)[0])
        elif btype == 6:  # Enhanced Packet Block
            ifid, _hi, _lo, caplen, _orig = struct.unpack_from(e + "IIIII", raw, off + 8)
            out.append((links[ifid], raw[off + 28 : off + 28 + caplen]))
        elif btype == 3:  # Simple Packet Block
            orig = struct.unpack_from(e + "I", raw, off + 8)[0]
            out.append((links[0], raw[off + 12 : off + 12 + min(orig, blen - 16)]))
        off += blen
    return out


def ike_datagrams(path: Path) -> list[IkeDatagram]:
    """Every IKE message on UDP 500/4500 (ESP-in-UDP and NAT keepalives skipped)."""
    result: list[IkeDatagram] = []
    for n, (linktype, frame) in enumerate(_frames(path.read_bytes()), 1):
        if linktype == 1:  # Ethernet (+ VLAN tags)
            proto, p = struct.unpack_from("!H", frame, 12)[0], 14
            while proto in (0x8100, 0x88A8):
                proto, p = struct.unpack_from("!H", frame, p + 2)[0], p + 4
        elif linktype == 113:  # Linux cooked v1
            proto, p = struct.unpack_from("!H", frame, 14)[0], 16
        elif linktype == 276:  # Linux cooked v2
            proto, p = struct.unpack_from("!H", frame, 0)[0], 20
        else:
            raise ValueError(f"frame {n}: link type {linktype} not handled")
        if proto == 0x0800:
            if frame[p + 9] != 17:
                continue
            p += (frame[p] & 0x0F) * 4
        elif proto == 0x86DD:
            if frame[p + 6] != 17:
                continue
            p += 40
        else:
            continue
        sport, dport, ulen = struct.unpack_from("!HHH", frame, p)
        payload = frame[p + 8 : p + ulen]
        if 4500 in (sport, dport):
            if payload[:4] != b"\x00\x00\x00\x00":
                continue  # ESP in UDP, or a keepalive
            payload = payload[4:]
        elif 500 not in (sport, dport):
            continue
        result.append(IkeDatagram(n, sport, dport, payload))
    return result


def charon_keys(log: Path) -> dict[str, bytes]:
    """The `Sk_xx secret => N bytes` hex dumps of a charon log (LOGKEYS=1)."""
    keys: dict[str, bytes] = {}
    lines = log.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"(Sk_\w+) secret => (\d+) bytes", line)
        if not m:
            continue
        size = int(m.group(2))
        octets: list[str] = []
        j = i + 1
        while len(octets) < size:
            dump = re.sub(r"^.*?\s\d+: ", "", lines[j])[:48]
            octets += re.findall(r"[0-9A-F]{2}", dump)
            j += 1
        keys[m.group(1)] = bytes.fromhex("".join(octets[:size]))
    return keys


def vector(vid: str, field: str) -> bytes:
    """A hex field of one ```vector block of vectors.md (continuation lines joined)."""
    text = VECTORS.read_text()
    block = text[text.index(f"id: {vid}\n") :]
    block = block[: block.index("```")]
    m = re.search(rf"^{field}: (.*(?:\n {{4}}.*)*)", block, re.M)
    assert m, f"{vid}: no {field}"
    return bytes.fromhex(re.sub(r"\s", "", m.group(1)))
