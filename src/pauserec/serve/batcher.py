"""Micro-batching: concurrent requests gathered into one decoder call, with a bounded wait.

A worker task takes the first queued request, then keeps taking requests until it holds ``max_batch`` of them or
``max_wait_ms`` have passed since the first one, and runs the (blocking) decode function on the whole batch in a
dedicated thread, so the event loop keeps accepting requests meanwhile. Requests that arrive while a batch decodes
wait in the queue and form the next batch at once: the busier the service, the larger its batches, so throughput
grows with load. ``max_batch=1`` serves one request at a time (the comparison point of the load test).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

Q = TypeVar("Q")
R = TypeVar("R")


class QueueFullError(RuntimeError):
    """The service holds ``max_queue`` waiting requests already (answered 503)."""


@dataclass(frozen=True)
class BatchInfo:
    """How a request was decoded: the size of its batch and the decoder's wall time for that batch."""

    size: int
    decode_seconds: float


class MicroBatcher(Generic[Q, R]):
    """Runs ``decode(list_of_queries) -> list_of_results`` over batches of concurrently submitted queries.

    Args:
        decode: blocking function, results in query order; an exception fails every request of its batch.
        max_batch: most queries per decoder call (1 = no batching).
        max_wait_ms: longest a batch waits for more queries after its first one.
        max_queue: most queries waiting; beyond it :meth:`submit` raises :class:`QueueFullError`.
    """

    def __init__(self, decode: Callable[[Sequence[Q]], Sequence[R]], max_batch: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 1024):
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_ms >= 0 (got {max_batch}, {max_wait_ms})")
        self.decode, self.max_batch, self.max_wait = decode, max_batch, max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decoder")
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop the worker; queued requests fail with ``CancelledError``."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        while self._queue is not None and not self._queue.empty():
            _, fut = self._queue.get_nowait()
            fut.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._worker = self._executor = None

    async def submit(self, query: Q) -> tuple[R, BatchInfo]:
        """Queue ``query`` and wait for its result and the batch it was decoded in."""
        if self._queue is None or self._worker is None or self._worker.done():
            raise RuntimeError("the micro-batcher is not running (start() it inside the event loop)")
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((query, fut))
        except asyncio.QueueFull:
            raise QueueFullError(f"{self.max_queue} requests are already waiting; retry later") from None
        return await fut

    async def _collect(self) -> list[tuple[Q, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [(q, f) for q, f in batch if not f.done()]  # a client that gave up cancelled its future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            queries = [q for q, _ in batch]
            t0 = loop.time()
            try:
                results = await loop.run_in_executor(self._executor, self.decode, queries)
                if len(results) != len(queries):
                    raise RuntimeError(f"decode returned {len(results)} results for {len(queries)} queries")
            except Exception as e:  # noqa: BLE001 - every request of the batch gets the error; the worker lives on
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            info = BatchInfo(size=len(queries), decode_seconds=loop.time() - t0)
            for (_, fut), res in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result((res, info))
