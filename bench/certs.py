"""Cost of certificate authentication per IKE_AUTH, in microseconds.

Run: python3 bench/certs.py [--quick]

Per key type: producing our AUTH payload (sign_auth over ~500 octets of signed octets, the
size of an IKE_SA_INIT message plus nonce and prf output) and checking the peer's
(verify_auth). Then the certificate side a responder pays once per IKE_AUTH: parsing the
peer's CERT payloads and validating EE → intermediate → root with its ID
(verify_peer_certificates). Lines:

    sig rsa2048 sign_us=... verify_us=... method=14 scheme=rsassa-pss-sha256
    chain ecdsa-p256 certs=2 verify_peer_us=...
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from collections.abc import Callable
from datetime import UTC, datetime

# This file is bench/certs.py: run as a script, its directory comes first on sys.path and
# would shadow the `certs` package. Put the repository root there instead.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

from certs.build import (  # noqa: E402
    Validity,
    generate_key,
    issue_certificate,
    parse_identity,
    self_signed_ca,
)
from ikev2.crypto.certs import (  # noqa: E402
    CertChain,
    TrustStore,
    chain_payloads,
    parse_dn,
    verify_peer_certificates,
)
from ikev2.crypto.signature import (  # noqa: E402
    DEFAULT_HASHES,
    AuthChoice,
    choose_auth,
    sign_auth,
    verify_auth,
)
from ikev2.protocol.enums import IdType  # noqa: E402


def measure(fn: Callable[[], object], number: int) -> float:
    """Best-of-5 mean time per call in µs."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def bench_signatures(n: int) -> None:
    octets = os.urandom(500)
    for kind in ("rsa2048", "ecdsa-p256", "ed25519"):
        key = generate_key(kind)
        pub = key.public_key()
        choices: list[AuthChoice] = [choose_auth(key, DEFAULT_HASHES)]
        legacy = choose_auth(key, None) if kind != "ed25519" else None
        if legacy is not None:
            choices.append(legacy)
        for choice in choices:
            data = sign_auth(key, octets, choice)
            s = measure(lambda k=key, c=choice: sign_auth(k, octets, c), n)  # type: ignore[misc]
            v = measure(
                lambda p=pub, c=choice, d=data: verify_auth(p, c.method, d, octets), n  # type: ignore[misc]
            )
            print(f"sig {kind} sign_us={s:.0f} verify_us={v:.0f} "
                  f"method={int(choice.method)} scheme={choice.scheme.name}")


def bench_chain(n: int) -> None:
    now = datetime.now(UTC)
    v = Validity.days(now, 30)
    for kind in ("rsa2048", "ecdsa-p256", "ed25519"):
        root_key, sub_key, ee_key = (generate_key(kind) for _ in range(3))
        root = self_signed_ca(root_key, parse_dn("CN=Root"), v)
        sub = issue_certificate(root, root_key, sub_key.public_key(), parse_dn("CN=Sub"), v,
                                ca=True)
        ee = issue_certificate(sub, sub_key, ee_key.public_key(), parse_dn("CN=mn"), v,
                               sans=[parse_identity("user@example.org")])
        payloads = chain_payloads(CertChain(ee, (sub,), root))
        trust = TrustStore((root,))

        def run(p: list = payloads, t: TrustStore = trust) -> object:
            return verify_peer_certificates(p, IdType.ID_RFC822_ADDR, b"user@example.org", t,
                                            now)

        us = measure(run, n)
        print(f"chain {kind} certs={len(payloads)} verify_peer_us={us:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke test)")
    args = ap.parse_args()
    n = 20 if args.quick else 200
    bench_signatures(n)
    bench_chain(n // 2)


if __name__ == "__main__":
    main()
