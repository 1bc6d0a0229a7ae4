"""TF Serving's test models, rebuilt: its testdata SavedModels are binary and not copied.

- `half_plus_two_v1`: `saved_model_half_plus_two_cpu` as TF Serving's
  `saved_model_half_plus_two.py` writes it with `tf.compat.v1.saved_model.Builder`:
  variables a=0.5, b=2, c=3 (a2, c2 for the x2 path), one `tf_example` placeholder parsed
  into `x` and `x2`; `serving_default` x -> y = a x + b, `regress_x_to_y`,
  `regress_x_to_y2` (a x + c), `classify_x_to_y` (scores y) on tf_example,
  `regress_x2_to_y3` (a2 x2 + c2) on x2; the tensor names and shapes of
  tests/data/tfs/half_plus_two_model_metadata.json.
- `half_plus_three_v1`: `saved_model_half_plus_three`, the same with b=3.
- `half_plus_two_tf2`: `saved_model_half_plus_two_tf2_cpu`, tf.functions saved by
  `tf.saved_model.save`: `serving_default` x [1] -> y, `classify_x_to_y`, `regress_x_to_y`,
  `regress_x_to_y2` on serialized tf.Examples, `regress_x2_to_y3` and `classify_x2_to_y3`
  on x2 [1] (each signature with its own input placeholder, as TF2 writes them).

Each is written as `<base>/00000123/`, the version TF Serving's test data uses.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

VERSION_DIR = "00000123"
v1 = tf.compat.v1
REGRESS, CLASSIFY = "tensorflow/serving/regress", "tensorflow/serving/classify"


def _signature(inputs, outputs, method):
    info = v1.saved_model.utils.build_tensor_info
    return v1.saved_model.signature_def_utils.build_signature_def(
        {alias: info(t) for alias, t in inputs.items()},
        {alias: info(t) for alias, t in outputs.items()},
        method,
    )


def half_plus_v1(base_path: Path, b: float) -> Path:
    """TF1 half_plus_two (b=2) or half_plus_three (b=3) under `base_path/00000123`."""
    graph = tf.Graph()
    with graph.as_default():
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(b, name="b")
        c = v1.Variable(3.0, name="c")
        # Unknown rank, as in the metadata TF Serving's test compares against.
        serialized = v1.placeholder(tf.string, name="tf_example", shape=None)
        features = {
            "x": tf.io.FixedLenFeature([1], dtype=tf.float32),
            "x2": tf.io.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0]),
        }
        parsed = v1.io.parse_example(serialized, features)
        # ParseExampleV2 of an unknown-rank input has no static shape; the v1 op TF
        # Serving's models were written with gave [-1, 1], which its metadata records.
        for name in ("x", "x2"):
            parsed[name].set_shape([None, 1])
        x = tf.identity(parsed["x"], name="x")
        y = tf.identity(tf.add(tf.multiply(a, x), b), name="y")
        y2 = tf.identity(tf.add(tf.multiply(a, x), c), name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        a2 = v1.Variable(0.5, name="a2")
        c2 = v1.Variable(3.0, name="c2")
        y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name="y3")
        signatures = {
            "regress_x_to_y": _signature({"inputs": serialized}, {"outputs": y}, REGRESS),
            "regress_x_to_y2": _signature({"inputs": serialized}, {"outputs": y2}, REGRESS),
            "regress_x2_to_y3": _signature({"inputs": x2}, {"outputs": y3}, REGRESS),
            "classify_x_to_y": _signature({"inputs": serialized}, {"scores": y}, CLASSIFY),
            "serving_default": _signature({"x": x}, {"y": y}, "tensorflow/serving/predict"),
        }
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            export = base_path / VERSION_DIR
            builder = v1.saved_model.Builder(str(export))
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
            builder.save()
    return base_path


class HalfPlusTwo(tf.Module):
    def __init__(self):
        super().__init__()
        self.a = tf.Variable(0.5)
        self.b = tf.Variable(2.0)
        self.c = tf.Variable(3.0)

    def _x(self, serialized):
        spec = {"x": tf.io.FixedLenFeature([1], tf.float32)}
        return tf.io.parse_example(serialized, spec)["x"]

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="x")])
    def predict(self, x):
        return {"y": self.a * x + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify_x_to_y(self, inputs):
        return {"scores": self.a * self._x(inputs) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress_x_to_y(self, inputs):
        return {"outputs": self.a * self._x(inputs) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress_x_to_y2(self, inputs):
        return {"outputs": self.a * self._x(inputs) + self.c}

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="inputs")])
    def regress_x2_to_y3(self, inputs):
        return {"outputs": self.a * inputs + self.c}

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32, name="inputs")])
    def classify_x2_to_y3(self, inputs):
        return {"scores": self.a * inputs + self.c}


def half_plus_two_tf2(base_path: Path) -> Path:
    module = HalfPlusTwo()
    signatures = {
        "serving_default": module.predict,
        **{
            name: getattr(module, name)
            for name in (
                "classify_x_to_y",
                "regress_x_to_y",
                "regress_x_to_y2",
                "regress_x2_to_y3",
                "classify_x2_to_y3",
            )
        },
    }
    tf.saved_model.save(module, str(base_path / VERSION_DIR), signatures=signatures)
    return base_path
