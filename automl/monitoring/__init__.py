"""Monitoring: the reference profile of the training data (drift checks build on it)."""
