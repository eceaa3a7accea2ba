"""``python -m perf`` (from the repository root): the benchmark runner, see :mod:`perf.runner`."""
import sys

from perf.runner import main

sys.exit(main())
