"""The REST server over the model registry (``python -m automl.serve``)."""
