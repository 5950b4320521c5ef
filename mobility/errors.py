"""Exceptions of the mobility package. Parse errors say which RFC 6275 §9.2 reaction fits:
UnknownMhType carries the Binding Error status to answer with."""

from __future__ import annotations

from mobility.registry import BaStatus, BeStatus


class MobilityError(Exception):
    """Base class of every error raised by mobility/."""


# --- Mobility Header codec -------------------------------------------------------------------
class MhValueError(MobilityError, ValueError):
    """A message or option built with a field out of range (seq > 65535, cookie not 8
    octets, ...). Raised before any byte is written."""


class MhParseError(MobilityError, ValueError):
    """The octets are not a Mobility Header this codec accepts. `offset`: where in the
    MH the problem is (for an ICMP Parameter Problem pointer, RFC 6275 §9.2)."""

    def __init__(self, message: str, *, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


class MhLengthError(MhParseError):
    """Header Len disagrees with the octets, or is below the minimum for the MH type
    (RFC 6275 §9.2: ICMP Parameter Problem, code 0, pointing at Header Len)."""


class MhReservedError(MhParseError):
    """A Reserved field is not zero (only in strict mode: RFC 6275 §6.1 says receivers
    ignore Reserved fields; `strict=False` does so)."""


class PayloadProtoError(MhParseError):
    """Payload Proto is not IPPROTO_NONE (59) (strict mode only; RFC 6275 §6.1.1)."""


class MhChecksumError(MhParseError):
    """The MH checksum does not verify against the pseudo-header (RFC 6275 §6.1.1):
    the packet is silently discarded (RFC 6275 §9.2)."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"MH checksum 0x{got:04x} does not verify (expected 0x{expected:04x})",
                         offset=4)
        self.expected = expected
        self.got = got


class UnknownMhType(MhParseError):
    """An MH type this codec does not implement: answer with a Binding Error, status 2
    (RFC 6275 §9.2)."""

    be_status = BeStatus.UNRECOGNIZED_MH_TYPE

    def __init__(self, mh_type: int) -> None:
        super().__init__(f"unrecognized MH type {mh_type}", offset=2)
        self.mh_type = mh_type


class OptionError(MhParseError):
    """A mobility option overruns the message or has the wrong length for its type."""

    def __init__(self, message: str, *, option_type: int, offset: int) -> None:
        super().__init__(message, offset=offset)
        self.option_type = option_type


# --- home agent side -------------------------------------------------------------------------
class AuthorizationError(MobilityError):
    """An (identity, home address) pair the home agent does not authorise (RFC 4877 §4.3,
    §7; REQUIREMENTS 4877-05/16/21). `status` is the BA status to answer a BU with."""

    status: BaStatus = BaStatus.ADMINISTRATIVELY_PROHIBITED


class UnknownHomeAddress(AuthorizationError):
    """No mobile node is configured for this home address."""

    status = BaStatus.NOT_HOME_AGENT_FOR_THIS_MN


class UnknownIdentity(AuthorizationError):
    """The authenticated identity has no entry in the authorisation map."""


class HomeAddressNotAuthorized(AuthorizationError):
    """The identity is known, but not for this home address."""


class AuthorizationMapError(MobilityError, ValueError):
    """The authorisation map itself is inconsistent (overlapping prefixes, bad address)."""


# --- SA layout -------------------------------------------------------------------------------
class LayoutError(MobilityError, ValueError):
    """A mobility configuration from which no RFC 4877 SA layout can be built."""


class CpAttributeError(MobilityError, ValueError):
    """A CP attribute value (RFC 7296 §3.15.1, RFC 5026 §4.4) of the wrong length/content."""


# --- transport -------------------------------------------------------------------------------
class TransportError(MobilityError):
    """A BU/BA transport problem (bad encapsulation, socket closed)."""


class BindingAckTimeout(TransportError):
    """No Binding Acknowledgement arrived after all retransmissions (RFC 6275 §11.8)."""

    def __init__(self, message: str, *, sent: int) -> None:
        super().__init__(message)
        self.sent = sent


# --- ESP (mobility/esp.py, mobility/protection.py) -------------------------------------------
class EspError(MobilityError):
    """An ESP packet (RFC 4303) that is dropped: silently on the wire, logged and counted
    under `reason` (the agents' status files). Raising it changes no SA state."""

    reason = "esp"


class EspTruncated(EspError):
    """Shorter than SPI | sequence number | IV | the smallest ciphertext | ICV."""

    reason = "truncated"


class EspUnknownSpi(EspError):
    """No BU/BA SA of this agent has that SPI (RFC 4303 §3.4.2: discard)."""

    reason = "unknown-spi"


class EspIntegrityError(EspError):
    """The ICV (or AEAD tag) does not verify (RFC 4303 §3.4.4: discard)."""

    reason = "icv"


class EspReplay(EspError):
    """Sequence number 0, left of the anti-replay window, or seen before (RFC 4303
    §3.4.3)."""

    reason = "replay"


class EspPaddingError(EspError):
    """Pad Length beyond the plaintext, or padding other than 1, 2, 3, ... (RFC 4303
    §2.4)."""

    reason = "padding"


class EspPolicyError(EspError):
    """The packet verified, but its SA may not carry it: not the BU/BA SA of that home
    address, or gone from ikev2d (RFC 4301 §5.2: the inbound selector check)."""

    reason = "policy"


class EspMissing(EspError):
    """A BU (or BA) without ESP where ESP is required: the HA's `require_esp`, or a BA
    answering a protected BU (RFC 4301 §5.2: discard)."""

    reason = "unprotected"


class EspInherited(EspError):
    """The SA's keys were handed out before this process fetched them (an agent restart):
    its sequence numbers and replay window are unknown here, so it is rekeyed before use
    (mobility/protection.py)."""

    reason = "inherited"


class EspNoKeys(EspError):
    """The BU/BA SA's keys cannot be had from ikev2d (api.child_sa_keys off, the API down,
    an answer this agent cannot use)."""

    reason = "no-keys"


class EspSequenceExhausted(EspError):
    """The sender's counter would cycle: the SA must be rekeyed (RFC 4303 §3.3.3)."""

    reason = "seq-exhausted"


class EspUnsupported(EspError, ValueError):
    """Algorithms or keys this ESP implementation cannot use (or ESP without integrity,
    which cannot protect BU/BA: 4877-01)."""

    reason = "unsupported"
