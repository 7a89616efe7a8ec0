"""``python -m automl.registry``: the entry point of :mod:`automl.apps.registry`."""

import sys

from automl.apps.registry import main

if __name__ == "__main__":
    sys.exit(main())
