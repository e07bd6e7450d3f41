"""Reports from the store: pandas only, never torch or the training code."""
