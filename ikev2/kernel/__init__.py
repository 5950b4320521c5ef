"""Executors of the core's kernel requests (the KernelPort in `base`): `memory` records
them, `xfrm` programs Linux IPsec over NETLINK_XFRM. See docs/kernel.md."""

BACKENDS = ("memory", "xfrm")
