"""A training run from its config to its run dir: the step, the loop, the learning-rate sweep,
strategies, and reading a finished run back (docs/training.md)."""
