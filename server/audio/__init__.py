"""Audio input: sources, the ring buffer between capture and worker, decoding, resampling."""
