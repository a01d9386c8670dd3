import asyncio

import pytest

from steward._aio import TaskGroup


class Boom(Exception):
    pass


async def boom() -> None:
    raise Boom("consumer died")


async def test_a_crash_is_handed_to_the_owner_at_once() -> None:
    crashed: list[BaseException] = []
    group = TaskGroup("owner", on_crash=crashed.append)
    forever = group.create_task(asyncio.Event().wait(), name="forever")
    await asyncio.wait([group.create_task(boom(), name="boom")])
    assert [str(exc) for exc in crashed] == ["consumer died"]
    assert not forever.done()  # one crash does not take the others down: the owner decides
    await group.aclose()  # the owner has it: closing does not raise it again
    assert forever.cancelled()


async def test_an_unhandled_crash_is_raised_by_aclose_once() -> None:
    group = TaskGroup("owner")
    await asyncio.wait([group.create_task(boom(), name="boom")])
    with pytest.raises(Boom, match="consumer died"):
        await group.aclose()
    await group.aclose()  # raised once; closing again only waits


async def test_several_crashes_come_out_as_a_group() -> None:
    group = TaskGroup("owner")

    async def boom(n: int) -> None:
        raise Boom(n)

    await group.wait()
    tasks = [group.create_task(boom(n)) for n in range(2)]
    await asyncio.wait(tasks)
    with pytest.raises(BaseExceptionGroup) as caught:
        await group.aclose()
    assert sorted(exc.args[0] for exc in caught.value.exceptions) == [0, 1]


async def test_tasks_that_end_are_forgotten_and_named_after_the_owner() -> None:
    group = TaskGroup("rpc server")

    async def quick() -> int:
        return 1

    task = group.create_task(quick(), name="handle")
    assert task.get_name() == "rpc server: handle"
    assert await task == 1
    assert len(group) == 0
    await group.aclose()
    assert group.closed


async def test_a_closed_group_starts_nothing() -> None:
    group = TaskGroup("owner")
    await group.aclose()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="task group of owner is closed"):
        group.create_task(coro)


async def test_wait_returns_what_outlives_the_grace_period() -> None:
    group = TaskGroup("owner")
    release = asyncio.Event()
    waiting = group.create_task(release.wait())
    assert await group.wait(grace_period=0) == {waiting}
    release.set()
    assert await group.wait() == set()
    await group.aclose()


async def test_closing_cancels_even_when_the_caller_is_cancelled() -> None:
    group = TaskGroup("owner")
    inner = group.create_task(asyncio.Event().wait())
    closing = asyncio.create_task(group.aclose())
    await asyncio.sleep(0)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert inner.cancelled() or inner.cancelling()
