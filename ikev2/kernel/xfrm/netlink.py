"""A synchronous NETLINK_XFRM request socket and kernel-error translation.

Messages are encoded and decoded with the pyroute2 declarations in `messages`; the socket
itself is a plain AF_NETLINK socket. pyroute2 0.9's `NetlinkSocket` runs every call through
`loop.run_until_complete()` on an event loop of its own, which raises "This event loop is
already running" when called from the daemon's asyncio loop, and the core calls the kernel
port synchronously from that loop. A blocking request/ACK exchange is what the port needs:
every request carries NLM_F_ACK and a sequence number (REQUIREMENTS X-18) and is answered
within microseconds.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

from pyroute2.netlink import nlmsg

from ikev2.errors import KernelError
from ikev2.kernel.xfrm import messages
from ikev2.kernel.xfrm.consts import (
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_XFRM,
    SOL_NETLINK,
    NlErrAttr,
    NlFlag,
    NlMsgType,
    XfrmMsg,
)

_HDR = struct.Struct("=IHHII")
RECV_SIZE = 1 << 18
DEFAULT_TIMEOUT = 5.0


class NetlinkError(KernelError):
    """A request the kernel answered with a negative errno (`errno`), with the kernel's
    extended-ACK text (`detail`, may be empty)."""

    def __init__(self, message: str, errno_: int, detail: str = "") -> None:
        super().__init__(message, errno_)
        self.detail = detail


def open_xfrm_socket(groups: int = 0, *, timeout: float | None = DEFAULT_TIMEOUT,
                     rcvbuf: int = 1 << 20) -> socket.socket:
    """A bound NETLINK_XFRM socket. Raises KernelError when netlink XFRM is unusable."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_XFRM)
    except OSError as e:
        raise KernelError(
            f"cannot open a NETLINK_XFRM socket ({e.strerror}): the kernel lacks "
            "CONFIG_XFRM_USER (module xfrm_user)", e.errno,
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        for opt in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
            with contextlib.suppress(OSError):  # old kernels: no extended-ACK text
                sock.setsockopt(SOL_NETLINK, opt, 1)
        sock.bind((0, groups))
        sock.settimeout(timeout)
    except OSError as e:
        sock.close()
        raise KernelError(f"cannot bind a NETLINK_XFRM socket: {e.strerror}", e.errno) from None
    return sock


def iter_messages(buf: bytes | bytearray) -> Iterator[tuple[int, int, int, int, int]]:
    """(offset, length, type, flags, seq) of each netlink message in a datagram."""
    off = 0
    n = len(buf)
    while off + _HDR.size <= n:
        length, mtype, flags, seq, _pid = _HDR.unpack_from(buf, off)
        if length < _HDR.size or off + length > n:
            break
        yield off, length, mtype, flags, seq
        off += (length + 3) & ~3


def parse_error(buf: bytes | bytearray, off: int, length: int, flags: int) -> tuple[int, str]:
    """(errno, extended-ACK message) of an NLMSG_ERROR message (0 = ACK)."""
    (err,) = struct.unpack_from("=i", buf, off + _HDR.size)
    text = ""
    if flags & NlFlag.ACK_TLVS:
        inner = off + _HDR.size + 4
        (inner_len,) = struct.unpack_from("=I", buf, inner)
        pos = inner + (_HDR.size if flags & NlFlag.CAPPED else (inner_len + 3) & ~3)
        end = off + length
        while pos + 4 <= end:
            alen, atype = struct.unpack_from("=HH", buf, pos)
            if alen < 4:
                break
            if atype == NlErrAttr.MSG:
                text = bytes(buf[pos + 4 : pos + alen]).rstrip(b"\0").decode("utf-8", "replace")
            pos += (alen + 3) & ~3
    return -err, text


class XfrmSocket:
    """Request/response over one NETLINK_XFRM socket (not thread-safe; one per backend)."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = open_xfrm_socket(timeout=timeout)
        self._seq = itertools.count(int.from_bytes(os.urandom(2), "big") + 1)
        self.requests = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, msg_type: int, body: dict[str, Any],
                attrs: list[tuple[str, Any]] | None = None, *, what: str = "",
                flags: int = NlFlag.REQUEST | NlFlag.ACK) -> list[nlmsg]:
        """Send one request; return the messages answering it (e.g. the SA an ALLOCSPI
        creates). A negative errno raises NetlinkError (a KernelError)."""
        seq = next(self._seq) & 0xFFFFFFFF
        data = messages.encode(msg_type, body, attrs or [], flags=flags, seq=seq)
        return self._exchange(data, seq, msg_type, what)

    def dump(self, msg_type: int, body: dict[str, Any] | None = None, *,
             what: str = "") -> list[nlmsg]:
        """All objects of a GETSA / GETPOLICY dump."""
        seq = next(self._seq) & 0xFFFFFFFF
        data = messages.encode(msg_type, body or {}, [], flags=NlFlag.REQUEST | NlFlag.DUMP,
                               seq=seq)
        return self._exchange(data, seq, msg_type, what or f"dump {XfrmMsg(msg_type).name}")

    def _exchange(self, data: bytes, seq: int, msg_type: int, what: str) -> list[nlmsg]:
        self.requests += 1
        try:
            self.sock.send(data)
        except OSError as e:
            raise translate(msg_type, e.errno or errno.EIO, "", what) from None
        out: list[nlmsg] = []
        while True:
            try:
                buf = self.sock.recv(RECV_SIZE)
            except TimeoutError:
                raise KernelError(f"{what or XfrmMsg(msg_type).name}: no answer from the "
                                  "kernel (netlink timeout)", errno.ETIMEDOUT) from None
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    continue  # a lost multicast on this socket does not concern us
                raise translate(msg_type, e.errno or errno.EIO, "", what) from None
            for off, length, mtype, flags, mseq in iter_messages(buf):
                if mseq != seq:
                    continue  # a stale answer to an earlier, timed-out request
                if mtype == NlMsgType.ERROR:
                    err, text = parse_error(buf, off, length, flags)
                    if err:
                        raise translate(msg_type, err, text, what)
                    return out
                if mtype == NlMsgType.DONE:
                    return out
                decoded = messages.decode(buf, off)
                if decoded is not None:
                    out.append(decoded)


# --- errors ---------------------------------------------------------------------------------

_SA_MSGS = {XfrmMsg.NEWSA, XfrmMsg.UPDSA}


def translate(msg_type: int, err: int, detail: str, what: str) -> NetlinkError:
    """A kernel errno as a KernelError whose message says what to do about it."""
    op = what or XfrmMsg(msg_type).name
    strerror = os.strerror(err)
    hint = ""
    if err == errno.EPERM:
        hint = "XFRM needs CAP_NET_ADMIN: run ikev2d as root"
    elif err == errno.EPROTONOSUPPORT and msg_type in _SA_MSGS:
        hint = ("the kernel has no ESP/AH support (load esp4/esp6, or use a kernel with "
                "CONFIG_INET_ESP / CONFIG_INET6_ESP)")
    elif err == errno.ENOSYS and msg_type in _SA_MSGS:
        hint = "the kernel lacks the crypto algorithm (load its crypto module)"
    elif err == errno.ENOPROTOOPT and msg_type == XfrmMsg.MIGRATE:
        hint = "the kernel was built without CONFIG_XFRM_MIGRATE"
    elif err == errno.EEXIST:
        hint = "already installed"
    text = f"{op}: {strerror}"
    if detail:
        text += f" ({detail})"
    if hint:
        text += f": {hint}"
    return NetlinkError(text, err, detail)
