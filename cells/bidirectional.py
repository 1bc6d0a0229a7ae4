"""Bidirectional: a forward and a backward copy of a `Recurrent`, merged.

Keras 3 semantics: the backward copy runs with `go_backwards` flipped; with
`return_sequences` its outputs are flipped back into input order before merging, and both
copies output zeros at masked steps. Merge modes: `concat` (forward then backward), `sum`,
`ave`, `mul`, or None (a list of the two). With `return_state` the forward states follow
the output, then the backward states.
"""

from __future__ import annotations

import keras
import tensorflow as tf

MERGE_MODES = ("concat", "sum", "ave", "mul", None)


@keras.saving.register_keras_serializable(package="seqcast")
class Bidirectional(keras.layers.Layer):
    """Runs `layer` (a `Recurrent`) both ways over `[batch, time, features]` and merges.

    Args:
        layer: the layer to copy; its weights are not shared (as in Keras, it is re-created
            from its config twice).
        merge_mode: one of "concat", "sum", "ave", "mul", None.
        backward_layer: an explicit backward layer (its `go_backwards` must differ).

    Call arguments: `sequences`, `initial_state` (forward states then backward states),
    `mask` `[batch, time]`, `training` (passed to both layers: each draws its own dropout
    masks).
    """

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
        super().__init__(**kwargs)
        forward_config = layer.get_config()
        forward_config["name"] = "forward_" + _strip(layer.name, "forward_")
        self.forward_layer = type(layer).from_config(forward_config)
        if backward_layer is None:
            backward_config = layer.get_config()
            backward_config["name"] = "backward_" + _strip(layer.name, "backward_")
            backward_config["go_backwards"] = not layer.go_backwards
            backward_layer = type(layer).from_config(backward_config)
        if backward_layer.go_backwards == self.forward_layer.go_backwards:
            raise ValueError("the backward layer must have the other go_backwards value")
        self.backward_layer = backward_layer
        for direction in (self.forward_layer, self.backward_layer):
            # Keras forces zero outputs at masked steps when the sequences are merged.
            direction.zero_output_for_mask = direction.return_sequences
            # Two recurrences side by side keep both cores busy: fewer, larger ops win.
            direction.project_inputs_ahead = True
        self.merge_mode = merge_mode
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self.supports_masking = True

    def build(self, sequences_shape, initial_state_shape=None):
        for direction in (self.forward_layer, self.backward_layer):
            if not direction.built:
                direction.build(sequences_shape)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        kwargs = dict(mask=mask, training=training)
        y = self.forward_layer(sequences, initial_state=forward_state, **kwargs)
        y_reverse = self.backward_layer(sequences, initial_state=backward_state, **kwargs)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_reverse[1:])
            y, y_reverse = y[0], y_reverse[0]
        if self.return_sequences:
            y_reverse = tf.reverse(y_reverse, [1])  # back into input order
        if self.merge_mode == "concat":
            output = tf.concat([y, y_reverse], axis=-1)
        elif self.merge_mode == "sum":
            output = y + y_reverse
        elif self.merge_mode == "ave":
            output = (y + y_reverse) / 2
        elif self.merge_mode == "mul":
            output = y * y_reverse
        else:
            output = [y, y_reverse]
        if self.return_state:
            return (list(output) if self.merge_mode is None else [output]) + states
        return output

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        shape = self.forward_layer.compute_output_shape(sequences_shape)
        state_shapes = ()
        if self.return_state:
            shape, state_shapes = shape[0], tuple(shape[1:])
        if self.merge_mode == "concat":
            shape = (*shape[:-1], shape[-1] * 2)
        outputs = [shape, shape] if self.merge_mode is None else [shape]
        if self.return_state:
            return tuple(outputs) + state_shapes + state_shapes
        return tuple(outputs) if self.merge_mode is None else shape

    def compute_mask(self, sequences, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        masks = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            states = self.forward_layer.cell.num_states * 2
            return masks + [None] * states
        return masks if self.merge_mode is None else output_mask

    def get_config(self):
        return {
            **super().get_config(),
            "layer": keras.saving.serialize_keras_object(self.forward_layer),
            "backward_layer": keras.saving.serialize_keras_object(self.backward_layer),
            "merge_mode": self.merge_mode,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = keras.saving.deserialize_keras_object(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = keras.saving.deserialize_keras_object(
                config["backward_layer"]
            )
        return cls(**config)


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix) :] if name.startswith(prefix) else name
