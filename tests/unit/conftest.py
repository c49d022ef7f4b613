"""Fixtures shared by unit tests."""

from __future__ import annotations

import asyncio
import os

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


@pytest.fixture
def state_env(tmp_path, monkeypatch):
    """No KARVDASH_ variable of this shell, and the state in ``tmp_path``."""
    for name in [n for n in os.environ if n.startswith("KARVDASH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("KARVDASH_STATE_DIR", str(tmp_path))
    return monkeypatch
