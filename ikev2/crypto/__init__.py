"""IKEv2 cryptography on `cryptography`: transforms, key derivation, AUTH, NAT-D, proposals."""

from ikev2.crypto.auth import KEY_PAD, psk_auth, signed_octets, verify_psk_auth
from ikev2.crypto.dh import DhGroupImpl, KeyPair, get_group, supported_groups
from ikev2.crypto.encr import Encr, UnsupportedTransform, get_encr, supported_encrs
from ikev2.crypto.integ import Integ, get_integ, supported_integs
from ikev2.crypto.keys import (
    ChildKeys,
    IkeKeys,
    compute_skeyseed,
    derive_child_keys,
    derive_ike_keys,
    derive_rekeyed_ike_keys,
)
from ikev2.crypto.natd import natd_hash
from ikev2.crypto.prf import Prf, get_prf, prf_plus, supported_prfs
from ikev2.crypto.proposals import (
    TransformInfo,
    TransformTriple,
    default_proposals,
    parse_proposal,
    parse_proposals,
    suite_name,
    supported_transforms,
)
from ikev2.crypto.sk import SkCrypter, make_esp_crypter, make_sk_crypter

__all__ = [
    "KEY_PAD",
    "ChildKeys",
    "DhGroupImpl",
    "Encr",
    "IkeKeys",
    "Integ",
    "KeyPair",
    "Prf",
    "SkCrypter",
    "TransformInfo",
    "TransformTriple",
    "UnsupportedTransform",
    "compute_skeyseed",
    "default_proposals",
    "derive_child_keys",
    "derive_ike_keys",
    "derive_rekeyed_ike_keys",
    "get_encr",
    "get_group",
    "get_integ",
    "get_prf",
    "make_esp_crypter",
    "make_sk_crypter",
    "natd_hash",
    "parse_proposal",
    "parse_proposals",
    "prf_plus",
    "psk_auth",
    "signed_octets",
    "suite_name",
    "supported_encrs",
    "supported_groups",
    "supported_integs",
    "supported_prfs",
    "supported_transforms",
    "verify_psk_auth",
]
