"""Feature steps from YAML: per-column blocks (one ColumnTransformer), then optional steps
across all features (interactions, selection, decomposition)."""

from automl.features.pipeline import OptionalStep, build_features, feature_space, feature_steps
from automl.features.steps import (
    CappedSVD,
    ConstantDuplicateFilter,
    CorrelationFilter,
    CyclicalDateTime,
    FrequencyEncoder,
    HashingEncoder,
    ModelImportanceSelector,
    OneHot,
    OtherColumns,
    PermutationSelector,
    StringColumns,
    TextEncoder,
    TopKInteractions,
    UnivariateSelector,
)
from automl.features.transformers import (
    DateTimeExpander,
    NativeCategorical,
    RareCategoryGrouper,
    SignedLog,
)

__all__ = [
    "CappedSVD",
    "ConstantDuplicateFilter",
    "CorrelationFilter",
    "CyclicalDateTime",
    "FrequencyEncoder",
    "HashingEncoder",
    "ModelImportanceSelector",
    "OneHot",
    "OtherColumns",
    "PermutationSelector",
    "StringColumns",
    "TextEncoder",
    "TopKInteractions",
    "UnivariateSelector",
    "DateTimeExpander",
    "NativeCategorical",
    "RareCategoryGrouper",
    "SignedLog",
    "OptionalStep",
    "build_features",
    "feature_space",
    "feature_steps",
]
