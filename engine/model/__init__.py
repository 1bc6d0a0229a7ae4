"""The forecasting models: the named architectures and the layers that scale raw series values
in and out of them, so a model takes and returns series units."""
