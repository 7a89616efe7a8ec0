"""``python -m automl``: the entry point of :mod:`automl.apps.train`."""

from automl.apps.train import main

if __name__ == "__main__":
    main()
