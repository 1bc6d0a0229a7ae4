"""TF Serving's REST answers: its response protos -> JSON text (its json_tensor.cc, writing).

A row request (`"instances"`) is answered with `"predictions"`, one item (or object of
outputs) per batch element; a columnar one (`"inputs"`) with `"outputs"`, each output whole.
Output strings whose name ends in `_bytes` are written as `{"b64": ...}`; floats as TF
Serving prints them (`json_text.format_decimal`). Classify and regress answer `"results"`;
errors are `{"error": "..."}`. The layout is RapidJSON's pretty writer's (json_text.py).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving import json_text
from serving.errors import invalid_argument
from serving.json_requests import INT_DTYPES, ROW
from serving.tensors import dtype_name as dtype_string


def _value_writer(name: str, proto: tensor_pb2.TensorProto) -> tuple[list, Callable]:
    """The tensor's values (flattened) and how TF Serving writes each of them."""
    dtype = proto.dtype

    def unsupported(writer, value):
        raise invalid_argument(f"Failed to write JSON value for tensor type: {dtype_string(dtype)}")

    try:
        flat = tf.make_ndarray(proto).reshape(-1)
    except Exception:  # noqa: BLE001 - a dtype NumPy cannot hold: TF Serving refuses it too
        count = math.prod(dim.size for dim in proto.tensor_shape.dim)
        return [None] * count, unsupported
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_HALF):
        return flat.astype(np.float32).tolist(), lambda w, v: w.raw(
            json_text.format_decimal(v, single=True)
        )
    if dtype == types_pb2.DT_DOUBLE:
        return flat.tolist(), lambda w, v: w.raw(json_text.format_decimal(v, single=False))
    if dtype in (*INT_DTYPES, types_pb2.DT_INT64, types_pb2.DT_UINT32, types_pb2.DT_UINT64):
        return flat.tolist(), lambda w, v: w.raw(str(v))
    if dtype == types_pb2.DT_BOOL:
        return flat.tolist(), lambda w, v: w.raw("true" if v else "false")
    if dtype == types_pb2.DT_STRING:
        if name.endswith("_bytes"):

            def write_b64(writer, value):
                writer.start_object()
                writer.key("b64")
                writer.string(base64.b64encode(value).decode("ascii"))
                writer.end_object()

            return flat.tolist(), write_b64
        return flat.tolist(), lambda w, v: w.string(v.decode("utf-8", "surrogateescape"))
    return flat.tolist(), unsupported


def _write_tensor(writer, shape, dim: int, values, offset: list, write) -> None:
    """AddTensorValues: nested arrays from dimension `dim` on; `offset` walks `values`."""
    if dim > len(shape) - 1:
        write(writer, values[offset[0]])
        offset[0] += 1
        return
    writer.start_array()
    for _ in range(shape[dim]):
        if dim == len(shape) - 1:
            write(writer, values[offset[0]])
            offset[0] += 1
        else:
            _write_tensor(writer, shape, dim + 1, values, offset, write)
    writer.end_array()


def predict_response_json(outputs: Mapping[str, tensor_pb2.TensorProto], layout: str) -> str:
    """MakeJsonFromTensors: `{"predictions": ...}` for ROW, `{"outputs": ...}` for COLUMNAR."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    shapes = {name: [dim.size for dim in outputs[name].tensor_shape.dim] for name in names}
    writer = json_text.PrettyWriter()
    writer.start_object()
    if layout == ROW:
        batch = -1
        for name in names:
            if not shapes[name]:
                raise invalid_argument(f"Tensor name: {name} has no shape information ")
            if batch >= 0 and shapes[name][0] != batch:
                raise invalid_argument(
                    f"Tensor name: {name} has inconsistent batch size: {shapes[name][0]} "
                    f"expecting: {batch}"
                )
            batch = shapes[name][0]
        columns = {name: _value_writer(name, outputs[name]) for name in names}
        offsets = {name: [0] for name in names}
        writer.key("predictions")
        writer.start_array()
        for _ in range(batch):
            if len(names) > 1:
                writer.start_object()
            writer.single_line_arrays = True
            for name in names:
                if len(names) > 1:
                    writer.key(name)
                values, write = columns[name]
                _write_tensor(writer, shapes[name], 1, values, offsets[name], write)
            writer.single_line_arrays = False
            if len(names) > 1:
                writer.end_object()
        writer.end_array()
    else:
        writer.key("outputs")
        if len(names) > 1:
            writer.start_object()
        for name in names:
            if len(names) > 1:
                writer.key(name)
            values, write = _value_writer(name, outputs[name])
            _write_tensor(writer, shapes[name], 0, values, [0], write)
        if len(names) > 1:
            writer.end_object()
    writer.end_object()
    return writer.text()


def classification_json(result) -> str:
    """MakeJsonFromClassificationResult: `{"results": [[[label, score], ...], ...]}`."""
    if not result.classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    writer = json_text.PrettyWriter()
    writer.start_object()
    writer.key("results")
    writer.start_array()
    for classifications in result.classifications:
        writer.single_line_arrays = True
        writer.start_array()
        for item in classifications.classes:
            writer.start_array()
            writer.string(item.label)
            writer.raw(json_text.format_decimal(item.score, single=True))
            writer.end_array()
        writer.end_array()
        writer.single_line_arrays = False
    writer.end_array()
    writer.end_object()
    return writer.text()


def regression_json(result) -> str:
    """MakeJsonFromRegressionResult: `{"results": [value, ...]}`."""
    if not result.regressions:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    writer = json_text.PrettyWriter()
    writer.start_object()
    writer.key("results")
    writer.single_line_arrays = True
    writer.start_array()
    for regression in result.regressions:
        writer.raw(json_text.format_decimal(regression.value, single=True))
    writer.end_array()
    writer.end_object()
    return writer.text()


def error_json(message: str) -> str:
    """MakeJsonFromStatus: `{"error": "..."}`, pretty-printed."""
    writer = json_text.PrettyWriter()
    writer.start_object()
    writer.key("error")
    writer.string(message)
    writer.end_object()
    return writer.text()
