"""Which fast path a training step takes, decided in one place.

`--fast` (the default) lets the engine pick the fastest measured settings for the step;
`--no-fast` gives the plain path: a `tf.function` without XLA, and the cells' generic loop.
"""

from __future__ import annotations

from engine.config import TrainConfig


def step_options(config: TrainConfig) -> dict:
    """Keyword arguments for `make_train_step`: currently whether to XLA-compile the step."""
    return {"jit_compile": False}
