"""The SA table the API serves: one entry per IKE SA holding the core's latest snapshot and
its JSON, rendered once and kept until the SA changes (so listing 10,000 SAs is a join).

An entry is replaced when an event names its SA (the event carries the snapshot, or the
SA is re-read with `engine.ike_sa`), when the API sent a command for it, and, at each
read, when the engine's (ike_id, state) set differs from the cached one (half-open SAs
and REKEYING/DELETING raise no event; see api.core_adapter.ike_states). A CHILD_SA's
transient state (REKEYING, DELETING) shows in the list at its SA's next change; the
single-SA and single-CHILD_SA resources always read the engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from api import core_adapter
from api.views import ToUnix, child_view, ike_view
from ikev2.core.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    ChildSaInfo,
    ChildSaRekeyed,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaInfo,
    IkeSaRekeyed,
    IkeSaUpdated,
    IkeSaUpdateFailed,
)

_COMPACT = (",", ":")


def dumps(value: Any) -> str:
    return json.dumps(value, separators=_COMPACT)


class Entry:
    """One IKE SA: its snapshot and, once asked for, its JSON (with its children's)."""

    __slots__ = ("_children_json", "_json", "info", "state")

    def __init__(self, info: IkeSaInfo) -> None:
        self.info = info
        self.state = info.state
        self._json: str | None = None
        self._children_json: list[str] | None = None

    def children_json(self, to_unix: ToUnix) -> list[str]:
        if self._children_json is None:
            ike_id = self.info.ike_id
            self._children_json = [dumps(child_view(c, ike_id, to_unix))
                                   for c in self.info.children]
        return self._children_json

    def json(self, to_unix: ToUnix) -> str:
        if self._json is None:
            head = dumps(ike_view(self.info, to_unix, children=False))
            self._json = (head[:-1] + ',"child-sas":[' + ",".join(self.children_json(to_unix))
                          + "]}")
        return self._json


class SaSnapshots:
    def __init__(self, engine: Any, to_unix: ToUnix) -> None:
        self.engine = engine
        self.to_unix = to_unix
        self.entries: dict[int, Entry] = {}
        self.child_owner: dict[int, int] = {}  # child_id -> ike_id
        self.dirty: set[int] = set()
        self.load()

    def load(self) -> None:
        for info in self.engine.ike_sas():
            self._set(info)

    # --- updates ----------------------------------------------------------------------
    def on_event(self, event: object) -> None:
        if isinstance(event, IkeSaEstablished | IkeSaUpdated):
            self._set(event.ike)
        elif isinstance(event, IkeSaRekeyed):
            self._drop(event.old_ike_id)
            self._set(event.ike)
        elif isinstance(event, IkeSaDeleted | IkeSaFailed):
            self._drop(event.ike_id)
            self.dirty.discard(event.ike_id)
        elif isinstance(event, ChildSaEstablished | ChildSaRekeyed | ChildSaDeleted
                        | ChildSaFailed | IkeSaUpdateFailed):
            self.dirty.add(event.ike_id)  # (a refused MOBIKE update moved the SA back)

    def mark(self, ike_id: int) -> None:
        """The API changed this SA (a command): re-read it at the next access."""
        self.dirty.add(ike_id)

    def _set(self, info: IkeSaInfo) -> None:
        old = self.entries.get(info.ike_id)
        if old is not None:
            for c in old.info.children:
                if self.child_owner.get(c.child_id) == info.ike_id:
                    del self.child_owner[c.child_id]
        self.entries[info.ike_id] = Entry(info)
        for c in info.children:
            self.child_owner[c.child_id] = info.ike_id

    def _drop(self, ike_id: int) -> None:
        old = self.entries.pop(ike_id, None)
        if old is not None:
            for c in old.info.children:
                if self.child_owner.get(c.child_id) == ike_id:
                    del self.child_owner[c.child_id]

    def _refresh(self, ike_id: int) -> IkeSaInfo | None:
        info = self.engine.ike_sa(ike_id)
        if info is None:
            self._drop(ike_id)
        else:
            self._set(info)
        return info  # type: ignore[no-any-return]

    def sync(self) -> None:
        """Bring the table up to date with the engine (cheap when nothing changed)."""
        for ike_id in self.dirty:
            self._refresh(ike_id)
        self.dirty.clear()
        live = dict(core_adapter.ike_states(self.engine))
        entries = self.entries
        if len(live) != len(entries) or any(i not in live for i in entries):
            for ike_id in [i for i in entries if i not in live]:
                self._drop(ike_id)
        for ike_id, state in live.items():
            entry = entries.get(ike_id)
            if entry is None or entry.state != state:
                self._refresh(ike_id)

    # --- reads ------------------------------------------------------------------------
    def select(
        self, *, connection: str | None = None, peer_id: str | None = None,
        peer_addr: str | None = None, state: str | None = None,
    ) -> Iterator[Entry]:
        self.sync()
        for ike_id in sorted(self.entries):
            e = self.entries[ike_id]
            info = e.info
            if connection is not None and info.name != connection:
                continue
            if peer_id is not None and info.remote_id != peer_id:
                continue
            if peer_addr is not None and info.remote[0] != peer_addr:
                continue
            if state is not None and e.state != state:
                continue
            yield e

    def list_json(self, **filters: str | None) -> str:
        to_unix = self.to_unix
        return "[" + ",".join(e.json(to_unix) for e in self.select(**filters)) + "]"

    def ike(self, ike_id: int) -> IkeSaInfo | None:
        """A fresh snapshot of one IKE SA (the engine is asked every time)."""
        self.dirty.discard(ike_id)
        return self._refresh(ike_id)

    def child(self, child_id: int) -> tuple[IkeSaInfo, ChildSaInfo] | None:
        """A fresh snapshot of the CHILD_SA and its IKE SA."""
        ike_id = self.child_owner.get(child_id)
        if ike_id is None:
            self.sync()
            ike_id = self.child_owner.get(child_id)
            if ike_id is None:
                return None
        info = self.ike(ike_id)
        if info is None:
            return None
        for c in info.children:
            if c.child_id == child_id:
                return info, c
        return None

    def states(self) -> dict[str, int]:
        self.sync()
        out: dict[str, int] = {}
        for e in self.entries.values():
            out[e.state] = out.get(e.state, 0) + 1
        return out
