"""``python -m tritonvision``: the same command line as ``tritonvision``."""
import sys

from tritonvision.cli import main

sys.exit(main())
