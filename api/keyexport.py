"""Secrets leave the daemon here, in two forms:

- Wireshark key files: `esp_sa` (ESP SAs, "ESP SAs" table of the ESP dissector) and
  `ikev2_decryption_table` (IKE SAs, ISAKMP protocol preferences). Both are UAT files: one
  line per entry, comma-separated quoted fields, in the order the dissectors' tables show
  (checked against Wireshark 4.0). Copy them into a Wireshark profile directory, or pass
  `-o "uat:esp_sa:..."` lines to tshark. Served only with `api.key_export = true`.
- The keys of one CHILD_SA as JSON (`child_keys_body`, `GET /child-sas/{id}/keys`), for a
  local agent that applies the SA itself (the Mobile IPv6 agents' ESP on the MH-over-UDP
  path, mobility/protection.py). Served only on the UNIX socket, with
  `api.child_sa_keys = true` (or `key_export`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.core_adapter import IkeKeyMaterial
from ikev2.kernel.base import ChildSaSpec
from ikev2.protocol.enums import EncrId, IntegId

ESP_FILE = "esp_sa"
IKE_FILE = "ikev2_decryption_table"
# a plain file name: no directory part, no leading dot, nothing a shell or Wireshark minds
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

_ESP_ENCR = {
    EncrId.NULL: "NULL",
    EncrId.AES_CBC: "AES-CBC [RFC3602]",
    EncrId.AES_CTR: "AES-CTR [RFC3686]",
    EncrId.AES_GCM_8: "AES-GCM with 8 octet ICV [RFC4106]",
    EncrId.AES_GCM_12: "AES-GCM with 12 octet ICV [RFC4106]",
    EncrId.AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
}
_ESP_INTEG = {
    0: "NULL",
    IntegId.HMAC_SHA1_96: "HMAC-SHA-1-96 [RFC2404]",
    IntegId.HMAC_SHA2_256_128: "HMAC-SHA-256-128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC-SHA-384-192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC-SHA-512-256 [RFC4868]",
}
_IKE_INTEG = {
    0: "NONE [RFC4306]",
    IntegId.HMAC_SHA1_96: "HMAC_SHA1_96 [RFC2404]",
    IntegId.HMAC_SHA2_256_128: "HMAC_SHA2_256_128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC_SHA2_384_192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC_SHA2_512_256 [RFC4868]",
}
_IKE_AEAD = {
    EncrId.AES_GCM_8: ("GCM", 8), EncrId.AES_GCM_12: ("GCM", 12),
    EncrId.AES_GCM_16: ("GCM", 16), EncrId.AES_CCM_8: ("CCM", 8),
    EncrId.AES_CCM_12: ("CCM", 12), EncrId.AES_CCM_16: ("CCM", 16),
}


@dataclass(frozen=True, slots=True)
class KeyFiles:
    esp: str
    ike: str
    esp_sas: int  # lines written (one per direction of a CHILD_SA)
    ike_sas: int
    skipped: tuple[str, ...]  # why an SA is missing from a file


def _q(*fields: str) -> str:
    return ",".join(f'"{f}"' for f in fields) + "\n"


def esp_lines(spec: ChildSaSpec) -> tuple[str, str | None]:
    """The two `esp_sa` lines (inbound, outbound) of a CHILD_SA, or ("", reason)."""
    encr = _ESP_ENCR.get(spec.encr_id)  # type: ignore[call-overload]
    integ = _ESP_INTEG.get(spec.integ_id)  # type: ignore[call-overload]
    if encr is None or integ is None:
        return "", (f"ESP SPI {spec.spi_in:08x}/{spec.spi_out:08x}: Wireshark 4.0 cannot "
                    f"decrypt encr {spec.encr_id} / integ {spec.integ_id}")
    proto = "IPv6" if ipaddress.ip_address(spec.local).version == 6 else "IPv4"
    out = []
    for src, dst, spi, ekey, ikey in (
        (spec.remote, spec.local, spec.spi_in, spec.encr_key_in, spec.integ_key_in),
        (spec.local, spec.remote, spec.spi_out, spec.encr_key_out, spec.integ_key_out),
    ):
        out.append(_q(proto, src, dst, f"0x{spi:08x}", encr, f"0x{ekey.hex()}", integ,
                      f"0x{ikey.hex()}" if ikey else ""))
    return "".join(out), None


def _ike_encr_name(keys: IkeKeyMaterial) -> str | None:
    bits = keys.encr_key_bits
    if keys.encr_id == EncrId.AES_CBC and bits:
        return f"AES-CBC-{bits} [RFC3602]"
    if keys.encr_id == EncrId.AES_CTR and bits:
        return f"AES-CTR-{bits} [RFC5930]"
    aead = _IKE_AEAD.get(keys.encr_id)  # type: ignore[call-overload]
    if aead is not None and bits:
        return f"AES-{aead[0]}-{bits} with {aead[1]} octet ICV [RFC5282]"
    return None


def ike_line(keys: IkeKeyMaterial) -> tuple[str, str | None]:
    """One `ikev2_decryption_table` line, or ("", reason)."""
    encr = _ike_encr_name(keys)
    integ = _IKE_INTEG.get(keys.integ_id)  # type: ignore[call-overload]
    if encr is None or integ is None:
        return "", (f"IKE SPI {keys.spi_i.hex()}: Wireshark 4.0 cannot decrypt encr "
                    f"{keys.encr_id} / integ {keys.integ_id}")
    return _q(keys.spi_i.hex(), keys.spi_r.hex(), keys.sk_ei.hex(), keys.sk_er.hex(), encr,
              keys.sk_ai.hex(), keys.sk_ar.hex(), integ), None


def build(
    specs: Iterable[ChildSaSpec], ike_keys: Iterable[IkeKeyMaterial], ike_missing: int
) -> KeyFiles:
    esp, ike, skipped = [], [], []
    n_esp = n_ike = 0
    for spec in specs:
        text, why = esp_lines(spec)
        if why:
            skipped.append(why)
        else:
            esp.append(text)
            n_esp += 2
    for keys in ike_keys:
        text, why = ike_line(keys)
        if why:
            skipped.append(why)
        else:
            ike.append(text)
            n_ike += 1
    if ike_missing:
        skipped.append(f"{ike_missing} IKE SA(s) have no keys yet (not established)")
    return KeyFiles("".join(esp), "".join(ike), n_esp, n_ike, tuple(skipped))


def check_file_name(name: str) -> str | None:
    """Why `name` may not be used as a key file name (None: fine). Only plain names inside
    the configured directory: no '/', no '..', no leading dot."""
    if not FILE_NAME_RE.match(name) or ".." in name:
        return (f"{name!r} is not a plain file name (letters, digits, '_', '.', '-'; no "
                "directory part, no leading dot, no '..'; at most 128 characters)")
    return None


def write_file(directory: str, name: str, text: str) -> str:
    """Write `text` to directory/name with mode 0600 (replacing it); the path written."""
    base = Path(directory).resolve()
    path = (base / name).resolve()
    if path.parent != base:  # belt and braces after check_file_name
        raise ValueError(f"{name!r} leaves the key export directory")
    tmp = base / f".{name}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return str(path)


def child_keys_body(spec: ChildSaSpec, view: dict[str, Any], *, local_id: str,
                    remote_id: str, outbound: bool, handed_out: int) -> dict[str, Any]:
    """`GET /child-sas/{id}/keys`: the CHILD_SA `view` (api.views.child_view) with its IKE
    SA's identities, the transform IDs, ESN, replay window, whether its outbound SA is in
    use yet (7296-64), how often these keys were handed out before, and per direction the
    SPI and keys (hex; an AEAD key with its salt as derived, RFC 4106 §8.1)."""
    body = dict(view)
    body.update({
        "local-id": local_id, "remote-id": remote_id,
        "encr-id": spec.encr_id, "encr-keysize": spec.encr_key_bits,
        "integ-id": spec.integ_id, "esn": spec.esn, "replay-window": spec.replay_window,
        "outbound": outbound, "handed-out": handed_out,
        "in": {"spi": f"{spec.spi_in:08x}", "encr-key": spec.encr_key_in.hex(),
               "integ-key": spec.integ_key_in.hex()},
        "out": {"spi": f"{spec.spi_out:08x}", "encr-key": spec.encr_key_out.hex(),
                "integ-key": spec.integ_key_out.hex()},
    })
    return body
