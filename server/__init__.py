"""Genre Monitor: real-time music-genre monitoring on the pretrained musicnn CNN."""

__version__ = "0.1.0"
