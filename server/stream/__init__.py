"""The stream stages: ring buffer to frames, windows and their features."""
