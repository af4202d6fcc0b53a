"""Threads: numpy's BLAS pool kept to one thread around mixed numpy + torch work, and a
generator run ahead in a thread of its own (:func:`prefetch`).

numpy's OpenBLAS and torch's OpenMP each keep their own pool of worker threads, and both
pools spin for a while after a call. When a loop alternates a small numpy matrix product
(a mel filterbank, a head) with a torch forward pass, the two pools take the cores from each
other on a 2-core machine: the Whisper stream (numpy log-mel, torch encoder) ran 4-5x slower
with OpenBLAS's default two threads than with one (``benchmarks/generalisation.md``, stop 25).
The small products lose nothing with one thread.
"""

from __future__ import annotations

import queue
import threading
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Iterable, Iterator, TypeVar

__all__ = ["one_blas_thread", "prefetch"]

T = TypeVar("T")


@lru_cache(maxsize=1)
def _controller():
    """The thread pools loaded in this process, scanned once (a scan costs milliseconds;
    numpy is imported by then, so its BLAS is found)."""
    import numpy  # noqa: F401 - loads OpenBLAS before the scan
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager:
    """Context manager: numpy's BLAS on one thread inside, restored on exit (about 2 us;
    nesting is fine). The limit is process-wide, as BLAS's own setting is."""
    return _controller().limit(limits=1, user_api="blas")


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield ``items`` in order while a background thread computes up to ``depth`` of them
    ahead: a long recording's next blocks are decoded, resampled and analysed (numpy, soxr)
    while the caller runs the model on this one (ONNX Runtime and torch release the GIL).

    An exception raised by ``items`` is raised here, at the item where it happened. When
    the caller stops early (``break``, an exception, Ctrl-C, the generator closed) the
    thread stops at its next item and ``items`` is closed there."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(x: object) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        it = iter(items)
        try:
            for x in it:
                if not put((x, None)):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((_DONE, exc))
            return
        finally:
            close = getattr(it, "close", None)
            if close is not None and stop.is_set():
                close()
        put((_DONE, None))

    worker = threading.Thread(target=run, name="emolens-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            x, exc = q.get()
            if x is _DONE:
                if exc is not None:
                    raise exc
                return
            yield x
    finally:
        stop.set()
        worker.join()
