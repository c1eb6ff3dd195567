"""The musicnn backbone port, genre heads and the registry of installed models."""
