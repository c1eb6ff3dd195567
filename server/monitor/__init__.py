"""Post-model stages: smoothing, segments and alerts."""
