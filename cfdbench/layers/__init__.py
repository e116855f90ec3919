"""Building blocks shared by the models (neuraloperator's layering: layers -> models)."""
