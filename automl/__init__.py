"""automl: config-first AutoML for tabular data, driven by Hydra."""

from automl.bundle.model import Model, load_model

__all__ = ["Model", "load_model"]
