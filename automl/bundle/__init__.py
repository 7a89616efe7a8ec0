"""Model bundles: a fitted pipeline with its manifest, saved and loaded atomically."""
