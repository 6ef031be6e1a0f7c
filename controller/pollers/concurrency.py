"""Checking many devices at once, for the pollers' checkers (network I/O only, no store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def as_checked(check: Callable[[T], Awaitable[R]], targets: Iterable[T]) -> AsyncIterator[tuple[T, R]]:
    """Run ``check`` on every target concurrently, yielding ``(target, report)`` as each finishes (a slow one holds
    back nobody); the bound on concurrency is the checker's own. Stopping early cancels the rest."""

    async def pair(target: T) -> tuple[T, R]:
        return target, await check(target)

    tasks = {asyncio.ensure_future(pair(t)) for t in targets}
    try:
        for next_done in asyncio.as_completed(tasks):
            yield await next_done
    finally:
        for task in tasks:
            task.cancel()
