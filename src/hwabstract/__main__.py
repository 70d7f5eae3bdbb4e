"""``python -m hwabstract``: the same command as ``hwabstract``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
