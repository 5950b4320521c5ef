"""File handling for ikev2-pki: reading PEM/DER, writing with --force semantics, and the
CA directory (cert, key, chain, root, index.json of issued and revoked certificates)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ikev2.crypto.certs import (
    CertificateError,
    KeyLoadError,
    load_certificate,
    load_certificates,
    load_private_key,
)
from ikev2.crypto.signature import PrivateKey

__all__ = [
    "CaDir",
    "IndexEntry",
    "PkiError",
    "Writer",
    "cert_bytes",
    "key_bytes",
    "read_bytes",
    "read_certificate",
    "read_certificates",
    "read_private_key",
]

INDEX = "index.json"


class PkiError(Exception):
    """A failure to report as 'ikev2-pki: <message>' with exit code 1."""


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise PkiError(f"{path}: is a directory, not a file") from None
    except OSError as e:
        raise PkiError(f"{path}: {e.strerror or e}") from None


def read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        return load_certificates(read_bytes(path), source=str(path))
    except CertificateError as e:
        raise PkiError(str(e)) from None


def read_certificate(path: Path) -> x509.Certificate:
    try:
        return load_certificate(read_bytes(path), source=str(path))
    except CertificateError as e:
        raise PkiError(str(e)) from None


def read_private_key(path: Path, passphrase: bytes | None) -> PrivateKey:
    try:
        return load_private_key(read_bytes(path), passphrase, source=str(path))
    except KeyLoadError as e:
        raise PkiError(str(e)) from None


def cert_bytes(cert: x509.Certificate, der: bool) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


def key_bytes(key: PrivateKey, der: bool, passphrase: bytes | None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.DER if der else serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        enc,
    )


@dataclass
class Writer:
    """Collects files, refuses existing ones without `force`, then writes them all."""

    force: bool
    files: list[tuple[Path, bytes, bool]] = field(default_factory=list)

    def add(self, path: Path, data: bytes, *, secret: bool = False) -> None:
        self.files.append((path, data, secret))

    def check(self) -> None:
        for path, _data, _secret in self.files:
            parent = path.parent
            if parent.exists() and not parent.is_dir():
                raise PkiError(f"{parent}: not a directory")
            if path.is_dir():
                raise PkiError(f"{path}: is a directory")
            if path.exists() and not self.force:
                raise PkiError(f"{path}: exists (use --force to overwrite)")

    def commit(self) -> None:
        self.check()
        for path, data, secret in self.files:
            _write(path, data, secret)


def _write(path: Path, data: bytes, secret: bool) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            os.fchmod(fd, 0o600 if secret else 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise PkiError(f"{path}: {e.strerror or e}") from None


def write_file(path: Path, data: bytes, *, secret: bool = False) -> None:
    """Write (or replace) one file, e.g. CA state that is meant to be rewritten."""
    _write(path, data, secret)


@dataclass
class IndexEntry:
    serial: int
    subject: str
    names: list[str]
    not_after: str
    path: str
    ca: bool = False
    revoked_at: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": f"{self.serial:x}",
            "subject": self.subject,
            "names": self.names,
            "not_after": self.not_after,
            "path": self.path,
            "ca": self.ca,
            "revoked_at": self.revoked_at,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> IndexEntry:
        return cls(
            serial=int(d["serial"], 16),
            subject=str(d.get("subject", "")),
            names=[str(n) for n in d.get("names", [])],
            not_after=str(d.get("not_after", "")),
            path=str(d.get("path", "")),
            ca=bool(d.get("ca", False)),
            revoked_at=d.get("revoked_at"),
            reason=d.get("reason"),
        )


@dataclass
class CaDir:
    """A CA directory: cert.pem|der, key.pem|der, [chain.pem], [root.pem], index.json."""

    path: Path
    cert: x509.Certificate
    chain: list[x509.Certificate]  # this CA first, up to (not incl.) the root
    root: x509.Certificate | None
    entries: list[IndexEntry]
    crl_number: int

    @staticmethod
    def find(path: Path, stem: str) -> Path | None:
        for ext in ("pem", "der"):
            p = path / f"{stem}.{ext}"
            if p.exists():
                return p
        return None

    @classmethod
    def open(cls, path: Path) -> CaDir:
        if not path.exists():
            raise PkiError(f"{path}: no such CA directory")
        if not path.is_dir():
            raise PkiError(f"{path}: not a CA directory (expected a directory with cert.pem)")
        cert_path = cls.find(path, "cert")
        if cert_path is None:
            raise PkiError(f"{path}: no cert.pem in CA directory")
        cert = read_certificate(cert_path)
        chain_path = path / "chain.pem"
        chain = read_certificates(chain_path) if chain_path.exists() else [cert]
        if chain[0] != cert:
            chain.insert(0, cert)
        root_path = cls.find(path, "root")
        if root_path is not None:
            root: x509.Certificate | None = read_certificate(root_path)
        elif cert.issuer == cert.subject:
            root = cert
        else:
            root = None
        if root is not None and root == cert:
            chain = []
        entries: list[IndexEntry] = []
        crl_number = 0
        index = path / INDEX
        if index.exists():
            try:
                data = json.loads(read_bytes(index))
                entries = [IndexEntry.from_json(e) for e in data.get("issued", [])]
                crl_number = int(data.get("crl_number", 0))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise PkiError(f"{index}: corrupt CA index ({e})") from None
        return cls(path, cert, chain, root, entries, crl_number)

    def key(self, passphrase: bytes | None) -> PrivateKey:
        key_path = self.find(self.path, "key")
        if key_path is None:
            raise PkiError(f"{self.path}: no key.pem in CA directory")
        key = read_private_key(key_path, passphrase)
        if key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise PkiError(f"{key_path}: does not match the CA certificate {self.path}/cert")
        return key

    def save_index(self) -> None:
        data = {
            "version": 1,
            "crl_number": self.crl_number,
            "issued": [e.to_json() for e in self.entries],
        }
        write_file(self.path / INDEX, (json.dumps(data, indent=2) + "\n").encode())

    def record(self, entry: IndexEntry) -> None:
        self.entries = [e for e in self.entries if e.serial != entry.serial] + [entry]
        self.save_index()
