"""Errors shared by all layers. Each maps to the IKEv2 notify that reports it (RFC 7296
§3.10.1) or to a silent drop (notify None) where the RFC says not to answer."""

from __future__ import annotations

from ikev2.protocol.enums import NotifyType


class IkeError(Exception):
    """Base class. `notify` is what the peer should be told (None: tell nothing)."""

    notify: NotifyType | None = None

    def __init__(self, message: str, *, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = data


class DropMessage(IkeError):
    """Not an IKE message we may answer: drop it silently and log (RFC 7296 §2.21, A12)."""


class InvalidSyntax(IkeError):
    notify = NotifyType.INVALID_SYNTAX


class UnsupportedCriticalPayload(IkeError):
    notify = NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD

    def __init__(self, payload_type: int) -> None:
        super().__init__(
            f"unsupported critical payload type {payload_type}", data=bytes([payload_type & 0xFF])
        )
        self.payload_type = payload_type


class InvalidMajorVersion(IkeError):
    """Major version > 2: answered unprotected with version 2 (RFC 7296 §2.5). `header`
    is the decoded header, set by the parser, so the answer can echo SPIs and message ID."""

    notify = NotifyType.INVALID_MAJOR_VERSION
    header: object | None = None


class IntegrityError(DropMessage):
    """ICV or AEAD tag did not verify: drop silently, change nothing (RFC 7296 §3.14)."""


class NoProposalChosen(IkeError):
    notify = NotifyType.NO_PROPOSAL_CHOSEN


class InvalidKePayload(IkeError):
    """Carries the 2-octet group number the responder wants (RFC 7296 §1.2)."""

    notify = NotifyType.INVALID_KE_PAYLOAD

    def __init__(self, message: str, group: int) -> None:
        super().__init__(message, data=group.to_bytes(2, "big"))
        self.group = group


class InvalidPublicValue(IkeError):
    """RFC 6989 check failed on a peer's KE value; reported as NO_PROPOSAL_CHOSEN in
    IKE_SA_INIT (REQUIREMENTS 6989-05, the choice strongSwan makes), INVALID_SYNTAX later."""

    notify = NotifyType.NO_PROPOSAL_CHOSEN


class AuthenticationFailed(IkeError):
    notify = NotifyType.AUTHENTICATION_FAILED


class TsUnacceptable(IkeError):
    notify = NotifyType.TS_UNACCEPTABLE


class TemporaryFailure(IkeError):
    notify = NotifyType.TEMPORARY_FAILURE


class ChildSaNotFound(IkeError):
    notify = NotifyType.CHILD_SA_NOT_FOUND


class KernelError(Exception):
    """The kernel backend refused an operation (missing algorithm, no ESP module, EPERM)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class UnusableAddress(ValueError):
    """A local address asked for (initiate from an address) that cannot be used: not an
    address of the connection or of this host, or no socket can send from it. The message
    says what to fix."""

    def __init__(self, address: str, message: str) -> None:
        super().__init__(message)
        self.address = address


class ConfigError(Exception):
    """A bad configuration: names the file, the key and the problem."""

    def __init__(self, message: str, *, source: str = "", key: str = "") -> None:
        where = ":".join(p for p in (source, key) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.key = key
        self.reason = message
