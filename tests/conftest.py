"""Fixtures shared by the test modules."""
import os

import numpy as np
import pytest

# The tests compare the networks with the float32 reference, so they (and the servers they
# start) skip the start-up int8 check; tests/test_precision.py runs it.
os.environ.setdefault("GENRE_MONITOR_PRECISION", "float")

# Fixtures that start real servers, for any test module that names them.
pytest_plugins = ["tests.support.pulse", "tests.support.redis_server", "tests.support.postgres"]


@pytest.fixture(scope="session")
def model():
    """The default genre model, loaded once and warmed up so that timing-sensitive tests don't pay for its first pass."""
    from server.config import N_MELS, WINDOW_FRAMES
    from server.model.registry import load_model

    m = load_model(None)
    m.predict(np.zeros((1, WINDOW_FRAMES, N_MELS), np.float32))
    return m


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """A 12-s synthetic music file at 44.1 kHz (a module's own copy)."""
    import soundfile as sf

    from tests.support.audio import make_music

    path = tmp_path_factory.mktemp("audio") / "song.wav"
    sf.write(path, make_music(sr=44100, seconds=12.0), 44100)
    return str(path)
