"""Testbed PKI and X.509 authentication; filled in by the certificates issue."""
