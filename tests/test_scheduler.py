from server.stream.scheduler import WindowScheduler


def test_one_window_per_hop_on_the_grid():
    s = WindowScheduler(window=100, hop=25)
    assert s.poll(99) is None
    assert s.poll(100) == 100
    assert s.poll(124) is None
    assert s.poll(125) == 125
    assert s.skipped == 0


def test_jumps_to_newest_and_counts_skips_when_behind():
    s = WindowScheduler(window=100, hop=25)
    assert s.poll(100) == 100
    # The worker stalled: windows ending at 125, 150, 175 and 200 are all due.
    assert s.poll(210) == 200
    assert s.skipped == 3
    assert s.poll(224) is None
    assert s.poll(225) == 225
    assert s.skipped == 3


def test_restart_does_not_count_skips():
    s = WindowScheduler(window=100, hop=25)
    s.restart_at(1000)
    assert s.poll(1000) == 1000
    assert s.skipped == 0


def test_a_stream_starts_with_a_short_first_window():
    s = WindowScheduler(window=100, hop=25, first=40)
    assert s.poll(39) is None
    assert s.poll(40) == 40  # the first window: 40 samples of sound, the rest silence
    assert s.poll(65) == 65
    assert WindowScheduler(window=100, hop=25, first=500).first == 100  # never later than a window
    s.restart_at(30)
    assert s.next_end == 40
