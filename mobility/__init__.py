"""Mobile IPv6 side of ikev2d: Mobility Header codec, binding cache, RFC 4877 SA layout,
BU/BA transports and the K-bit handover hook (docs/mobility.md)."""
