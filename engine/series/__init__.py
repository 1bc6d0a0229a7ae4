"""A series and what is computed from it alone: the course series, CSV loading and the split,
windows, the statistical baselines and the error figures. No Keras, no model."""
