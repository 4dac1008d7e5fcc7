"""``python -m bench``: run the benchmark suites."""

from .run import main

main()
