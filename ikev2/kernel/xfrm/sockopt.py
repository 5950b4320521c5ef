"""Socket options an IKE daemon on kernel IPsec needs on its UDP sockets.

- Per-socket bypass policies (REQUIREMENTS X-11): IKE packets must never be caught by the
  SPD entries the daemon installs (a transport-mode child between the two IKE addresses
  with protocol "any" covers the IKE packets themselves). IP_XFRM_POLICY (17, <linux/in.h>)
  / IPV6_XFRM_POLICY (35, <linux/in6.h>; REQUIREMENTS X-11 says 34, which is
  IPV6_IPSEC_POLICY) take an xfrm_userpolicy_info with action ALLOW, one call per direction.
- ESP-in-UDP (REQUIREMENTS X-08): UDP_ENCAP (100) = UDP_ENCAP_ESPINUDP (2) at SOL_UDP on the
  NAT-T socket makes the kernel decapsulate ESP arriving on it; packets with the non-ESP
  marker still reach the socket.
"""

from __future__ import annotations

import socket

from ikev2.kernel.xfrm.consts import (
    IP_XFRM_POLICY,
    IPV6_XFRM_POLICY,
    SOL_UDP,
    UDP_ENCAP,
    XFRM_INF,
    PolicyAction,
    PolicyDir,
    UdpEncap,
)
from ikev2.kernel.xfrm.structs import UserPolicyInfo

_NO_LIMITS = {
    "soft_byte_limit": XFRM_INF, "hard_byte_limit": XFRM_INF,
    "soft_packet_limit": XFRM_INF, "hard_packet_limit": XFRM_INF,
}


def bypass_policy(direction: PolicyDir, family: int) -> bytes:
    """The xfrm_userpolicy_info of a per-socket ALLOW policy for one direction (the kernel
    wants the selector family set, prefixes 0 match everything)."""
    return UserPolicyInfo.pack({"sel": {"family": family}, "lft": _NO_LIMITS,
                                "dir": int(direction), "action": int(PolicyAction.ALLOW)})


def bypass_ipsec(sock: socket.socket) -> None:
    """Exempt everything this socket sends and receives from the SPD (needs CAP_NET_ADMIN)."""
    if sock.family == socket.AF_INET6:
        level, opt = socket.IPPROTO_IPV6, IPV6_XFRM_POLICY
    else:
        level, opt = socket.IPPROTO_IP, IP_XFRM_POLICY
    for d in (PolicyDir.IN, PolicyDir.OUT):
        sock.setsockopt(level, opt, bypass_policy(d, sock.family))


def enable_esp_in_udp(sock: socket.socket) -> None:
    """Let the kernel decapsulate ESP-in-UDP (RFC 3948) arriving on this socket."""
    sock.setsockopt(SOL_UDP, UDP_ENCAP, int(UdpEncap.ESPINUDP))


def prepare_ike_socket(sock: socket.socket, natt: bool) -> None:
    """Both of the above as an IKE socket on port 500 (natt=False) or 4500 needs them."""
    bypass_ipsec(sock)
    if natt:
        enable_esp_in_udp(sock)
