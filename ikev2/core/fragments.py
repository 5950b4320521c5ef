"""IKE message fragmentation (RFC 7383): when to split an SK message into SKF fragments,
how large they may be, and bounded reassembly of the peer's fragments.

The engine calls `protect_message` for every protected message it sends and
`add_fragment` for every SKF message it receives; the codec (ikev2.protocol.sk) does the
per-fragment encryption and the final join.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ikev2.errors import DropMessage, IkeError
from ikev2.protocol.enums import PayloadType
from ikev2.protocol.header import HEADER_LEN, Header
from ikev2.protocol.payloads import SKF, Payload
from ikev2.protocol.sk import protect, protect_fragments, reassemble, unprotect_fragment

if TYPE_CHECKING:
    from ikev2.core.sa import IkeSa

log = logging.getLogger("ikev2.core")

# RFC 7383 §2.5.1: without path MTU discovery, IP datagrams of at most 1280 octets over
# IPv6 and 576 over IPv4 (the minimum MTUs every path must carry)
DEFAULT_SIZE_V6 = 1280
DEFAULT_SIZE_V4 = 576
MIN_SIZE = 576  # smallest fragment_size the configuration accepts
MAX_SIZE = 65535
# reassembly bounds (RFC 7383 §2.6, REQUIREMENTS 7383-10): per IKE SA there is at most one
# message in reassembly per direction, of at most MAX_FRAGMENTS fragments and MAX_MESSAGE
# octets of decrypted content; anything beyond is dropped, never stored
MAX_FRAGMENTS = 64
MAX_MESSAGE = 64 * 1024

_T_SKF = PayloadType.SKF.value
_OFF_NUMBER = HEADER_LEN + 4  # SKF right after the header: generic header, then Fragment Number


def max_message_size(fragment_size: int | None, local: tuple[str, int], natt_port: int) -> int:
    """The largest IKE message (header included) that fits one IP datagram of
    `fragment_size` octets (None: the RFC 7383 §2.5.1 default for the family) after the
    IP and UDP headers and, on the NAT-T port, the non-ESP marker (RFC 3948 §2.2)."""
    v6 = ipaddress.ip_address(local[0]).version == 6
    size = fragment_size or (DEFAULT_SIZE_V6 if v6 else DEFAULT_SIZE_V4)
    overhead = (40 if v6 else 20) + 8 + (4 if local[1] == natt_port else 0)
    return size - overhead


def protect_message(
    sa: IkeSa, exchange: int, flags: int, message_id: int, payloads: list[Payload],
    random: Callable[[int], bytes], max_size: int,
) -> list[bytes]:
    """HDR, SK{payloads} as one datagram, or, when fragmentation was negotiated and the
    message is larger than `max_size`, as SKF fragments of at most `max_size` octets
    (RFC 7383 §2.5, 7383-02/03). Retransmissions resend exactly these datagrams (7383-09)."""
    crypter = sa.crypter_out
    data = protect(sa.spi_i, sa.spi_r, exchange, flags, message_id, payloads, crypter,
                   random(crypter.iv_size))
    if not sa.fragmentation or len(data) <= max_size:
        return [data]
    out = protect_fragments(
        sa.spi_i, sa.spi_r, exchange, flags, message_id, payloads, crypter,
        lambda: random(crypter.iv_size), max_size,
    )
    log.debug("IKE_SA %s[%d] message %d of %d octets sent as %d fragments of <= %d octets",
              sa.name, sa.ike_id, message_id, len(data), len(out), max_size)
    return out


def is_fragment(header: Header) -> bool:
    """The message's first (and only) payload is SKF (RFC 7383 §2.5). Unprotected payloads
    before SKF (§2.5.3) are not supported: such a message is dropped by `unprotect`."""
    return header.next_payload == _T_SKF


def fragment_number(data: bytes) -> int:
    """The Fragment Number of an SKF message, read without decrypting (0 if too short)."""
    if len(data) < _OFF_NUMBER + 4:
        return 0
    return int.from_bytes(data[_OFF_NUMBER : _OFF_NUMBER + 2], "big")


def may_receive(sa: IkeSa) -> bool:
    """SKF is accepted once IKE_SA_INIT completed (keys exist, 7383-10) and only if we
    announced support (RFC 7383 §2.3): negotiated on this SA, or configured for its
    connection (which also covers an IKE SA made by a rekey of a negotiated one)."""
    if sa.crypter_in is None:
        return False
    return sa.fragmentation or (sa.conn is not None and sa.conn.fragmentation)


class Reassembly:
    """The fragments of one message being reassembled (RFC 7383 §2.6)."""

    __slots__ = ("exchange", "first_hash", "message_id", "parts", "size", "total")

    def __init__(self, message_id: int, exchange: int, total: int) -> None:
        self.message_id = message_id
        self.exchange = exchange
        self.total = total
        self.parts: dict[int, SKF] = {}
        self.size = 0
        self.first_hash = 0  # hash() of the datagram that carried fragment 1


def add_fragment(
    sa: IkeSa, direction: str, header: Header, data: bytes
) -> tuple[list[Payload], int] | None:
    """Verify one SKF message and store its content; when every fragment is there, return
    the reassembled payloads and the hash() of the datagram that carried fragment 1 (the
    key for recognising a retransmitted request). None while fragments are missing.

    Raises DropMessage for what is not stored: a bad ICV (checked before anything is kept,
    7383-06), a duplicate, a fragment of an older fragmentation of the message (smaller
    Total Fragments; a larger one restarts reassembly), or a message past MAX_FRAGMENTS /
    MAX_MESSAGE. An authenticated message whose reassembled content does not parse raises
    InvalidSyntax."""
    try:  # the ICV first: nothing unverified is kept
        skf = unprotect_fragment(data, header, sa.crypter_in)
    except DropMessage:
        raise
    except IkeError as e:  # bad padding inside an authenticated fragment
        raise DropMessage(f"SKF fragment: {e}") from e
    total, num = skf.total_fragments, skf.fragment_number
    if total > MAX_FRAGMENTS:
        sa.frag_in.pop(direction, None)
        raise DropMessage(
            f"fragment {num}/{total}: more than {MAX_FRAGMENTS} fragments are not reassembled"
        )
    buf: Reassembly | None = sa.frag_in.get(direction)
    if buf is not None and buf.message_id == header.message_id:
        if total < buf.total:
            raise DropMessage(
                f"fragment {num}/{total} of message {header.message_id}: older than the "
                f"{buf.total}-fragment version being reassembled (RFC 7383 §2.6)"
            )
        if total > buf.total:
            log.debug("IKE_SA %s[%d] message %d re-fragmented %d -> %d, restarting "
                      "reassembly", sa.name, sa.ike_id, header.message_id, buf.total, total)
            buf = None
        elif header.exchange != buf.exchange:
            raise DropMessage(f"fragment {num}/{total}: exchange type differs from fragment 1")
    else:
        buf = None
    if buf is None:
        buf = Reassembly(header.message_id, header.exchange, total)
        sa.frag_in[direction] = buf
    if num in buf.parts:
        raise DropMessage(f"fragment {num}/{total} of message {header.message_id}: duplicate")
    if buf.size + len(skf.data) > MAX_MESSAGE:
        del sa.frag_in[direction]
        raise DropMessage(
            f"message {header.message_id}: fragments exceed {MAX_MESSAGE} octets, discarded"
        )
    buf.parts[num] = skf
    buf.size += len(skf.data)
    if num == 1:
        buf.first_hash = hash(data)
    if len(buf.parts) < total:
        return None
    del sa.frag_in[direction]
    parts = [buf.parts[i] for i in range(1, total + 1)]
    log.debug("IKE_SA %s[%d] message %d reassembled from %d fragments (%d octets)", sa.name,
              sa.ike_id, header.message_id, total, buf.size)
    return reassemble(parts), buf.first_hash


def is_first_fragment_of(sa: IkeSa, header: Header, data: bytes) -> bool:
    """An SKF message numbered 1 that verifies with the peer's keys: a retransmission of a
    request we answered, which triggers one replay of the response (RFC 7383 §2.6.1:
    fragments with another number trigger nothing, 7383-08)."""
    if not is_fragment(header) or fragment_number(data) != 1:
        return False
    try:
        unprotect_fragment(data, header, sa.crypter_in)
    except IkeError:
        return False
    return True
