"""emolens.threads.prefetch: a generator run ahead in a thread, in order, errors where they happen."""

import threading
import time

import pytest

from emolens.threads import prefetch


def test_prefetch_yields_every_item_in_order_from_another_thread():
    where = []

    def items():
        for i in range(50):
            where.append(threading.current_thread().name)
            yield i

    assert list(prefetch(items(), depth=3)) == list(range(50))
    assert set(where) == {"emolens-prefetch"}


def test_prefetch_runs_at_most_depth_items_ahead():
    made = []

    def items():
        for i in range(20):
            made.append(i)
            yield i

    it = prefetch(items(), depth=2)
    assert next(it) == 0
    time.sleep(0.3)  # let the thread run as far as it may
    # item 0 consumed, 2 waiting in the queue, one more computed and waiting to be put
    assert len(made) <= 4
    assert list(it) == list(range(1, 20))


def test_prefetch_raises_the_error_at_the_item_where_it_happened():
    def items():
        yield 1
        yield 2
        raise ValueError("block 3 is corrupt")

    got = []
    with pytest.raises(ValueError, match="block 3 is corrupt"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


def test_prefetch_stops_and_closes_the_source_when_the_caller_stops():
    closed = threading.Event()
    made = []

    def items():
        try:
            for i in range(10_000):
                made.append(i)
                yield i
        finally:
            closed.set()

    for x in prefetch(items(), depth=2):
        if x == 3:
            break
    assert closed.wait(2.0)  # the source generator was closed, not left running
    assert len(made) < 10  # and it did not run on to the end


def test_prefetch_of_nothing():
    assert list(prefetch(iter(()))) == []
