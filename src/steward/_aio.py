"""Calling user code that may be plain ``def`` or ``async def``.

Managers override hooks and write periodic tasks either way; the framework awaits both the same
way. Coroutine functions run on the loop; plain functions run in an executor thread (blocking work
never runs on the loop) with the caller's :mod:`contextvars` copied in, so the current
:class:`~steward.context.RequestContext` is visible in both.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import typing
from collections.abc import Callable
from concurrent.futures import Executor

__all__ = ["call_sync_or_async", "in_thread", "is_async_callable"]


def is_async_callable(fn: Callable[..., object]) -> bool:
    """Return whether calling ``fn`` gives a coroutine (it sees through ``functools.partial``)."""
    return inspect.iscoroutinefunction(fn)


def in_thread(
    executor: Executor | None, fn: Callable[..., object], /, *args: object, **kwargs: object
) -> asyncio.Future[typing.Any]:
    """Run ``fn(*args, **kwargs)`` in ``executor`` with the caller's contextvars copied in.

    Returns the loop's future of the call (``executor`` None: the loop's default executor), as
    :meth:`asyncio.loop.run_in_executor` does; the one place a plain ``def`` of user code goes to
    a thread, so each sees the current :class:`~steward.context.RequestContext`.
    """
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return asyncio.get_running_loop().run_in_executor(executor, call)


async def call_sync_or_async(
    fn: Callable[..., object],
    /,
    *args: object,
    executor: Executor | None = None,
) -> object:
    """Call ``fn(*args)``: await it when it is ``async def``, else run it in ``executor``.

    ``executor`` None means the loop's default executor. The contextvars of the caller are copied
    into the thread, as :func:`asyncio.to_thread` does.
    """
    if is_async_callable(fn):
        result = fn(*args)
        assert inspect.isawaitable(result)  # noqa: S101 - guaranteed by is_async_callable
        return await result
    result = await in_thread(executor, fn, *args)
    if inspect.isawaitable(result):  # a plain def that hands back a coroutine
        return await result
    return result
