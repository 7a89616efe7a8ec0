"""``python -m automl.serving.admin``: the entry point of :mod:`automl.apps.admin`."""

import sys

from automl.apps.admin import main

if __name__ == "__main__":
    sys.exit(main())
