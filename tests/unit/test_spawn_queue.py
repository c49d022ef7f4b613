"""The spawn queue: places, first come first served, leaving while waiting
(a user who stops), leaving with a place (a start that failed or finished),
the asyncio waits on it, and its settings."""

from __future__ import annotations

import asyncio
import os

import pytest

from karvdash_hub.core.settings import SettingsError, load_settings
from karvdash_hub.hub.spawnqueue import SpawnAdmission, SpawnQueue


def test_the_first_ones_get_a_place_and_the_others_wait_in_order():
    queue = SpawnQueue(2)
    assert [queue.join(name) for name in "abcde"] == [0, 0, 1, 2, 3]
    assert [queue.position(name) for name in "abcde"] == [0, 0, 1, 2, 3]
    assert (queue.holding, queue.waiting) == (2, 3)


def test_a_place_left_goes_to_the_first_waiting():
    queue = SpawnQueue(2)
    for name in "abcde":
        queue.join(name)
    assert queue.leave("b") == ["c"]
    assert [queue.position(name) for name in "acde"] == [0, 0, 1, 2]
    assert queue.leave("a") == ["d"]
    assert queue.leave("c") == ["e"]
    assert (queue.holding, queue.waiting) == (2, 0)


def test_leaving_while_waiting_moves_the_later_ones_up_and_gives_no_place():
    queue = SpawnQueue(1)
    for name in "abcd":
        queue.join(name)
    assert queue.leave("b") == []
    assert queue.position("b") is None
    assert [queue.position(name) for name in "acd"] == [0, 1, 2]
    assert queue.leave("a") == ["c"]


def test_leaving_twice_frees_one_place_only():
    queue = SpawnQueue(1)
    for name in "abc":
        queue.join(name)
    assert queue.leave("a") == ["b"]
    assert queue.leave("a") == []
    assert queue.position("c") == 1
    assert queue.leave("never-joined") == []


def test_no_place_leaks_when_every_start_fails():
    queue = SpawnQueue(3)
    names = [f"u{i}" for i in range(20)]
    for name in names:
        queue.join(name)
    for name in names:
        queue.leave(name)
    assert (queue.holding, queue.waiting) == (0, 0)
    assert queue.join("next") == 0


def test_a_key_joins_once_and_the_limit_is_at_least_one():
    queue = SpawnQueue(1)
    queue.join("a")
    with pytest.raises(ValueError):
        queue.join("a")
    with pytest.raises(ValueError):
        SpawnQueue(0)


def run(coroutine):
    return asyncio.run(coroutine)


def test_waiters_are_admitted_in_the_order_they_came():
    async def scenario():
        admission = SpawnAdmission(1)
        tickets = [admission.join(f"u{i}") for i in range(4)]
        order = []

        async def wait(ticket):
            await admission.admitted(ticket, timeout=10)
            order.append(ticket.name)

        waits = [asyncio.ensure_future(wait(t)) for t in reversed(tickets)]
        for ticket in tickets:
            await asyncio.sleep(0.01)
            admission.leave(ticket)
        await asyncio.gather(*waits)
        return order

    assert run(scenario()) == ["u0", "u1", "u2", "u3"]


def test_a_cancelled_wait_leaves_the_queue():
    async def scenario():
        admission = SpawnAdmission(1)
        first, second, third = (admission.join(name) for name in ("a", "b", "c"))
        waiting = asyncio.ensure_future(admission.admitted(second, timeout=10))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert admission.position(second) is None
        assert admission.position(third) == 1
        admission.leave(first)
        return admission.position(third)

    assert run(scenario()) == 0


def test_a_wait_that_times_out_leaves_the_queue():
    async def scenario():
        admission = SpawnAdmission(1)
        admission.join("a")
        late = admission.join("b")
        with pytest.raises(TimeoutError):
            await admission.admitted(late, timeout=0.05)
        return admission.position(late), admission.queue.waiting

    assert run(scenario()) == (None, 0)


def test_positions_follow_the_queue_until_the_place_is_given():
    async def scenario():
        admission = SpawnAdmission(1)
        holders = [admission.join(name) for name in ("a", "b")]
        mine = admission.join("c")
        seen = []

        async def follow():
            async for position in admission.positions(mine):
                seen.append(position)

        following = asyncio.ensure_future(follow())
        for ticket in holders:
            await asyncio.sleep(0.01)
            admission.leave(ticket)
        await asyncio.wait_for(following, 1)
        return seen, admission.position(mine)

    assert run(scenario()) == ([2, 1], 0)


def test_spawn_concurrency_is_sized_from_the_machine_unless_set():
    local = load_settings(environ={"KARVDASH_STATE_DIR": "/srv/karvdash"})
    assert local.spawn_concurrency == 4 * len(os.sched_getaffinity(0))
    kube = load_settings(
        environ={"KARVDASH_STATE_DIR": "/srv/karvdash", "KARVDASH_MODE": "kubernetes", "KARVDASH_INGRESS_URL": "https://example.test"}
    )
    assert kube.spawn_concurrency == 20
    chosen = load_settings(environ={"KARVDASH_STATE_DIR": "/srv/karvdash", "KARVDASH_SPAWN_CONCURRENCY": "5"})
    assert chosen.spawn_concurrency == 5


@pytest.mark.parametrize(
    ("setting", "variable", "value"),
    [("spawnConcurrency", "KARVDASH_SPAWN_CONCURRENCY", "-1"), ("spawnQueueTimeout", "KARVDASH_SPAWN_QUEUE_TIMEOUT", "0")],
)
def test_bad_spawn_settings_stop_start_up(setting, variable, value):
    with pytest.raises(SettingsError) as error:
        load_settings(environ={"KARVDASH_STATE_DIR": "/srv/karvdash", variable: value})
    assert error.value.setting == setting
