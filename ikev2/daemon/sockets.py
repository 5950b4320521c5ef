"""UDP sockets for IKE (port 500) and NAT-T (port 4500): bind, receive with the local
address (IP_PKTINFO / IPV6_RECVPKTINFO), send from a chosen local address, and the
RFC 3948 §2.2 non-ESP marker on the NAT-T port."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

from ikev2.core.events import Endpoint

NON_ESP_MARKER = b"\x00\x00\x00\x00"
NATT_KEEPALIVE = b"\xff"  # RFC 3948 §2.3
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; Python 3.11 lacks the constant
_CMSG_LEN = socket.CMSG_SPACE(32)
RECV_SIZE = 65535
WILDCARDS = ("0.0.0.0", "::")


class BindError(Exception):
    """A socket could not be opened; the message names the address and port."""


@dataclass(frozen=True, slots=True)
class UdpSocket:
    """One bound, nonblocking UDP socket. `natt`: this is the NAT-T port (marker applies)."""

    sock: socket.socket
    family: int
    address: str
    port: int
    natt: bool

    @property
    def wildcard(self) -> bool:
        return self.address in WILDCARDS

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def open_udp(
    address: str, port: int, *, natt: bool = False, rcvbuf: int | None = None
) -> UdpSocket:
    """Bind `address`:`port` (a wildcard or a specific address). Raises BindError."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError as exc:
        raise BindError(f"cannot open a UDP socket for {address}: {exc.strerror}") from None
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = " (another IKE daemon running? stop it or choose other ports)"
        elif exc.errno == errno.EACCES:
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            hint = " (the address is not configured on this host)"
        where = f"[{address}]:{port}" if family == socket.AF_INET6 else f"{address}:{port}"
        raise BindError(f"cannot bind UDP {where}: {reason.lower()}{hint}") from None
    return UdpSocket(sock, family, address, port, natt)


def bind_problem(address: str) -> str | None:
    """Why this host cannot send from `address` (a UDP socket cannot bind it: not
    configured, or an IPv6 address still tentative), or None when it can."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, 0))
        except OSError as exc:
            return (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
    return None


def recv(us: UdpSocket) -> tuple[bytes, Endpoint, Endpoint]:
    """One datagram as (data, local, remote); raises BlockingIOError when none is queued.
    The data still carries the non-ESP marker if it came to the NAT-T port."""
    data, ancdata, _flags, addr = us.sock.recvmsg(RECV_SIZE, _CMSG_LEN)
    local = us.address
    for level, kind, value in ancdata:
        if kind == IP_PKTINFO and level == socket.IPPROTO_IP and len(value) >= 12:
            local = socket.inet_ntop(socket.AF_INET, value[8:12])  # ipi_addr: header dst
        elif kind == socket.IPV6_PKTINFO and level == socket.IPPROTO_IPV6 and len(value) >= 16:
            local = socket.inet_ntop(socket.AF_INET6, value[:16])
    return data, (local, us.port), (addr[0], addr[1])


def strip_marker(data: bytes) -> bytes | None:
    """Datagram on the NAT-T port → the IKE message, or None for a NAT-keepalive, ESP
    (first 4 octets non-zero: the kernel's business) or a runt."""
    if data[:4] == NON_ESP_MARKER:
        return data[4:]
    return None


def classify_natt(data: bytes) -> str:
    """For logging what `strip_marker` dropped."""
    if data == NATT_KEEPALIVE:
        return "NAT-keepalive"
    if len(data) < 4:
        return f"{len(data)}-octet runt"
    return f"{len(data)}-octet ESP packet (SPI {data[:4].hex()})"


def _pktinfo(family: int, local: str) -> list[tuple[int, int, bytes]]:
    if family == socket.AF_INET:
        return [(socket.IPPROTO_IP, IP_PKTINFO,
                 struct.pack("=I4s4s", 0, socket.inet_pton(socket.AF_INET, local), b"\0" * 4))]
    addr, _, scope = local.partition("%")
    ifindex = 0
    if scope:
        ifindex = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
    return [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO,
             socket.inet_pton(socket.AF_INET6, addr) + struct.pack("=I", ifindex))]


def send(us: UdpSocket, data: bytes, local: str, remote: Endpoint) -> None:
    """Send `data` (marker already added) from `local` (PKTINFO when the socket is a
    wildcard). Raises OSError."""
    if us.wildcard:
        us.sock.sendmsg([data], _pktinfo(us.family, local), 0, remote)
    else:
        us.sock.sendto(data, remote)


class SocketSet:
    """All listening sockets and the lookup from a datagram's local endpoint to a socket."""

    __slots__ = ("_specific", "_wildcard", "sockets")

    def __init__(self) -> None:
        self.sockets: list[UdpSocket] = []
        self._specific: dict[Endpoint, UdpSocket] = {}
        self._wildcard: dict[tuple[int, int], UdpSocket] = {}

    @classmethod
    def open(cls, addresses: tuple[str, ...], ike_port: int, natt_port: int) -> SocketSet:
        """Bind every address on both ports; on failure close what was opened, raise."""
        out = cls()
        try:
            for address in addresses:
                for port in (ike_port, natt_port):
                    out.add(open_udp(address, port, natt=port == natt_port))
        except BindError:
            out.close()
            raise
        return out

    def add(self, us: UdpSocket) -> None:
        self.sockets.append(us)
        if us.wildcard:
            self._wildcard[(us.family, us.port)] = us
        else:
            self._specific[(us.address, us.port)] = us

    def lookup(self, local: Endpoint) -> UdpSocket | None:
        us = self._specific.get(local)
        if us is None:
            family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
            us = self._wildcard.get((family, local[1]))
        return us

    def close(self) -> None:
        for us in self.sockets:
            us.close()
        self.sockets.clear()
        self._specific.clear()
        self._wildcard.clear()

    def describe(self) -> str:
        return " ".join(
            f"{us.address}[{us.port}]" + ("(natt)" if us.natt else "") for us in self.sockets
        )
