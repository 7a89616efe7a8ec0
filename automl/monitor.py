"""``python -m automl.monitor``: the entry point of :mod:`automl.apps.monitor`."""

from automl.apps.monitor import main

if __name__ == "__main__":
    main()
