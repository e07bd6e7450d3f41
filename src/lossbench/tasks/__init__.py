"""Task kinds: what a target is, what a recipe groups by, and how a model is scored."""
