"""Feature steps from YAML, built into one scikit-learn ColumnTransformer."""

from automl.features.pipeline import build_features
from automl.features.transformers import (
    DateTimeExpander,
    NativeCategorical,
    RareCategoryGrouper,
    SignedLog,
)

__all__ = [
    "DateTimeExpander",
    "NativeCategorical",
    "RareCategoryGrouper",
    "SignedLog",
    "build_features",
]
