"""``python -m automl.monitor``: batch drift monitoring (the code is in automl.monitoring)."""
