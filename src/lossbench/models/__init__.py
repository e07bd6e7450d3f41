"""Models: `Classifier` subclasses built from `configs/model/*.yaml`."""
