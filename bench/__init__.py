"""Genre Monitor benchmark: ``python -m bench`` measures the monitor side by side.

Each module measures one thing and returns a plain dict; ``bench.__main__`` runs
them in one process, prints a table and writes ``bench/results.json``.
"""
