"""Testbed PKI: the ikev2-pki command (certs.cli) and the builders it uses (certs.build).

Validation, CERT/CERTREQ handling and identity binding live in ikev2.crypto.certs, AUTH
signatures in ikev2.crypto.signature; ikev2-pki verify runs the same code as the daemon.
See docs/pki.md.
"""
