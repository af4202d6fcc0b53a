"""numpy's BLAS thread pool, kept to one thread around mixed numpy + torch work.

numpy's OpenBLAS and torch's OpenMP each keep their own pool of worker threads, and both
pools spin for a while after a call. When a loop alternates a small numpy matrix product
(a mel filterbank, a head) with a torch forward pass, the two pools take the cores from each
other on a 2-core machine: the Whisper stream (numpy log-mel, torch encoder) ran 4-5x slower
with OpenBLAS's default two threads than with one (``benchmarks/generalisation.md``, stop 25).
The small products lose nothing with one thread.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache

__all__ = ["one_blas_thread"]


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
