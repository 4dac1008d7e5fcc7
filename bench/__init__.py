"""The Dibs benchmark: simulated agents over real websockets against a real server.

Run it with ``python -m bench`` (``make bench``, ``make bench-small``); see
docs/benchmarks.md for what it measures and what the figures mean.
"""
