"""Fixtures shared by unit tests."""

from __future__ import annotations

import asyncio

import pytest


class LoopTicks:
    """How often a 1 ms sleep came back on the event loop: a loop held by a
    blocking call counts few."""

    count = 0


@pytest.fixture
async def loop_ticks():
    ticks = LoopTicks()

    async def ticking():
        while True:
            await asyncio.sleep(0.001)
            ticks.count += 1

    ticker = asyncio.ensure_future(ticking())
    try:
        yield ticks
    finally:
        ticker.cancel()
