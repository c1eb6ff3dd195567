"""Fixtures shared by the test modules."""
import numpy as np
import pytest


@pytest.fixture(scope="session")
def model():
    """The default genre model, loaded once and warmed up so that timing-sensitive tests don't pay for its first pass."""
    from server.config import N_MELS, WINDOW_FRAMES
    from server.model.registry import load_model

    m = load_model(None)
    m.predict(np.zeros((1, WINDOW_FRAMES, N_MELS), np.float32))
    return m
