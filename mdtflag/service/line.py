"""One worker's line for evaluation: first come, first evaluated.

Evaluation is CPU-bound and runs inline, so a worker evaluates one request at a time and the others
wait. Without a line they are resumed in whatever order the event loop happens to wake them (the order
their body chunks complete, interleaved with the server's own hand-over), and under load some
requests wait for two rounds of the others while most wait for less than one: a long tail. With it,
each request takes a ticket when it arrives and, once its body is read and checked, evaluates after
every *ready* request with a smaller ticket. A request still reading its body does not hold up the
ones behind it, so the worker is never idle while a request is ready.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Line:
    """Tickets in arrival order, turns in ticket order among the requests ready to evaluate."""

    def __init__(self) -> None:
        self._issued = 0
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._busy = False

    def ticket(self) -> int:
        """The next ticket: take it when the request arrives."""
        self._issued += 1
        return self._issued

    @property
    def waiting(self) -> int:
        """Requests ready and waiting for their turn (not counting the one evaluating)."""
        return sum(1 for _, f in self._waiting if not f.done())

    @asynccontextmanager
    async def turn(self, ticket: int) -> AsyncIterator[None]:
        """Wait until no ready request with a smaller ticket is left, then hold the turn."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (ticket, fut))
        try:
            if not self._busy:
                self._busy = True
                try:
                    # requests already delivered to this worker take their places before the first
                    # turn is given
                    await asyncio.sleep(0)
                finally:
                    self._pass_on()
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # given the turn, then cancelled: hand it on
                self._pass_on()
            else:
                fut.cancel()  # skipped when its place comes up
            raise
        try:
            yield
        finally:
            # the next turn starts after the event loop has looked for new arrivals once
            asyncio.get_running_loop().call_soon(self._pass_on)

    def _pass_on(self) -> None:
        while self._waiting:
            _, fut = heapq.heappop(self._waiting)
            if not fut.done():
                fut.set_result(None)
                return
        self._busy = False
