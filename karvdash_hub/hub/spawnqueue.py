"""Spawn admission: at most so many user servers start at once; the others
wait in a queue, first come first served, and see their place.

A JupyterLab start costs a few CPU-seconds (a pod start costs the cluster
an image pull and a scheduling round): when a class logs in at once, every
start slows down the others until they all miss ``http_timeout``. Letting a
few start at a time finishes them all sooner, and none fails.

:class:`SpawnQueue` is the pure model (places and order); :class:`SpawnAdmission`
is its asyncio side, which the spawners wait on (``profilespawner.py``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable


class SpawnQueue:
    """At most ``limit`` holders of a place; everyone else waits, in order.

    A key joins once, and leaves once (its start succeeded, failed, or was
    cancelled, whether it was holding a place or still waiting); a place
    that is left goes to the first key waiting.
    """

    def __init__(self, limit: int):
        if limit < 1:
            raise ValueError("the spawn limit must be at least 1")
        self.limit = limit
        self._holding: set[Hashable] = set()
        # insertion order is the order of arrival; removal of any key is O(1)
        self._waiting: OrderedDict[Hashable, None] = OrderedDict()

    def join(self, key: Hashable) -> int:
        """Queue ``key``; its :meth:`position` (0: it holds a place)."""
        if key in self._holding or key in self._waiting:
            raise ValueError(f"{key!r} is already in the spawn queue")
        if len(self._holding) < self.limit and not self._waiting:
            self._holding.add(key)
            return 0
        self._waiting[key] = None
        return len(self._waiting)

    def position(self, key: Hashable) -> int | None:
        """0 while ``key`` holds a place, n while it is the n-th waiting,
        None once it left (or never joined)."""
        if key in self._holding:
            return 0
        if key not in self._waiting:
            return None
        for number, waiting in enumerate(self._waiting, start=1):
            if waiting == key:
                return number
        return None  # pragma: no cover - found above

    def leave(self, key: Hashable) -> list[Hashable]:
        """Take ``key`` out (a second call does nothing); the keys that got a place by it."""
        if key in self._waiting:
            del self._waiting[key]
            return []
        if key not in self._holding:
            return []
        self._holding.discard(key)
        admitted = []
        while self._waiting and len(self._holding) < self.limit:
            first, _ = self._waiting.popitem(last=False)
            self._holding.add(first)
            admitted.append(first)
        return admitted

    @property
    def holding(self) -> int:
        return len(self._holding)

    @property
    def waiting(self) -> int:
        return len(self._waiting)


class Ticket:
    """One start's entry in the queue (a user who stops and starts again
    gets a new one, so a late release of the old start frees nothing else)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<spawn ticket {self.name}>"


class SpawnAdmission:
    """The hub's one spawn queue, for coroutines to wait on."""

    def __init__(self, limit: int):
        self.queue = SpawnQueue(limit)
        self._changed = asyncio.Event()

    @property
    def limit(self) -> int:
        return self.queue.limit

    def _notify(self) -> None:
        # everyone waiting looks again; the next change needs a new event
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def join(self, name: str) -> Ticket:
        ticket = Ticket(name)
        self.queue.join(ticket)
        self._notify()
        return ticket

    def leave(self, ticket: Ticket) -> None:
        if self.queue.position(ticket) is not None:
            self.queue.leave(ticket)
            self._notify()

    def position(self, ticket: Ticket) -> int | None:
        return self.queue.position(ticket)

    async def admitted(self, ticket: Ticket, timeout: float) -> None:
        """Return once ``ticket`` holds a place; TimeoutError after ``timeout``
        seconds of waiting (the ticket has then left the queue). A cancelled
        wait leaves the queue too."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    position = self.queue.position(ticket)
                    if position == 0:
                        return
                    if position is None:
                        raise RuntimeError(f"{ticket!r} left the spawn queue while waiting")
                    await self._changed.wait()
        except BaseException:
            self.leave(ticket)
            raise

    async def positions(self, ticket: Ticket) -> AsyncIterator[int]:
        """The ticket's place each time it changes (n > 0), until it holds a
        place or left the queue."""
        last = None
        while True:
            position = self.queue.position(ticket)
            if not position:
                return
            if position != last:
                last = position
                yield position
            await self._changed.wait()
