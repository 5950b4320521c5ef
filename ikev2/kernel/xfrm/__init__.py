"""Kernel IPsec over NETLINK_XFRM (issue 5; docs/kernel.md).

    from ikev2.kernel.xfrm import XfrmKernel
    kernel = XfrmKernel()          # needs CAP_NET_ADMIN; raises KernelError otherwise
    kernel.start()                 # remove what a crashed ikev2d left behind
    ...                            # the KernelPort calls, event_fileno()/read_events()
    kernel.close()                 # remove everything ikev2d installed
"""

from ikev2.kernel.xfrm.backend import SPI_MAX, SPI_MIN, XfrmKernel
from ikev2.kernel.xfrm.ownership import REQID_BASE, REQID_SPAN, Ownership

__all__ = ["REQID_BASE", "REQID_SPAN", "SPI_MAX", "SPI_MIN", "Ownership", "XfrmKernel"]
