"""ikev2-pki: a testbed PKI in one command (keys, CAs, intermediates, end-entity
certificates for every IKE ID type, show, verify, revoke, CRLs, PEM/DER conversion).

Exit codes: 0 ok, 1 failed (verification failed, bad or missing input, refused overwrite),
2 usage (bad flags or values). Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from certs.build import (
    EKU_FLAGS,
    KEY_TYPES,
    Revocation,
    Validity,
    generate_key,
    issue_certificate,
    key_description,
    make_crl,
    parse_identity,
    parse_key_usage,
    self_signed_ca,
)
from certs.files import (
    CaDir,
    IndexEntry,
    PkiError,
    Writer,
    cert_bytes,
    key_bytes,
    read_bytes,
    read_certificate,
    read_certificates,
    write_file,
)
from certs.show import describe_certificate, describe_crl, describe_key, render, time_text
from ikev2.crypto.certs import (
    DEFAULT_VALIDATION,
    CertificateError,
    KeyLoadError,
    TrustStore,
    ValidationPolicy,
    format_dn,
    load_crl,
    load_private_key,
    match_identity,
    parse_dn,
    validate_chain,
)
from ikev2.crypto.signature import PrivateKey, PublicKey
from ikev2.protocol.enums import IdType

__all__ = ["main"]

PROG = "ikev2-pki"


class UsageError(Exception):
    """Bad combination of flags: exit 2."""


# -- argument types -----------------------------------------------------------------------
_REL = re.compile(r"^(?:now)?([+-])(\d+(?:\.\d+)?)([dhms])$")


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """'2026-01-01', '2026-01-01T12:00:00Z', 'now', or relative 'now+30d' / 'now-2h' /
    'now-90m' ('+30d' and '-2h' too, written --at=-2h so argparse takes them as values)."""
    now = now or datetime.now(UTC)
    t = text.strip()
    if t == "now":
        return now.replace(microsecond=0)
    m = _REL.match(t)
    if m:
        unit = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[m.group(3)]
        delta = timedelta(**{unit: float(m.group(2))})
        return (now + delta if m.group(1) == "+" else now - delta).replace(microsecond=0)
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time (2026-01-01, 2026-01-01T12:00:00Z, now, now+30d, now-2h)"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _time_arg(text: str) -> datetime:
    return parse_time(text)


def _dn_arg(text: str) -> x509.Name:
    try:
        return parse_dn(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _id_arg(text: str) -> x509.GeneralName | x509.Name:
    try:
        return parse_identity(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _ku_arg(text: str) -> x509.KeyUsage:
    try:
        return parse_key_usage(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _serial_arg(text: str) -> int:
    try:
        v = int(text.replace(":", ""), 16)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a hex serial number") from None
    if v <= 0 or v.bit_length() > 159:
        raise argparse.ArgumentTypeError("serial must be positive and at most 159 bits")
    return v


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if v <= 0:
        raise argparse.ArgumentTypeError("lifetime must be positive")
    return v


def _pathlen(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if v < 0:
        raise argparse.ArgumentTypeError("path length must be 0 or more")
    return v


# -- helpers ------------------------------------------------------------------------------
def _passphrase(args: argparse.Namespace, prefix: str = "") -> bytes | None:
    path = getattr(args, f"{prefix}passphrase_file", None)
    env = getattr(args, f"{prefix}passphrase_env", None)
    if path is not None:
        data = read_bytes(Path(path)).splitlines()
        value = data[0] if data else b""
    elif env is not None:
        if env not in os.environ:
            raise PkiError(f"environment variable {env} is not set")
        value = os.environ[env].encode()
    else:
        return None
    if not value:
        raise PkiError("empty passphrase")
    return value


def _spki(key: PrivateKey | PublicKey) -> bytes:
    pub = key.public_key() if hasattr(key, "private_bytes") else key
    return pub.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _read_any_key(path: Path, passphrase: bytes | None) -> tuple[PrivateKey | PublicKey, bool]:
    """(key, is_private) from a private or public key file, PEM or DER."""
    data = read_bytes(path)
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        return _public_key(data, path), False
    try:
        return load_private_key(data, passphrase, source=str(path)), True
    except KeyLoadError as e:
        if b"-----BEGIN" in data or "passphrase" in str(e):
            raise PkiError(str(e)) from None
        return _public_key(data, path), False


def _public_key(data: bytes, path: Path) -> PublicKey:
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PkiError(f"{path}: not a PEM or DER private or public key") from None
    return key  # type: ignore[return-value]


def _validity(args: argparse.Namespace, default_days: float, now: datetime) -> Validity:
    base = Validity.days(now, args.lifetime or default_days)
    nb = args.not_before or base.not_before
    na = args.not_after or (
        nb + timedelta(days=args.lifetime or default_days)
        if args.not_before is not None
        else base.not_after
    )
    if na <= nb:
        raise UsageError(f"not-after {time_text(na)} is not after not-before {time_text(nb)}")
    return Validity(nb, na)


def _new_or_given_key(
    args: argparse.Namespace, passphrase: bytes | None
) -> tuple[PrivateKey | PublicKey, bool]:
    """(key, generated): --key FILE (private or public) or a fresh --type key."""
    if args.key is not None:
        if args.type is not None:
            raise UsageError("give --type or --key, not both")
        return _read_any_key(Path(args.key), passphrase)[0], False
    return generate_key(args.type or "ecdsa-p256"), True


def _ext(der: bool) -> str:
    return "der" if der else "pem"


def _names_text(names: Sequence[x509.GeneralName]) -> list[str]:
    out = []
    for g in names:
        if isinstance(g, x509.DirectoryName):
            out.append(format_dn(g.value))
        else:
            out.append(str(g.value))
    return out


def _sign_error(e: Exception) -> PkiError:
    return PkiError(f"cannot sign: {e}")


# -- subcommands --------------------------------------------------------------------------
def cmd_key(args: argparse.Namespace) -> int:
    key = generate_key(args.type)
    out = Path(args.out)
    w = Writer(args.force)
    w.add(out, key_bytes(key, args.outform == "der", _passphrase(args)), secret=True)
    w.commit()
    print(f"{out}: {key_description(key)} private key")
    return 0


def cmd_ca(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    passphrase = _passphrase(args)
    out = Path(args.out)
    key, generated = _new_or_given_key(args, passphrase)
    if not hasattr(key, "private_bytes"):
        raise PkiError(f"{args.key}: a CA needs a private key, not a public key")
    validity = _validity(args, 3650, now)
    try:
        cert = self_signed_ca(
            key, args.dn, validity, path_length=args.pathlen, serial=args.serial,  # type: ignore[arg-type]
            digest=args.digest, rsa_pss=args.rsa_pss,
        )
    except (ValueError, TypeError) as e:
        raise _sign_error(e) from None
    der = args.outform == "der"
    w = Writer(args.force)
    w.add(out / f"cert.{_ext(der)}", cert_bytes(cert, der))
    if generated:
        w.add(out / f"key.{_ext(der)}", key_bytes(key, der, passphrase), secret=True)  # type: ignore[arg-type]
    w.add(out / "index.json", b'{"version": 1, "crl_number": 0, "issued": []}\n')
    w.commit()
    print(
        f"{out}: root CA {format_dn(cert.subject)} ({key_description(key)}), "
        f"valid until {time_text(cert.not_valid_after_utc)}"
    )
    return 0


def _issue_common(
    args: argparse.Namespace, ca: CaDir, *, is_ca: bool, default_days: float
) -> tuple[x509.Certificate, PrivateKey | PublicKey, bool, list[x509.GeneralName]]:
    now = datetime.now(UTC)
    ca_key = ca.key(_passphrase(args, "ca_"))
    passphrase = _passphrase(args)
    sans: list[x509.GeneralName] = []
    dn_ids: list[x509.Name] = []
    for item in [*(getattr(args, "id", None) or []), *(getattr(args, "san", None) or [])]:
        if isinstance(item, x509.Name):
            dn_ids.append(item)
        elif item not in sans:
            sans.append(item)
    subject: x509.Name | None = args.dn
    for d in dn_ids:
        if subject is None:
            subject = d
        elif d != subject:
            raise UsageError(f"--id {format_dn(d)} differs from the subject {format_dn(subject)}")
    if subject is None:
        if not sans:
            raise UsageError("give at least one --id (or --dn)")
        first = _names_text(sans[:1])[0]
        subject = parse_dn(f"CN={first.replace(',', chr(92) + ',')}")
    key, generated = _new_or_given_key(args, passphrase)
    validity = _validity(args, default_days, now)
    if validity.not_after > ca.cert.not_valid_after_utc:
        print(
            f"{PROG}: warning: certificate outlives its CA "
            f"({time_text(ca.cert.not_valid_after_utc)})",
            file=sys.stderr,
        )
    ekus = [EKU_FLAGS[f] for f in (getattr(args, "flag", None) or [])]
    try:
        cert = issue_certificate(
            ca.cert, ca_key, _pub(key), subject, validity,
            sans=sans, ca=is_ca, path_length=getattr(args, "pathlen", None),
            key_usage=getattr(args, "key_usage", None), ekus=ekus, serial=args.serial,
            digest=args.digest, rsa_pss=args.rsa_pss,
            crl_uris=getattr(args, "crl_uri", None) or (),
        )
    except (ValueError, TypeError) as e:
        raise _sign_error(e) from None
    return cert, key, generated, sans


def _pub(key: PrivateKey | PublicKey) -> PublicKey:
    return key.public_key() if hasattr(key, "private_bytes") else key  # type: ignore[union-attr,return-value]


def cmd_issue(args: argparse.Namespace) -> int:
    ca = CaDir.open(Path(args.ca))
    cert, key, generated, sans = _issue_common(args, ca, is_ca=False, default_days=365)
    out = Path(args.out)
    der = args.outform == "der"
    w = Writer(args.force)
    w.add(out / f"cert.{_ext(der)}", cert_bytes(cert, der))
    if generated:
        w.add(out / f"key.{_ext(der)}", key_bytes(key, der, _passphrase(args)), secret=True)  # type: ignore[arg-type]
    w.add(out / "chain.pem", b"".join(cert_bytes(c, False) for c in [cert, *ca.chain]))
    if ca.root is not None:
        w.add(out / f"ca.{_ext(der)}", cert_bytes(ca.root, der))
    w.commit()
    ca.record(
        IndexEntry(
            cert.serial_number, format_dn(cert.subject), _names_text(sans),
            time_text(cert.not_valid_after_utc), str(out / f"cert.{_ext(der)}"),
        )
    )
    names = ", ".join(_names_text(sans)) or "no subjectAltName"
    print(
        f"{out}: issued {format_dn(cert.subject)} [{names}] serial {cert.serial_number:x} "
        f"by {format_dn(ca.cert.subject)}, valid until {time_text(cert.not_valid_after_utc)}"
    )
    return 0


def cmd_intermediate(args: argparse.Namespace) -> int:
    ca = CaDir.open(Path(args.ca))
    cert, key, generated, _sans = _issue_common(args, ca, is_ca=True, default_days=1825)
    if not generated and not hasattr(key, "private_bytes"):
        raise PkiError(f"{args.key}: an intermediate CA needs a private key, not a public key")
    out = Path(args.out)
    der = args.outform == "der"
    w = Writer(args.force)
    w.add(out / f"cert.{_ext(der)}", cert_bytes(cert, der))
    if generated:
        w.add(out / f"key.{_ext(der)}", key_bytes(key, der, _passphrase(args)), secret=True)  # type: ignore[arg-type]
    w.add(out / "chain.pem", b"".join(cert_bytes(c, False) for c in [cert, *ca.chain]))
    if ca.root is not None:
        w.add(out / f"root.{_ext(der)}", cert_bytes(ca.root, der))
    w.add(out / "index.json", b'{"version": 1, "crl_number": 0, "issued": []}\n')
    w.commit()
    ca.record(
        IndexEntry(
            cert.serial_number, format_dn(cert.subject), [],
            time_text(cert.not_valid_after_utc), str(out / f"cert.{_ext(der)}"), ca=True,
        )
    )
    pl = "" if args.pathlen is None else f", pathlen {args.pathlen}"
    print(
        f"{out}: intermediate CA {format_dn(cert.subject)}{pl} by {format_dn(ca.cert.subject)}, "
        f"valid until {time_text(cert.not_valid_after_utc)}"
    )
    return 0


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


def _load_objects(path: Path, passphrase: bytes | None) -> list[tuple[str, Any]]:
    """[(kind, object)] for show/convert: certificates, a CRL, a private or public key."""
    if path.is_dir():
        found = CaDir.find(path, "cert")
        if found is None:
            raise PkiError(f"{path}: a directory without cert.pem")
        path = found
    data = read_bytes(path)
    fail = PkiError(f"{path}: not a PEM or DER certificate, CRL or key")
    if b"-----BEGIN" in data:
        kinds = {m.group(1).decode() for m in _PEM_BLOCK.finditer(data)}
        if "CERTIFICATE" in kinds:
            return [("certificate", c) for c in read_certificates(path)]
        if "X509 CRL" in kinds:
            try:
                return [("crl", load_crl(data, source=str(path)))]
            except CertificateError as e:
                raise PkiError(str(e)) from None
        if any(k.endswith("PRIVATE KEY") for k in kinds):
            try:
                return [("private key", load_private_key(data, passphrase, source=str(path)))]
            except KeyLoadError as e:
                raise PkiError(str(e)) from None
        if "PUBLIC KEY" in kinds:
            return [("public key", _public_key(data, path))]
        raise fail
    for kind, loader in _DER_LOADERS:
        try:
            return [(kind, loader(data, passphrase))]
        except (ValueError, TypeError, UnsupportedAlgorithm, CertificateError):
            continue
        except KeyLoadError as e:
            raise PkiError(str(e)) from None
    raise fail


def _der_private(data: bytes, passphrase: bytes | None) -> PrivateKey:
    try:
        return load_private_key(data, passphrase)
    except KeyLoadError as e:
        if "passphrase" in str(e):
            raise
        raise ValueError(str(e)) from None


_DER_LOADERS: list[tuple[str, Callable[[bytes, bytes | None], Any]]] = [
    ("certificate", lambda d, _p: x509.load_der_x509_certificate(d)),
    ("crl", lambda d, _p: x509.load_der_x509_crl(d)),
    ("private key", _der_private),
    ("public key", lambda d, _p: serialization.load_der_public_key(d)),
]


def cmd_show(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    passphrase = _passphrase(args)
    results: list[dict[str, Any]] = []
    texts: list[str] = []
    for f in args.files:
        for kind, obj in _load_objects(Path(f), passphrase):
            if kind == "certificate":
                d = describe_certificate(obj, now)
            elif kind == "crl":
                d = describe_crl(obj, now)
            else:
                d = describe_key(obj, kind == "private key")
            results.append({"file": f, **d})
            texts.append(render(f, d))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n".join(texts))
    return 0


def _entry_status(e: IndexEntry, now: datetime) -> str:
    if e.revoked_at:
        return "revoked"
    try:
        na = datetime.fromisoformat(e.not_after)
    except ValueError:
        return "?"
    return "expired" if now > na else "valid"


def cmd_list(args: argparse.Namespace) -> int:
    ca = CaDir.open(Path(args.ca))
    now = datetime.now(UTC)
    rows = [{**e.to_json(), "status": _entry_status(e, now)} for e in ca.entries]
    if args.json:
        print(json.dumps({"ca": format_dn(ca.cert.subject), "issued": rows}, indent=2))
        return 0
    print(f"{args.ca}: {format_dn(ca.cert.subject)}, {len(rows)} issued, CRL number "
          f"{ca.crl_number}")
    for r in rows:
        kind = "CA " if r["ca"] else ""
        names = f" [{', '.join(r['names'])}]" if r["names"] else ""
        rev = f" revoked {r['revoked_at']} ({r['reason']})" if r["revoked_at"] else ""
        print(f"  {r['serial']}  {r['status']:<8} until {r['not_after']}  {kind}"
              f"{r['subject']}{names}{rev}")
    return 0


def _identity_of(item: x509.GeneralName | x509.Name) -> tuple[int, bytes]:
    if isinstance(item, x509.Name):
        return IdType.ID_DER_ASN1_DN, item.public_bytes()
    if isinstance(item, x509.RFC822Name):
        return IdType.ID_RFC822_ADDR, item.value.encode()
    if isinstance(item, x509.DNSName):
        return IdType.ID_FQDN, item.value.encode()
    if isinstance(item, x509.IPAddress):
        ip = item.value
        assert isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
        return (IdType.ID_IPV4_ADDR if ip.version == 4 else IdType.ID_IPV6_ADDR), ip.packed
    raise UsageError(f"cannot use {item} as an IKE ID")  # pragma: no cover


def _anchors(paths: Sequence[str]) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.append(CaDir.open(path).cert)
        else:
            out.extend(read_certificates(path))
    return out


def cmd_verify(args: argparse.Namespace) -> int:
    now = args.at or datetime.now(UTC)
    anchors = _anchors(args.ca)
    inter: list[x509.Certificate] = []
    for c in args.chain or []:
        inter.extend(read_certificates(Path(c)))
    crls = []
    for c in args.crl or []:
        try:
            crls.append(load_crl(read_bytes(Path(c)), source=c))
        except CertificateError as e:
            raise PkiError(str(e)) from None
    certs = read_certificates(Path(args.cert))
    ee = certs[0]
    inter = certs[1:] + inter
    policy = ValidationPolicy(
        max_cert_payloads=max(DEFAULT_VALIDATION.max_cert_payloads, len(inter) + 1),
        require_crl=args.require_crl,
        min_rsa_bits=args.min_rsa_bits,
    )
    trust = TrustStore(tuple(anchors), tuple(crls))
    try:
        chain = validate_chain(ee, inter, trust, now, policy=policy)
        if args.id is not None:
            match_identity(ee, *_identity_of(args.id))
    except CertificateError as e:
        if args.json:
            print(json.dumps({"file": args.cert, "valid": False, "error": type(e).__name__,
                              "reason": str(e)}, indent=2))
        else:
            print(f"{args.cert}: FAILED: {e}")
        return 1
    path = [format_dn(c.subject) for c in chain.path]
    if args.json:
        print(json.dumps({"file": args.cert, "valid": True, "path": path}, indent=2))
    else:
        print(f"{args.cert}: OK: {' <- '.join(path)}")
    return 0


_REASON_NAMES = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
}


def cmd_revoke(args: argparse.Namespace) -> int:
    ca = CaDir.open(Path(args.ca))
    if (args.serial is None) == (args.cert is None):
        raise UsageError("give exactly one of --serial or --cert")
    subject = "?"
    names: list[str] = []
    not_after = ""
    if args.cert is not None:
        cert = read_certificate(Path(args.cert))
        try:
            cert.verify_directly_issued_by(ca.cert)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise PkiError(
                f"{args.cert}: not issued by the CA in {args.ca} ({format_dn(ca.cert.subject)})"
            ) from None
        serial = cert.serial_number
        subject, not_after = format_dn(cert.subject), time_text(cert.not_valid_after_utc)
    else:
        serial = args.serial
    when = args.at or datetime.now(UTC).replace(microsecond=0)
    entry = next((e for e in ca.entries if e.serial == serial), None)
    if entry is None:
        entry = IndexEntry(serial, subject, names, not_after, args.cert or "")
    if entry.revoked_at:
        print(f"serial {serial:x} ({entry.subject}) was already revoked at {entry.revoked_at}")
        return 0
    entry.revoked_at = time_text(when)
    entry.reason = args.reason
    ca.record(entry)
    print(
        f"revoked serial {serial:x} ({entry.subject}) at {entry.revoked_at} ({args.reason}); "
        f"run '{PROG} crl --ca {args.ca}' to publish"
    )
    return 0


def cmd_crl(args: argparse.Namespace) -> int:
    ca = CaDir.open(Path(args.ca))
    key = ca.key(_passphrase(args, "ca_"))
    now = datetime.now(UTC).replace(microsecond=0)
    this_update = args.this_update or now - timedelta(minutes=5)
    next_update = args.next_update or now + timedelta(days=args.lifetime)
    if next_update <= this_update:
        raise UsageError("next update must be after this update")
    revoked = []
    for e in ca.entries:
        if e.revoked_at:
            revoked.append(
                Revocation(
                    e.serial,
                    datetime.fromisoformat(e.revoked_at),
                    _REASON_NAMES.get(e.reason or "unspecified"),
                )
            )
    number = ca.crl_number + 1
    try:
        crl = make_crl(ca.cert, key, revoked, this_update, next_update, crl_number=number,
                       digest=args.digest)
    except (ValueError, TypeError) as e:
        raise _sign_error(e) from None
    der = args.outform == "der"
    data = crl.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)
    if args.out is not None:
        w = Writer(args.force)
        w.add(Path(args.out), data)
        w.commit()
    own = Path(args.ca) / f"crl.{_ext(der)}"
    write_file(own, data)
    ca.crl_number = number
    ca.save_index()
    where = f"{own}" + (f" and {args.out}" if args.out else "")
    print(f"{where}: CRL {number} of {format_dn(ca.cert.subject)} with {len(revoked)} revoked, "
          f"next update {time_text(next_update)}")
    return 0


def cmd_check_key(args: argparse.Namespace) -> int:
    key, _private = _read_any_key(Path(args.key), _passphrase(args))
    cert = read_certificate(Path(args.cert))
    if _spki(key) == _spki(cert.public_key()):  # type: ignore[arg-type]
        print(f"{args.key} matches {args.cert} ({key_description(key)})")
        return 0
    print(
        f"{args.key} does NOT match {args.cert} (key: {key_description(key)}, "
        f"certificate: {key_description(cert.public_key())} of {format_dn(cert.subject)})"
    )
    return 1


def cmd_convert(args: argparse.Namespace) -> int:
    passphrase = _passphrase(args)
    objs = _load_objects(Path(args.input), passphrase)
    der = args.outform == "der"
    enc = serialization.Encoding.DER if der else serialization.Encoding.PEM
    kind = objs[0][0]
    if kind == "certificate":
        if der and len(objs) > 1:
            raise PkiError(
                f"{args.input}: holds {len(objs)} certificates; DER holds one (use --outform pem)"
            )
        data = b"".join(o.public_bytes(enc) for _k, o in objs)
    elif kind == "crl":
        data = objs[0][1].public_bytes(enc)
    elif kind == "private key":
        data = key_bytes(objs[0][1], der, passphrase)
    else:
        data = objs[0][1].public_bytes(enc, serialization.PublicFormat.SubjectPublicKeyInfo)
    w = Writer(args.force)
    w.add(Path(args.out), data, secret=kind == "private key")
    w.commit()
    print(f"{args.out}: {kind}{'s' if len(objs) > 1 else ''} in {args.outform.upper()}")
    return 0


# -- parser -------------------------------------------------------------------------------
def _passphrase_opts(p: argparse.ArgumentParser, prefix: str = "", what: str = "the key") -> None:
    dash = prefix.replace("_", "-")
    g = p.add_mutually_exclusive_group()
    g.add_argument(f"--{dash}passphrase-file", metavar="FILE",
                   help=f"passphrase for {what}: first line of FILE")
    g.add_argument(f"--{dash}passphrase-env", metavar="VAR",
                   help=f"passphrase for {what}: environment variable VAR")


def _key_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--type", choices=list(KEY_TYPES), default=None,
                   help="generate a key of this type (default ecdsa-p256)")
    p.add_argument("--key", metavar="FILE",
                   help="use this existing key instead of generating one (not written out)")


def _cert_opts(p: argparse.ArgumentParser, default_days: int) -> None:
    p.add_argument("--lifetime", type=_positive, metavar="DAYS",
                   help=f"validity in days (default {default_days})")
    p.add_argument("--not-before", type=_time_arg, metavar="TIME",
                   help="start of validity: 2026-01-01[T12:00:00Z], now, now-1d (default now-5m)")
    p.add_argument("--not-after", type=_time_arg, metavar="TIME", help="end of validity")
    p.add_argument("--serial", type=_serial_arg, metavar="HEX", help="serial (default random)")
    p.add_argument("--digest", choices=["sha256", "sha384", "sha512"],
                   help="signature hash (default by the signing key: sha256, P-384 sha384, ...)")
    p.add_argument("--rsa-pss", action="store_true", help="sign with RSASSA-PSS (RSA CA keys)")
    p.add_argument("--outform", choices=["pem", "der"], default="pem",
                   help="encoding of written certificates and keys (chain.pem is always PEM)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Testbed PKI for ikev2d: CAs, certificates for IKE IDs, CRLs.",
        epilog="Exit codes: 0 ok, 1 failed (e.g. verification), 2 usage. See docs/pki.md.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("key", help="generate a private key")
    p.add_argument("--type", choices=list(KEY_TYPES), default="ecdsa-p256")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--outform", choices=["pem", "der"], default="pem")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    _passphrase_opts(p, what="encrypting the key")
    p.set_defaults(func=cmd_key)

    p = sub.add_parser("ca", help="create a root CA directory (cert.pem, key.pem, index.json)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--dn", required=True, type=_dn_arg, help='subject, e.g. "C=DE, CN=Testbed CA"')
    p.add_argument("--pathlen", type=_pathlen, help="max intermediate CAs below (default none)")
    _key_opts(p)
    _cert_opts(p, 3650)
    _passphrase_opts(p, what="the CA key (encrypts a new one)")
    p.set_defaults(func=cmd_ca)

    p = sub.add_parser("intermediate", help="create an intermediate CA directory under a CA")
    p.add_argument("--ca", required=True, metavar="DIR", help="issuing CA directory")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--dn", required=True, type=_dn_arg, help="subject of the intermediate CA")
    p.add_argument("--pathlen", type=_pathlen, help="max intermediate CAs below (default none)")
    _key_opts(p)
    _cert_opts(p, 1825)
    _passphrase_opts(p, what="the new key")
    _passphrase_opts(p, "ca_", what="the issuing CA's key")
    p.set_defaults(func=cmd_intermediate)

    p = sub.add_parser("issue", help="issue an end-entity certificate for IKE IDs")
    p.add_argument("--ca", required=True, metavar="DIR", help="issuing CA directory")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes cert.pem, key.pem, chain.pem (cert + intermediates), ca.pem")
    p.add_argument("--id", action="append", type=_id_arg, metavar="ID",
                   help="IKE ID to certify (repeatable): user@example.org (rfc822Name), "
                        "gw.example.org (dNSName), 192.0.2.1 / 2001:db8::1 (iPAddress), "
                        '"C=DE, CN=x" (subject DN); prefixes email: fqdn: ip: dn: force a kind')
    p.add_argument("--san", action="append", type=_id_arg, metavar="NAME",
                   help="extra subjectAltName, same syntax as --id")
    p.add_argument("--dn", type=_dn_arg, help="subject (default CN=<first --id>)")
    p.add_argument("--flag", action="append", choices=list(EKU_FLAGS),
                   help="extendedKeyUsage (repeatable): serverAuth clientAuth ikeIntermediate "
                        "ipsecIKE any")
    p.add_argument("--key-usage", type=_ku_arg, metavar="LIST",
                   help="keyUsage, comma-separated (default digitalSignature)")
    p.add_argument("--crl-uri", action="append", metavar="URI",
                   help="CRL distribution point URI (repeatable)")
    _key_opts(p)
    _cert_opts(p, 365)
    _passphrase_opts(p, what="the new key")
    _passphrase_opts(p, "ca_", what="the CA key")
    p.set_defaults(func=cmd_issue)

    p = sub.add_parser("show", help="print certificates, CRLs or keys")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true")
    _passphrase_opts(p, what="an encrypted key")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("list", help="list the certificates a CA issued")
    p.add_argument("--ca", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("verify", help="verify a certificate chain (exit 0 valid, 1 invalid)")
    p.add_argument("cert", metavar="CERT", help="end-entity certificate (further certificates "
                                                "in the file are used as intermediates)")
    p.add_argument("--ca", required=True, action="append", metavar="FILE|DIR",
                   help="trust anchor certificate(s) or CA directory (repeatable)")
    p.add_argument("--chain", action="append", metavar="FILE", help="intermediate certificates")
    p.add_argument("--crl", action="append", metavar="FILE", help="CRL to check (repeatable)")
    p.add_argument("--require-crl", action="store_true",
                   help="fail unless every issuer's CRL was given")
    p.add_argument("--id", type=_id_arg, metavar="ID",
                   help="IKE ID the certificate must carry (same syntax as issue --id)")
    p.add_argument("--at", type=_time_arg, metavar="TIME", help="validation time (default now)")
    p.add_argument("--min-rsa-bits", type=int, default=2048, metavar="N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("revoke", help="mark a certificate revoked in the CA's index")
    p.add_argument("--ca", required=True, metavar="DIR")
    p.add_argument("--serial", type=_serial_arg, metavar="HEX")
    p.add_argument("--cert", metavar="FILE")
    p.add_argument("--reason", choices=list(_REASON_NAMES), default="unspecified")
    p.add_argument("--at", type=_time_arg, metavar="TIME", help="revocation time (default now)")
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("crl", help="write the CA's CRL (DIR/crl.pem, and --out)")
    p.add_argument("--ca", required=True, metavar="DIR")
    p.add_argument("--out", metavar="FILE", help="also write the CRL here")
    p.add_argument("--lifetime", type=_positive, default=30.0, metavar="DAYS",
                   help="days until nextUpdate (default 30)")
    p.add_argument("--this-update", type=_time_arg, metavar="TIME")
    p.add_argument("--next-update", type=_time_arg, metavar="TIME")
    p.add_argument("--digest", choices=["sha256", "sha384", "sha512"])
    p.add_argument("--outform", choices=["pem", "der"], default="pem")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    _passphrase_opts(p, "ca_", what="the CA key")
    p.set_defaults(func=cmd_crl)

    p = sub.add_parser("check-key", help="check that a key belongs to a certificate")
    p.add_argument("--key", required=True, metavar="FILE", help="private or public key")
    p.add_argument("--cert", required=True, metavar="FILE")
    _passphrase_opts(p, what="an encrypted key")
    p.set_defaults(func=cmd_check_key)

    p = sub.add_parser("convert", help="convert a certificate, CRL or key between PEM and DER")
    p.add_argument("--in", dest="input", required=True, metavar="FILE")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--outform", choices=["pem", "der"], required=True)
    p.add_argument("--force", action="store_true")
    _passphrase_opts(p, what="an encrypted key (kept encrypted with it)")
    p.set_defaults(func=cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return int(e.code or 0) if isinstance(e.code, int) else 2
    try:
        return int(args.func(args))
    except UsageError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (PkiError, CertificateError, KeyLoadError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"{PROG}: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # never a traceback for a CLI user
        print(f"{PROG}: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
