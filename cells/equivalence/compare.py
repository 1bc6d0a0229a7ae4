"""One comparison: the Keras built-in and our layer, given the same weights, run on the same
inputs; the outputs, returned states and gradients (inputs, initial states, every weight)
are compared as `max |ours - keras| / max |keras|`."""

from __future__ import annotations

import contextlib
import math
import re
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from cells.equivalence.cases import Case
from cells.equivalence.masks import fix_dropout_masks


@dataclass
class Result:
    """The outcome of one case (the keys of `engine verify --json`, plus a few)."""

    cell: str
    config: str
    dtype: str
    output_diff: float
    gradient_diff: float
    tolerance: float
    passed: bool
    seconds: float = 0.0
    error: str | None = None
    tensors: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        payload = asdict(self)
        for key in ("output_diff", "gradient_diff"):
            if not math.isfinite(payload[key]):
                payload[key] = None  # JSON has no NaN / Infinity
        return payload


@contextlib.contextmanager
def dtype_policy(name: str):
    """Sets Keras's global dtype policy for the block, restoring the previous one after."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def disable_tf32() -> bool:
    """On a GPU, turns TF32 matmuls off (they would round float32 to 10 mantissa bits).

    Returns True when a GPU is present (and TF32 is now off).
    """
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return False
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return True


def relative_difference(ours, reference) -> float:
    """`max |ours - reference| / max |reference|` in float64 (absolute if the reference is 0)."""
    ours = np.asarray(ours, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if ours.shape != reference.shape:
        return math.inf
    if ours.size == 0:
        return 0.0
    if not (np.all(np.isfinite(ours)) and np.all(np.isfinite(reference))):
        return math.inf
    scale = float(np.max(np.abs(reference)))
    difference = float(np.max(np.abs(ours - reference)))
    return difference / scale if scale > 0 else difference


def mask_pattern(batch: int, time_steps: int) -> np.ndarray:
    """`[batch, time]` booleans: rows padded at the start, at the end, in the middle, none."""
    mask = np.ones((batch, time_steps), dtype=bool)
    pad = max(1, time_steps // 4)
    for row in range(batch):
        kind = row % 4
        if kind == 0:
            mask[row, :pad] = False
        elif kind == 1:
            mask[row, time_steps - pad :] = False
        elif kind == 2:
            middle = time_steps // 2
            mask[row, middle : middle + pad] = False
    return mask


def _layer(library, case: Case, last: bool, ours: bool):
    """One recurrent layer (inside Bidirectional if asked) from `keras.layers` or `cells`."""
    kind = "GRU" if case.cell.startswith("GRU") else case.cell
    kwargs = dict(
        return_sequences=case.return_sequences if last else True,
        return_state=case.return_state if last else False,
        go_backwards=case.go_backwards if last else False,
    )
    if case.cell == "GRU(reset_after=False)":
        kwargs["reset_after"] = False
    for rate in ("dropout", "recurrent_dropout"):
        if getattr(case, rate):
            kwargs[rate] = getattr(case, rate)
    if ours:
        kwargs["unroll"] = case.unroll
    layer = getattr(library, kind)(case.units, **kwargs)
    if case.bidirectional:
        merge_mode = None if case.bidirectional == "none" else case.bidirectional
        layer = library.Bidirectional(layer, merge_mode=merge_mode)
    return layer


def _flat(outputs) -> list:
    if isinstance(outputs, (list, tuple)):
        return [tensor for item in outputs for tensor in _flat(item)]
    return [outputs]


class _Side:
    """One side of a comparison: the layers and how to run them on (x, mask, states)."""

    def __init__(self, case: Case, ours: bool):
        import keras

        import cells

        library = cells if ours else keras.layers
        self.case = case
        self.masking = keras.layers.Masking(mask_value=0.0) if case.mask == "masking" else None
        self.layers = [
            _layer(library, case, last=index == case.layers - 1, ours=ours)
            for index in range(case.layers)
        ]

    def __call__(self, x, mask, initial_state):
        h = self.masking(x) if self.masking is not None else x
        for index, layer in enumerate(self.layers):
            kwargs = {"training": self.case.training}
            if mask is not None:
                kwargs["mask"] = mask
            if index == 0 and initial_state is not None:
                kwargs["initial_state"] = list(initial_state)
            h = layer(h, **kwargs)
        return _flat(h)

    @property
    def cells(self) -> list:
        """Every cell, layer by layer (forward then backward inside Bidirectional)."""
        found = []
        for layer in self.layers:
            directions = (
                [layer.forward_layer, layer.backward_layer] if self.case.bidirectional else [layer]
            )
            found += [direction.cell for direction in directions]
        return found

    @property
    def weights(self) -> list:
        return [weight for layer in self.layers for weight in layer.trainable_weights]


def compare(case: Case, seed: int = 0) -> Result:
    """Runs one case and returns its differences (a failed build or run is a failed case)."""
    start = time.perf_counter()
    try:
        with dtype_policy(case.dtype):
            output_diff, gradient_diff, tensors = _compare(case, seed)
        error = None
    except Exception as failure:  # noqa: BLE001 - a case that cannot run has failed
        output_diff = gradient_diff = math.inf
        tensors = {}
        error = f"{type(failure).__name__}: {_first_line(failure)}"
    passed = error is None and output_diff <= case.tolerance and gradient_diff <= case.tolerance
    return Result(
        cell=case.cell,
        config=case.config,
        dtype=case.dtype,
        output_diff=output_diff,
        gradient_diff=gradient_diff,
        tolerance=case.tolerance,
        passed=bool(passed),
        seconds=round(time.perf_counter() - start, 3),
        error=error,
        tensors=tensors,
    )


def _first_line(failure: Exception) -> str:
    """The message of an error in one line (Keras wraps layer errors in a generic first line)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(failure).splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        lines = lines[1:]
    return lines[0][:200] if lines else ""


@contextlib.contextmanager
def _retracing_warnings_off():
    """Each graph case is a new `tf.function`, traced once on purpose; TensorFlow's warning
    that "N out of the last N calls triggered retracing" would only flood stderr."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def _compare(case: Case, seed: int) -> tuple[float, float, dict]:
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    float_dtype = "float64" if case.dtype == "float64" else "float32"
    x = rng.normal(size=(case.batch, case.time, case.features))
    mask = None
    if case.mask:
        mask_np = mask_pattern(case.batch, case.time)
        if case.mask == "masking":
            x = x * mask_np[:, :, None]  # Masking marks all-zero steps as padding
        else:
            mask = tf.constant(mask_np)
    x = tf.constant(x, dtype=float_dtype)
    num_states = 2 if case.cell == "LSTM" else 1
    initial_state = None
    if case.initial_state:
        count = num_states * (2 if case.bidirectional else 1)
        initial_state = [
            tf.constant(rng.normal(size=(case.batch, case.units)), dtype=float_dtype)
            for _ in range(count)
        ]

    ours, reference = _Side(case, ours=True), _Side(case, ours=False)
    # Build both on one short step, then give both the same, perturbed weights.
    for side in (reference, ours):
        side(
            x[:1, :1],
            None if mask is None else mask[:1, :1],
            None if initial_state is None else [state[:1] for state in initial_state],
        )
    if len(ours.weights) != len(reference.weights):
        raise AssertionError("ours and keras have different numbers of weights")
    for ours_weight, reference_weight in zip(ours.weights, reference.weights):
        if tuple(ours_weight.shape) != tuple(reference_weight.shape):
            raise AssertionError(f"weight {ours_weight.path}: shapes differ")
        value = np.asarray(reference_weight.numpy(), dtype=np.float64)
        # Noise of either sign, at least 0.02 in size: no bias stays zero.
        noise = rng.uniform(0.02, 0.2, size=value.shape) * rng.choice([-1.0, 1.0], value.shape)
        value = (value + noise).astype(reference_weight.dtype)
        reference_weight.assign(value)
        ours_weight.assign(value)

    if case.training and (case.dropout or case.recurrent_dropout):
        for ours_cell, keras_cell in zip(ours.cells, reference.cells):
            fix_dropout_masks(ours_cell, keras_cell, case.batch, rng)

    cotangents: list = []  # drawn once, on the first side's output shapes, then shared

    def cotangent(index: int, shape) -> np.ndarray:
        while len(cotangents) <= index:
            cotangents.append(rng.normal(size=tuple(shape)))
        return cotangents[index]

    def forward_backward(side, x, initial_state):
        """Outputs and d(sum(outputs * cotangents)) / d(inputs, states, weights)."""
        with tf.GradientTape() as tape:
            tape.watch(x)
            if initial_state is not None:
                tape.watch(initial_state)
            outputs = side(x, mask, initial_state)
            loss = tf.add_n(
                [
                    tf.reduce_sum(
                        tf.cast(output, float_dtype)
                        * tf.constant(cotangent(index, output.shape), float_dtype)
                    )
                    for index, output in enumerate(outputs)
                ]
            )
        sources = [x, *(initial_state or []), *side.weights]
        return outputs, tape.gradient(loss, sources)

    def both(x, initial_state):
        return forward_backward(reference, x, initial_state), forward_backward(
            ours, x, initial_state
        )

    if case.graph:
        # One graph for both sides (one trace); nothing in it needs autograph.
        both = tf.function(both, autograph=False)
    with _retracing_warnings_off():
        (reference_outputs, reference_gradients), (ours_outputs, ours_gradients) = (
            tf.nest.map_structure(lambda t: t.numpy(), both(x, initial_state))
        )
    if len(ours_outputs) != len(reference_outputs):
        raise AssertionError("ours and keras return different numbers of tensors")
    tensors = {}
    for index, (a, b) in enumerate(zip(ours_outputs, reference_outputs)):
        tensors[f"output[{index}]"] = relative_difference(a, b)
    names = ["d/inputs"] + [f"d/initial_state[{i}]" for i in range(len(initial_state or []))]
    names += [f"d/{weight.path}" for weight in reference.weights]
    for name, a, b in zip(names, ours_gradients, reference_gradients):
        tensors[name] = relative_difference(a, b)
    output_diff = max(v for k, v in tensors.items() if k.startswith("output"))
    gradient_diff = max(v for k, v in tensors.items() if k.startswith("d/"))
    return output_diff, gradient_diff, tensors
