"""Readable, aligned SA tables (for `ikev2ctl list-sas` and `ikev2d demo`)."""

from __future__ import annotations

from collections.abc import Sequence

from ikev2.core.events import IkeSaInfo
from ikev2.daemon.eventlog import endpoint


def _table(rows: list[list[str]], indent: str) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def format_sa_table(ike_sas: Sequence[IkeSaInfo]) -> str:
    if not ike_sas:
        return "no IKE SAs"
    lines: list[str] = []
    ike_rows = [["IKE_SA", "STATE", "ROLE", "LOCAL", "REMOTE", "LOCAL ID", "REMOTE ID",
                 "SPI_I", "SPI_R", "SUITE"]]
    for sa in ike_sas:
        ike_rows.append([
            f"{sa.name}[{sa.ike_id}]", sa.state, "init" if sa.initiator else "resp",
            endpoint(sa.local), endpoint(sa.remote), sa.local_id, sa.remote_id,
            f"{sa.spi_i:016x}", f"{sa.spi_r:016x}", sa.suite,
        ])
    lines += _table(ike_rows, "")
    child_rows = [["CHILD_SA", "IKE_SA", "STATE", "MODE", "SPI_IN", "SPI_OUT", "SUITE",
                   "LOCAL TS", "REMOTE TS"]]
    for sa in ike_sas:
        for c in sa.children:
            child_rows.append([
                f"{c.name}{{{c.child_id}}}", f"{sa.name}[{sa.ike_id}]", c.state,
                c.mode + ("+encap" if c.encap else ""), f"{c.spi_in:08x}", f"{c.spi_out:08x}",
                c.suite, " ".join(c.local_ts), " ".join(c.remote_ts),
            ])
    if len(child_rows) > 1:
        lines.append("")
        lines += _table(child_rows, "")
    return "\n".join(lines)
