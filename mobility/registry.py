"""IANA Mobile IPv6 registries as IntEnums: MH types, status codes, option types, flags.

Sources: RFC 6275 §6.1/§6.2 (base), RFC 5648 (Monami6: Binding Identifier, MCoA status
codes), RFC 5555 (DSMIPv6 options), RFC 4285 (authentication status codes). RFC 4877
defines no status code of its own: an identity not authorised for a home address is
answered with ADMINISTRATIVELY_PROHIBITED (see mobility/binding_cache.py).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

IPPROTO_MH = 135
IPPROTO_NONE = 59  # RFC 6275 §6.1.1: the Payload Proto of every MH we send
IPPROTO_ICMPV6 = 58

ICMPV6_MPS = 146  # Mobile Prefix Solicitation (RFC 6275 §6.7)
ICMPV6_MPA = 147  # Mobile Prefix Advertisement (RFC 6275 §6.8)

LIFETIME_UNIT = 4  # seconds per unit of the BU/BA Lifetime field (RFC 6275 §6.1.7)
MAX_LIFETIME_UNITS = 0xFFFF


class MhType(IntEnum):
    """Mobility Header types this codec understands (RFC 6275 §6.1.2-§6.1.9)."""

    BRR = 0  # Binding Refresh Request
    HOTI = 1  # Home Test Init
    COTI = 2  # Care-of Test Init
    HOT = 3  # Home Test
    COT = 4  # Care-of Test
    BU = 5  # Binding Update
    BA = 6  # Binding Acknowledgement
    BE = 7  # Binding Error


class BaStatus(IntEnum):
    """Binding Acknowledgement status (RFC 6275 §6.1.8; < 128 accepted, >= 128 rejected)."""

    ACCEPTED = 0
    ACCEPTED_PREFIX_DISCOVERY_NECESSARY = 1
    MCOA_NOTCOMPLETE = 4  # RFC 5648
    MCOA_RETURNHOME_WO_NDP = 5  # RFC 5648
    REASON_UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    HOME_REGISTRATION_NOT_SUPPORTED = 131
    NOT_HOME_SUBNET = 132
    NOT_HOME_AGENT_FOR_THIS_MN = 133
    DUPLICATE_ADDRESS_DETECTION_FAILED = 134
    SEQUENCE_NUMBER_OUT_OF_WINDOW = 135
    EXPIRED_HOME_NONCE_INDEX = 136
    EXPIRED_CARE_OF_NONCE_INDEX = 137
    EXPIRED_NONCES = 138
    REGISTRATION_TYPE_CHANGE_DISALLOWED = 139
    MIPV6_ID_MISMATCH = 144  # RFC 4285
    MIPV6_MESG_ID_REQD = 145  # RFC 4285
    MIPV6_AUTH_FAIL = 146  # RFC 4285
    MCOA_MALFORMED = 164  # RFC 5648
    MCOA_NON_MCOA_BINDING_EXISTS = 165  # RFC 5648
    MCOA_PROHIBITED = 166  # RFC 5648
    MCOA_UNKNOWN_COA = 167  # RFC 5648
    MCOA_BULK_REGISTRATION_PROHIBITED = 168  # RFC 5648
    MCOA_SIMULTANEOUS_HOME_AND_FOREIGN_PROHIBITED = 169  # RFC 5648
    INVALID_CARE_OF_ADDRESS = 174  # RFC 6275

    @property
    def accepted(self) -> bool:
        return self < 128


class BeStatus(IntEnum):
    """Binding Error status (RFC 6275 §6.1.9)."""

    UNKNOWN_BINDING_FOR_HOME_ADDRESS_OPTION = 1
    UNRECOGNIZED_MH_TYPE = 2


class OptionType(IntEnum):
    """Mobility options (RFC 6275 §6.2, RFC 5555 §3, RFC 5648 §6.1)."""

    PAD1 = 0
    PADN = 1
    BINDING_REFRESH_ADVICE = 2
    ALTERNATE_COA = 3
    NONCE_INDICES = 4
    BINDING_AUTHORIZATION_DATA = 5
    IPV4_HOME_ADDRESS = 29  # RFC 5555 (kept as raw bytes here)
    IPV4_ADDRESS_ACKNOWLEDGEMENT = 30  # RFC 5555 (kept as raw bytes here)
    NAT_DETECTION = 31  # RFC 5555
    IPV4_CARE_OF_ADDRESS = 32  # RFC 5555
    BINDING_IDENTIFIER = 35  # RFC 5648


class BuFlags(IntFlag):
    """The 16-bit flags word of a Binding Update (RFC 6275 §6.1.7). Bits not named here
    (NEMO R, PMIPv6 P, DSMIPv6 F/T, ...) are kept as they are (IntFlag boundary KEEP)."""

    A = 0x8000  # Acknowledge
    H = 0x4000  # Home Registration
    L = 0x2000  # Link-Local Address Compatibility
    K = 0x1000  # Key Management Mobility Capability (RFC 4877 §4.4)


class BaFlags(IntFlag):
    """The 8-bit flags octet of a Binding Acknowledgement (RFC 6275 §6.1.8)."""

    K = 0x80  # Key Management Mobility Capability


class BidFlags(IntFlag):
    """The octet after Status in the Binding Identifier option (RFC 5648 §6.1): H, then
    7 bits that RFC 5648 reserves and RFC 6089 uses as BID-PRI (kept as they are)."""

    H = 0x80  # Simultaneous Home and Foreign Binding


def status_of(value: int) -> int:
    """The BaStatus member for a known value, else the plain int (kept for round trips)."""
    try:
        return BaStatus(value)
    except ValueError:
        return value


def is_accepted(status: int) -> bool:
    """RFC 6275 §6.1.8: values below 128 mean the Binding Update was accepted."""
    return status < 128
