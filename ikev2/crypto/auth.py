"""AUTH payload computation for shared keys and signed octets (RFC 7296 §2.15)."""

from __future__ import annotations

import hmac

from ikev2.crypto.prf import Prf

__all__ = ["KEY_PAD", "psk_auth", "signed_octets", "verify_psk_auth"]

# RFC 7296 §2.15: the 17 ASCII octets "Key Pad for IKEv2", no terminating NUL
KEY_PAD = b"Key Pad for IKEv2"


def signed_octets(
    real_message: bytes, peer_nonce: bytes, prf: Prf, sk_p: bytes, id_rest: bytes
) -> bytes:
    """RealMessage | Nonce(peer) | prf(SK_p, RestOfIDPayload) (RFC 7296 §2.15)."""
    return real_message + peer_nonce + prf(sk_p, id_rest)


def psk_auth(prf: Prf, psk: bytes, octets: bytes) -> bytes:
    """AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>) (RFC 7296 §2.15)."""
    return prf(prf(psk, KEY_PAD), octets)


def verify_psk_auth(prf: Prf, psk: bytes, octets: bytes, auth_data: bytes) -> bool:
    """Constant-time check of a peer's shared-key AUTH data (RFC 7296 §2.15)."""
    return hmac.compare_digest(psk_auth(prf, psk, octets), auth_data)
