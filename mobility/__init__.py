"""Mobile IPv6 side of ikev2d (RFC 4877 hooks); filled in by the mobility issue."""
