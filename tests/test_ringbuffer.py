import threading

import numpy as np
import pytest

from server.audio.ringbuffer import RingBuffer


def test_wraps_around_and_keeps_newest():
    ring = RingBuffer(10)
    ring.write(np.arange(7))
    ring.write(np.arange(7, 16))  # wraps: 16 written into 10 slots
    assert ring.total_written == 16
    data, end = ring.read_latest(10)
    assert end == 16
    np.testing.assert_array_equal(data, np.arange(6, 16))
    np.testing.assert_array_equal(ring.read(12, 4), np.arange(8, 12))


def test_block_larger_than_capacity():
    ring = RingBuffer(8)
    ring.write(np.arange(20))
    np.testing.assert_array_equal(ring.read_latest(8)[0], np.arange(12, 20))
    assert ring.total_written == 20


def test_overwritten_or_future_samples_are_refused():
    ring = RingBuffer(10)
    ring.write(np.arange(25))
    with pytest.raises(IndexError):
        ring.read(14, 5)  # [9, 14) was overwritten
    with pytest.raises(IndexError):
        ring.read(26, 2)  # not written yet
    with pytest.raises(ValueError):
        ring.read(25, 11)


def test_concurrent_writer_and_reader_see_consistent_windows():
    """Each read window must be a contiguous run of the ramp the writer produces."""
    ring = RingBuffer(4096)
    total = 400_000
    errors = []

    def writer():
        pos = 0
        rng = np.random.default_rng(1)
        while pos < total:
            n = int(rng.integers(1, 700))
            ring.write(np.arange(pos, pos + n, dtype=np.float64) % 65536)
            pos += n

    t = threading.Thread(target=writer)
    t.start()
    reads = 0
    while t.is_alive() or reads == 0:
        end = ring.total_written
        if end < 1024:
            continue
        try:
            data = ring.read(end, 1024)
        except IndexError:
            continue
        expected = np.arange(end - 1024, end) % 65536
        if not np.array_equal(data, expected):
            errors.append(end)
        reads += 1
    t.join()
    assert reads > 10
    assert not errors
