"""``python -m automl.backup``: the entry point of :mod:`automl.apps.backup`."""

from automl.apps.backup import main

if __name__ == "__main__":
    main()
