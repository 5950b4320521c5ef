"""In-memory kernel backend: records what would be installed (tests, unprivileged demos)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ikev2.errors import KernelError
from ikev2.kernel.base import ChildSaSpec, ChildSaStats


@dataclass(slots=True)
class MemoryKernel:
    """Implements ikev2.kernel.base.KernelPort. `fail_install` makes installs fail, to
    exercise the error path the xfrm backend hits on a kernel without ESP."""

    random_bytes: Callable[[int], bytes] | None = None
    fail_install: str | None = None
    children: dict[tuple[str, int], ChildSaSpec] = field(default_factory=dict)
    spis: set[tuple[str, int]] = field(default_factory=set)
    _next_spi: int = 0xC0000001

    def alloc_spi(self, local: str, remote: str, protocol: int) -> int:
        while True:
            if self.random_bytes is not None:
                spi = int.from_bytes(self.random_bytes(4), "big") | 0xC0000000
            else:
                spi = self._next_spi
                self._next_spi += 1
            if (local, spi) not in self.spis:
                self.spis.add((local, spi))
                return spi

    def release_spi(self, local: str, spi: int, protocol: int) -> None:
        self.spis.discard((local, spi))

    def install_child(self, spec: ChildSaSpec) -> None:
        if self.fail_install:
            raise KernelError(self.fail_install)
        key = (spec.local, spec.spi_in)
        if key in self.children:
            raise KernelError(f"SA with SPI {spec.spi_in:08x} already installed")
        self.children[key] = spec

    def remove_child(self, spec: ChildSaSpec) -> None:
        self.children.pop((spec.local, spec.spi_in), None)
        self.spis.discard((spec.local, spec.spi_in))

    def child_stats(self, spec: ChildSaSpec) -> ChildSaStats:
        return ChildSaStats()
