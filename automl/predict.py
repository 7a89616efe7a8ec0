"""``python -m automl.predict``: the entry point of :mod:`automl.apps.predict`."""

from automl.apps.predict import main

if __name__ == "__main__":
    main()
