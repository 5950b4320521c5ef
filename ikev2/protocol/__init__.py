"""IKEv2 wire format: header, payloads, strict parse/build, SK protection (RFC 7296 §3).

Names are loaded lazily (PEP 562): `ikev2.errors` imports `ikev2.protocol.enums`, so this
package must not import the codec (which imports `ikev2.errors`) while it initialises.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ikev2.protocol.codec import (
        build_message,
        decode_payloads,
        encode_payloads,
        parse_message,
    )
    from ikev2.protocol.header import HEADER_LEN, Header, parse_header
    from ikev2.protocol.payloads import (
        AUTH,
        CERT,
        CERTREQ,
        CP,
        EAP,
        KE,
        SA,
        SK,
        SKF,
        Delete,
        IDi,
        IDr,
        Nonce,
        Notify,
        Payload,
        Proposal,
        Transform,
        TSi,
        TSr,
        Unknown,
        VendorId,
    )
    from ikev2.protocol.sk import (
        protect,
        protect_fragments,
        reassemble,
        unprotect,
        unprotect_fragment,
    )

_WHERE = {
    **dict.fromkeys(
        ("build_message", "decode_payloads", "encode_payloads", "parse_message"), "codec"
    ),
    **dict.fromkeys(("HEADER_LEN", "Header", "parse_header"), "header"),
    **dict.fromkeys(
        (
            "AUTH", "CERT", "CERTREQ", "CP", "EAP", "KE", "SA", "SK", "SKF", "Delete", "IDi",
            "IDr", "Nonce", "Notify", "Payload", "Proposal", "Transform", "TSi", "TSr",
            "Unknown", "VendorId",
        ),
        "payloads",
    ),
    **dict.fromkeys(
        ("protect", "protect_fragments", "reassemble", "unprotect", "unprotect_fragment"), "sk"
    ),
}

__all__ = [
    "AUTH",
    "CERT",
    "CERTREQ",
    "CP",
    "EAP",
    "HEADER_LEN",
    "KE",
    "SA",
    "SK",
    "SKF",
    "Delete",
    "Header",
    "IDi",
    "IDr",
    "Nonce",
    "Notify",
    "Payload",
    "Proposal",
    "TSi",
    "TSr",
    "Transform",
    "Unknown",
    "VendorId",
    "build_message",
    "decode_payloads",
    "encode_payloads",
    "parse_header",
    "parse_message",
    "protect",
    "protect_fragments",
    "reassemble",
    "unprotect",
    "unprotect_fragment",
]


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module 'ikev2.protocol' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ikev2.protocol.{mod}"), name)
    globals()[name] = value
    return value
