"""Describing certificates, CRLs and keys for `ikev2-pki show` (human text and JSON)."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ObjectIdentifier

from certs.build import EKU_FLAGS, KEY_USAGES, key_description
from ikev2.crypto.certs import format_dn, spki_sha1
from ikev2.crypto.signature import PrivateKey, PublicKey

__all__ = ["describe_certificate", "describe_crl", "describe_key", "render", "time_text"]

_EKU_NAMES = {v: k for k, v in EKU_FLAGS.items()}


def time_text(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def _general_name(g: x509.GeneralName) -> dict[str, str]:
    if isinstance(g, x509.RFC822Name):
        return {"type": "rfc822Name", "value": g.value}
    if isinstance(g, x509.DNSName):
        return {"type": "dNSName", "value": g.value}
    if isinstance(g, x509.IPAddress):
        return {"type": "iPAddress", "value": str(g.value)}
    if isinstance(g, x509.DirectoryName):
        return {"type": "directoryName", "value": format_dn(g.value)}
    if isinstance(g, x509.UniformResourceIdentifier):
        return {"type": "URI", "value": g.value}
    return {"type": type(g).__name__, "value": str(getattr(g, "value", ""))}


def _oid_name(oid: ObjectIdentifier) -> str:
    return _EKU_NAMES.get(oid) or getattr(oid, "_name", None) or oid.dotted_string


def _status(cert: x509.Certificate, now: datetime) -> str:
    if now < cert.not_valid_before_utc:
        return "not yet valid"
    if now > cert.not_valid_after_utc:
        return "expired"
    return "valid"


def describe_certificate(cert: x509.Certificate, now: datetime) -> dict[str, Any]:
    """Every field a testbed operator asks about, as JSON-ready values."""
    d: dict[str, Any] = {
        "type": "certificate",
        "subject": format_dn(cert.subject),
        "issuer": format_dn(cert.issuer),
        "serial": f"{cert.serial_number:x}",
        "not_before": time_text(cert.not_valid_before_utc),
        "not_after": time_text(cert.not_valid_after_utc),
        "status": _status(cert, now),
        "self_signed": cert.issuer == cert.subject,
        "public_key": key_description(cert.public_key()),
        "signature_algorithm": getattr(cert.signature_algorithm_oid, "_name", None)
        or cert.signature_algorithm_oid.dotted_string,
        "sha256_fingerprint": _hex(cert.fingerprint(hashes.SHA256())),
        "spki_sha1": spki_sha1(cert).hex(),
    }
    try:
        exts = cert.extensions
    except ValueError as e:
        d["extensions_error"] = str(e)
        return d
    for ext in exts:
        v = ext.value
        if isinstance(v, x509.SubjectAlternativeName):
            d["subject_alt_names"] = [_general_name(g) for g in v]
        elif isinstance(v, x509.BasicConstraints):
            d["ca"] = v.ca
            if v.ca:
                d["path_length"] = v.path_length
        elif isinstance(v, x509.KeyUsage):
            d["key_usage"] = [
                name
                for name, attr in KEY_USAGES.items()
                if name != "contentCommitment" and getattr(v, attr)
            ]
        elif isinstance(v, x509.ExtendedKeyUsage):
            d["extended_key_usage"] = [_oid_name(o) for o in v]
        elif isinstance(v, x509.SubjectKeyIdentifier):
            d["subject_key_id"] = _hex(v.digest)
        elif isinstance(v, x509.AuthorityKeyIdentifier) and v.key_identifier:
            d["authority_key_id"] = _hex(v.key_identifier)
        elif isinstance(v, x509.CRLDistributionPoints):
            d["crl_uris"] = [
                n.value
                for p in v
                for n in (p.full_name or [])
                if isinstance(n, x509.UniformResourceIdentifier)
            ]
    d.setdefault("ca", False)
    return d


def describe_crl(crl: x509.CertificateRevocationList, now: datetime) -> dict[str, Any]:
    nxt = crl.next_update_utc
    d: dict[str, Any] = {
        "type": "crl",
        "issuer": format_dn(crl.issuer),
        "this_update": time_text(crl.last_update_utc),
        "next_update": time_text(nxt) if nxt else None,
        "status": "expired" if nxt is not None and now > nxt else "current",
        "revoked": [],
    }
    with contextlib.suppress(x509.ExtensionNotFound, ValueError):
        d["crl_number"] = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    for r in crl:
        entry: dict[str, Any] = {
            "serial": f"{r.serial_number:x}",
            "date": time_text(r.revocation_date_utc),
        }
        with contextlib.suppress(x509.ExtensionNotFound, ValueError):
            reason = r.extensions.get_extension_for_class(x509.CRLReason).value.reason
            entry["reason"] = reason.value
        d["revoked"].append(entry)
    return d


def describe_key(key: PrivateKey | PublicKey, private: bool) -> dict[str, Any]:
    pub = key.public_key() if private else key  # type: ignore[union-attr]
    spki = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "type": "private key" if private else "public key",
        "algorithm": key_description(key),
        "spki_sha1": hashlib.sha1(spki).hexdigest(),
    }


_LABELS = [
    ("subject", "subject"),
    ("issuer", "issuer"),
    ("serial", "serial"),
    ("validity", "validity"),
    ("public_key", "key"),
    ("algorithm", "algorithm"),
    ("signature_algorithm", "signature"),
    ("subject_alt_names", "altNames"),
    ("ca", "CA"),
    ("key_usage", "keyUsage"),
    ("extended_key_usage", "extKeyUsage"),
    ("crl_uris", "crlURIs"),
    ("subject_key_id", "subjectKeyId"),
    ("authority_key_id", "authKeyId"),
    ("spki_sha1", "SPKI SHA-1"),
    ("sha256_fingerprint", "SHA-256"),
    ("this_update", "thisUpdate"),
    ("next_update", "nextUpdate"),
    ("crl_number", "crlNumber"),
    ("revoked", "revoked"),
    ("extensions_error", "extensions"),
]


def render(source: str, d: dict[str, Any]) -> str:
    """Human text for one describe_* dict."""
    lines = [f"{source}: {d['type']}"]
    view = dict(d)
    if "not_before" in d:
        view["validity"] = f"{d['not_before']} .. {d['not_after']} ({d['status']})"
    if d["type"] == "crl":
        view["next_update"] = f"{d['next_update']} ({d['status']})"
    if d["type"] == "certificate":
        ca = d.get("ca")
        view["ca"] = (
            ("yes" + ("" if d.get("path_length") is None else f", pathlen {d['path_length']}"))
            if ca
            else "no"
        )
        if "subject_alt_names" in d:
            view["subject_alt_names"] = ", ".join(
                f"{n['value']} ({n['type']})" for n in d["subject_alt_names"]
            )
    for key in ("key_usage", "extended_key_usage", "crl_uris"):
        if key in view:
            view[key] = ", ".join(view[key]) or "none"
    if "revoked" in view:
        entries = view["revoked"]
        view["revoked"] = (
            "\n".join(
                f"    serial {e['serial']} at {e['date']}"
                + (f" ({e['reason']})" if "reason" in e else "")
                for e in entries
            )
            if entries
            else "none"
        )
        if entries:
            view["revoked"] = f"{len(entries)}\n" + view["revoked"]
    width = max(len(label) for _k, label in _LABELS) + 1
    for key, label in _LABELS:
        if key in view and view[key] is not None:
            lines.append(f"  {label + ':':<{width}} {view[key]}")
    return "\n".join(lines)
