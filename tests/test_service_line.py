"""The worker's evaluation line: first come, first evaluated among the requests that are ready."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from mdtflag.service.line import Line


async def _request(line: Line, ticket: int, ready_after: int, log: list[tuple[str, int]], holding: list[int]) -> None:
    for _ in range(ready_after):  # reading the body: some turns of the event loop
        await asyncio.sleep(0)
    async with line.turn(ticket):
        holding.append(ticket)
        assert len(holding) == 1, "two requests evaluated at once"
        log.append(("start", ticket))
        holding.remove(ticket)  # evaluation is synchronous: it ends before the next await


def _run(ready_after: list[int]) -> list[int]:
    async def main() -> list[int]:
        line = Line()
        log: list[tuple[str, int]] = []
        holding: list[int] = []
        tasks = [asyncio.create_task(_request(line, line.ticket(), r, log, holding)) for r in ready_after]
        await asyncio.gather(*tasks)
        assert line.waiting == 0
        return [t for _, t in log]

    return asyncio.run(main())


def _readiness_order(ready_after: list[int]) -> list[int]:
    """The order the same requests would evaluate in without a line: the order they become ready."""

    async def main() -> list[int]:
        seen: list[int] = []

        async def req(t: int, delay: int) -> None:
            for _ in range(delay):
                await asyncio.sleep(0)
            seen.append(t)

        await asyncio.gather(*(req(t, d) for t, d in enumerate(ready_after, 1)))
        return seen

    return asyncio.run(main())


def test_requests_waiting_together_are_evaluated_in_arrival_order() -> None:
    # 3 and 4 are read first, 2 and then 1 a little later; without a line they run as they become ready
    assert _readiness_order([2, 1, 0, 0]) == [3, 4, 2, 1]
    # with it, 2 has taken its place before the first turn is given, 1 before the second
    assert _run([2, 1, 0, 0]) == [2, 1, 3, 4]


def test_a_request_still_reading_its_body_does_not_hold_up_the_ready_ones() -> None:
    assert _run([50, 0, 0]) == [2, 3, 1]


def test_an_idle_worker_starts_on_the_first_ready_request() -> None:
    assert _run([3, 3, 3, 0]) == [4, 1, 2, 3]


class _Recording(Line):
    """A line that records, each time it gives a turn, the tickets then waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.pending_at_turns: list[list[int]] = []

    def _pass_on(self) -> None:
        pending = sorted(t for t, f in self._waiting if not f.done())
        if pending:
            self.pending_at_turns.append(pending)
        super()._pass_on()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=12))
def test_every_request_gets_one_turn_and_ready_ones_go_by_ticket(ready_after: list[int]) -> None:
    """No request is lost or served twice, no two hold the turn at once, and each turn goes to the
    smallest ticket among the requests waiting when it is given."""

    async def main() -> None:
        line = _Recording()
        log: list[tuple[str, int]] = []
        holding: list[int] = []
        await asyncio.gather(*(_request(line, line.ticket(), r, log, holding) for r in ready_after))
        started = [t for _, t in log]
        assert sorted(started) == list(range(1, len(ready_after) + 1))
        assert started == [min(p) for p in line.pending_at_turns]
        assert line.waiting == 0 and not line._busy

    asyncio.run(main())


def test_a_request_cancelled_while_waiting_or_holding_the_turn_does_not_stop_the_line() -> None:
    async def main() -> list[int]:
        line = Line()
        log: list[tuple[str, int]] = []
        holding: list[int] = []
        first = asyncio.create_task(_request(line, line.ticket(), 0, log, holding))
        second = asyncio.create_task(_request(line, line.ticket(), 0, log, holding))
        third = asyncio.create_task(_request(line, line.ticket(), 0, log, holding))
        await asyncio.sleep(0)
        second.cancel()  # waiting in line: gone from it
        await asyncio.gather(first, third, return_exceptions=True)
        # given the turn, then cancelled before it runs: the turn passes on
        x = asyncio.create_task(_request(line, line.ticket(), 0, log, holding))
        a = asyncio.create_task(_request(line, line.ticket(), 0, log, holding))
        b = asyncio.create_task(_request(line, line.ticket(), 0, log, holding))
        await x  # the turn has just been handed to a, which has not run yet
        assert [t for t, _ in line._waiting] == [6] and ("start", 5) not in log  # 5 has the turn, unused
        a.cancel()
        await asyncio.wait_for(asyncio.gather(a, b, return_exceptions=True), timeout=5)
        assert a.cancelled() and line.waiting == 0 and not line._busy
        assert second.cancelled()
        return [t for _, t in log]

    assert asyncio.run(main()) == [1, 3, 4, 6]
