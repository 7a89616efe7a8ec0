"""``python -m automl.ingest``: the entry point of :mod:`automl.apps.ingest`."""

from automl.apps.ingest import main

if __name__ == "__main__":
    main()
