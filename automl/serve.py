"""``python -m automl.serve``: the entry point of :mod:`automl.apps.serve`."""

from automl.apps.serve import main

if __name__ == "__main__":
    main()
