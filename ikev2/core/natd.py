"""NAT detection (RFC 7296 §2.23): NAT_DETECTION_*_IP notifies and their checks."""

from __future__ import annotations

from ikev2.core.events import Endpoint
from ikev2.crypto.natd import natd_hash
from ikev2.protocol.enums import NotifyType, ProtocolId
from ikev2.protocol.payloads import Notify

_SRC = NotifyType.NAT_DETECTION_SOURCE_IP
_DST = NotifyType.NAT_DETECTION_DESTINATION_IP


def payloads(
    spi_i: bytes, spi_r: bytes, local: Endpoint, remote: Endpoint, fake: bytes | None = None
) -> list[Notify]:
    """Our NAT-D pair; `fake` replaces the source hash to force encapsulation, as a host
    configured to pretend it is behind a NAT does (7296-72)."""
    src = fake if fake is not None else natd_hash(spi_i, spi_r, local[0], local[1])
    dst = natd_hash(spi_i, spi_r, remote[0], remote[1])
    return [
        Notify(ProtocolId.NONE, _SRC, b"", src),
        Notify(ProtocolId.NONE, _DST, b"", dst),
    ]


def check(
    notifies: list[Notify], spi_i: bytes, spi_r: bytes, local: Endpoint, remote: Endpoint
) -> tuple[bool, bool, bool]:
    """(present, we are behind a NAT, the peer is behind a NAT) from the peer's NAT-D."""
    srcs = [n.data for n in notifies if n.type == _SRC]
    dsts = [n.data for n in notifies if n.type == _DST]
    if not srcs or not dsts:
        return False, False, False
    nat_local = natd_hash(spi_i, spi_r, local[0], local[1]) not in dsts
    nat_remote = natd_hash(spi_i, spi_r, remote[0], remote[1]) not in srcs
    return True, nat_local, nat_remote
