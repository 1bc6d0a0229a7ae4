"""TF Serving's REST request bodies -> its request protos (its json_tensor.cc, reading).

Predict requests come in two layouts, answered in the matching one (json_responses.py):

- row (`"instances": [...]`): one item per batch element, stacked along a new dimension 0;
  an item is the single input's value, or an object naming every input.
- columnar (`"inputs": value` or `"inputs": {"name": value, ...}`): each input whole, with
  its own shape (a scalar `horizon` needs this). Every input is named, one with a default
  too: TF Serving's JSON reader asks for all of them.

Strings are JSON strings or `{"b64": "..."}`; floats accept NaN and Infinity. Classify and
regress take `"examples"` (and an optional `"context"`) of tf.train.Example features.

Every refusal is a `ServingError` with TF Serving's code and message.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping

import grpc
import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving import json_text
from serving.errors import ServingError, invalid_argument
from serving.json_text import JsonObject, value_to_string
from serving.tensors import dtype_name as dtype_string

ROW, COLUMNAR = "row", "columnar"

_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)


def _status_text(error: ServingError) -> str:
    """absl::Status::ToString, as TF Serving nests one error in another."""
    return f"{error.code.name}: {error.message}"


# -- reading ---------------------------------------------------------------------------------


def parse_body(body: bytes) -> JsonObject:
    """TF Serving's ParseJson: the body must be a JSON object."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    try:
        document = json_text.parse(body)
    except json_text.JsonParseError as error:
        raise invalid_argument(str(error)) from error
    if not isinstance(document, JsonObject):
        raise invalid_argument(f"JSON Value: {value_to_string(document)} Is not object")
    return document


def _fill_signature(document: JsonObject, request) -> None:
    if "signature_name" in document:
        name = document.find("signature_name")
        if not isinstance(name, str):
            raise invalid_argument(
                f"JSON Value: {value_to_string(document)} not formatted correctly. "
                "'signature_name' key must be a string value."
            )
        request.model_spec.signature_name = name


def _is_int_in(value, bounds) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return False
    return bounds[0] <= value <= bounds[1]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_error(value, dtype: int) -> ServingError:
    return invalid_argument(
        f"JSON Value: {value_to_string(value)} Type: {json_text.type_name(value)} is not of "
        f"expected type: {dtype_string(dtype)}"
    )


def _lossless(value, single: bool) -> bool:
    """TF Serving's IsLosslessDecimal: integers within the mantissa, doubles within range
    (NaN and the infinities pass)."""
    if isinstance(value, int):  # within int64/uint64: the parser made larger ones doubles
        return abs(value) <= 2 ** (24 if single else 53) - 1
    if not math.isfinite(value):
        return True
    return json_text.is_float_range(value) if single else True


def _lossy_error(value, target: str) -> ServingError:
    return invalid_argument(
        f"Cannot convert JSON value: {value_to_string(value)} to {target} without loss of "
        "precision."
    )


def _is_b64(value) -> bool:
    return isinstance(value, JsonObject) and len(value) == 1 and isinstance(value.find("b64"), str)


def _decode_b64(value) -> bytes:
    if not _is_b64(value):
        raise invalid_argument(
            f"JSON Value: {value_to_string(value)} not formatted correctly for base64 data"
        )
    text = value.find("b64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise invalid_argument("Unable to base64 decode") from error


def _string_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# What each dtype accepts (TF Serving's AddValueToTensor) and the TensorProto field it fills.
INT_DTYPES = (types_pb2.DT_INT32, types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_UINT8)


def _convert(value, dtype: int):
    """One JSON leaf as a value of `dtype`, or TF Serving's error."""
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        if not _is_number(value):
            raise _type_error(value, dtype)
        single = dtype == types_pb2.DT_FLOAT
        if not _lossless(value, single):
            raise _lossy_error(value, "float" if single else "double")
        return float(value)
    if dtype in INT_DTYPES:
        if not _is_int_in(value, _INT32):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return _string_bytes(value)
    if dtype == types_pb2.DT_INT64:
        if not _is_int_in(value, _INT64):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_UINT32:
        if not _is_int_in(value, _UINT32):
            raise _type_error(value, dtype)
        return value
    if dtype == types_pb2.DT_UINT64:
        if not _is_int_in(value, _UINT64):
            raise _type_error(value, dtype)
        return value
    raise ServingError(
        grpc.StatusCode.UNIMPLEMENTED,
        f"Conversion of JSON Value: {value_to_string(value)} to type: {dtype_string(dtype)}",
    )


_VALUE_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
}


_FLOAT_DTYPES = (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _all_floats(values: list, dtype: int) -> bool:
    """Every value a JSON double that converts without loss (else the one-by-one path finds
    the first that does not, and words its error)."""
    if not all(type(value) is float for value in values):
        return False
    if dtype == types_pb2.DT_DOUBLE:
        return True
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    return bool(np.all(np.abs(finite) <= _FLOAT32_MAX))


def _dense_shape(value) -> list[int]:
    """GetDenseTensorShape: the sizes along the first element at each level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


class _TensorValues:
    """The values of one request tensor as they are read (FillTensorProto)."""

    def __init__(self, dtype: int):
        self.dtype = dtype
        self.values: list = []

    def fill(self, value, shape: list[int], level: int = 0) -> int:
        """Append the leaves of `value`, checking it is dense with `shape`; returns the count."""
        rank = len(shape)
        if not isinstance(value, list):
            if level != rank:
                raise invalid_argument(
                    f"JSON Value: {value_to_string(value)} found at incorrect level: "
                    f"{level + 1} in the JSON DOM. Expected at level: {rank}"
                )
            if isinstance(value, JsonObject):
                if self.dtype != types_pb2.DT_STRING:
                    raise _type_error(value, self.dtype)
                self.values.append(_decode_b64(value))
            else:
                self.values.append(_convert(value, self.dtype))
            return 1
        if level >= rank:
            raise invalid_argument(
                f"Encountered list at unexpected level: {level} expected < {rank}"
            )
        if len(value) != shape[level]:
            raise invalid_argument(
                f"Encountered list at unexpected size: {len(value)} at level: {level} "
                f"expected size: {shape[level]}"
            )
        if level + 1 == rank:
            if self.dtype in _FLOAT_DTYPES and _all_floats(value, self.dtype):
                self.values.extend(value)  # the common case, checked in one go
                return len(value)
            if all(not isinstance(item, (list, JsonObject)) for item in value):
                self.values.extend(_convert(item, self.dtype) for item in value)
                return len(value)
        return sum(self.fill(item, shape, level + 1) for item in value)

    def proto(self, shape: list[int]) -> tensor_pb2.TensorProto:
        proto = tensor_pb2.TensorProto(dtype=self.dtype)
        proto.tensor_shape.dim.extend(proto.tensor_shape.Dim(size=size) for size in shape)
        getattr(proto, _VALUE_FIELDS[self.dtype]).extend(self.values)
        return proto


def _tensor_from_value(value, dtype: int) -> tensor_pb2.TensorProto:
    shape = _dense_shape(value)
    values = _TensorValues(dtype)
    values.fill(value, shape)
    return values.proto(shape)


def _is_member_object(value) -> bool:
    """An object naming inputs (a `{"b64": ...}` object is a value, not a name map)."""
    return isinstance(value, JsonObject) and not _is_b64(value)


def _tensors_from_instances(instances: list, infos: Mapping) -> dict:
    """FillTensorMapFromInstancesList: stack the items along a new dimension 0."""
    names = sorted(infos)
    if not isinstance(instances[0], JsonObject) and len(names) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    objects = _is_member_object(instances[0])
    values: dict[str, _TensorValues] = {}
    shapes: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}

    def add(item, name: str) -> None:
        if name not in infos:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        shape = _dense_shape(item)
        tensor = values.setdefault(name, _TensorValues(infos[name].dtype))
        size = tensor.fill(item, shape)
        if name not in sizes:
            sizes[name], shapes[name] = size, shape
        elif sizes[name] != size:
            raise invalid_argument(f"Expecting tensor size: {sizes[name]} but got: {size}")
        elif shapes[name] != shape:
            raise invalid_argument(
                f"Expecting shape [{','.join(map(str, shapes[name]))}] but got: "
                f"[{','.join(map(str, shape))}]"
            )

    for index, item in enumerate(instances):
        if objects:
            if not _is_member_object(item):
                raise invalid_argument(
                    f"Expecting object but got list at item {index} of input list"
                )
            keys = set()
            for name, member in item:
                keys.add(name)
                try:
                    add(member, name)
                except ServingError as error:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {name} of 'instances' "
                        f"list. Error: {_status_text(error)}"
                    ) from error
            if keys != set(names):
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{value_to_string(item)} keys must be equal to: {','.join(names)}"
                )
        else:
            if _is_member_object(item):
                raise invalid_argument(
                    f"Expecting value/list but got object at item {index} of input list"
                )
            try:
                add(item, names[0])
            except ServingError as error:
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. Error: "
                    f"{_status_text(error)}"
                ) from error
    return {name: values[name].proto([len(instances), *shapes[name]]) for name in values}


def _tensors_from_inputs(inputs, infos: Mapping) -> dict:
    """FillTensorMapFromInputsMap: each input whole, in its own shape."""
    names = sorted(infos)
    if not isinstance(inputs, JsonObject) or _is_b64(inputs):
        if len(names) > 1:
            raise invalid_argument(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        return {names[0]: _tensor_from_value(inputs, infos[names[0]].dtype)}
    tensors = {}
    for name in names:
        if name not in inputs:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        tensors[name] = _tensor_from_value(inputs.find(name), infos[name].dtype)
    return tensors


def fill_predict_request(body: bytes, request, signature_inputs: Callable[[str], Mapping]) -> str:
    """Fill a PredictRequest's signature and inputs from a REST body; returns ROW or COLUMNAR.

    `signature_inputs(signature_name)` gives the signature's inputs (alias -> TensorInfo),
    or raises the ServingError TF Serving answers (unknown model, unknown signature).
    """
    document = parse_body(body)
    _fill_signature(document, request)
    signature_name = request.model_spec.signature_name
    infos = signature_inputs(signature_name)
    if not infos:
        raise invalid_argument(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}"
        )
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise invalid_argument(
            f"JSON Value: {value_to_string(document)} Not formatted correctly expecting only "
            "one of 'inputs' or 'instances' keys to exist "
        )
    if has_instances:
        instances = document.find("instances")
        if not isinstance(instances, list):
            raise invalid_argument(
                f"JSON Value: {value_to_string(document)} Excepting 'instances' to be an list/array"
            )
        if not instances:
            raise invalid_argument(
                f"JSON Value: {value_to_string(document)} No values in 'instances' array"
            )
        tensors = _tensors_from_instances(instances, infos)
        layout = ROW
    elif has_inputs:
        tensors = _tensors_from_inputs(document.find("inputs"), infos)
        layout = COLUMNAR
    else:
        raise invalid_argument("Missing 'inputs' or 'instances' key")
    for name, tensor in tensors.items():
        request.inputs[name].CopyFrom(tensor)
    return layout


# -- classify and regress requests -----------------------------------------------------------

_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64", None: "UNKNOWN"}


def _add_feature_value(value, name: str, feature: feature_pb2.Feature) -> None:
    """AddValueToFeature: the first value fixes the feature's kind."""
    kind = feature.WhichOneof("kind")

    def need(wanted: str) -> None:
        if kind not in (None, wanted):
            raise invalid_argument(
                f"Unexpected element type in feature: {name} expecting type: {_KIND_NAMES[kind]}"
            )

    def unexpected() -> ServingError:
        return invalid_argument(
            f"Feature: {name} has element with unexpected JSON type: {json_text.type_name(value)}"
        )

    if value is None or isinstance(value, list):
        raise unexpected()
    if isinstance(value, bool):
        need("int64_list")
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, JsonObject):
        if not _is_b64(value):
            raise unexpected()
        need("bytes_list")
        feature.bytes_list.value.append(_decode_b64(value))
    elif isinstance(value, str):
        need("bytes_list")
        feature.bytes_list.value.append(_string_bytes(value))
    elif isinstance(value, float):
        need("float_list")
        if not _lossless(value, single=True):
            raise _lossy_error(value, "float")
        feature.float_list.value.append(value)
    else:
        need("int64_list")
        if value > _INT64[1]:
            raise invalid_argument(f"Feature: {name} has uint64 element. Only int64 is supported.")
        feature.int64_list.value.append(value)


def _example_from_json(value, example: example_pb2.Example) -> None:
    if not isinstance(value, JsonObject):
        raise invalid_argument(
            f"Example must be JSON object but got JSON {json_text.type_name(value)}"
        )
    for name, content in value:
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def fill_examples_request(body: bytes, request) -> None:
    """FillClassificationRequestFromJson / FillRegressionRequestFromJson."""
    document = parse_body(body)
    _fill_signature(document, request)
    has_context = "context" in document
    if has_context:
        _example_from_json(
            document.find("context"), request.input.example_list_with_context.context
        )
    if "examples" not in document:
        raise invalid_argument(
            f"JSON Value: {value_to_string(document)} When method is classify, key "
            "'examples' is expected and was not found"
        )
    examples = document.find("examples")
    if not isinstance(examples, list):
        raise invalid_argument(
            f"JSON Value: {value_to_string(document)} Expecting 'examples' value to be an "
            "list/array"
        )
    if not examples:
        raise invalid_argument(
            f"JSON Value: {value_to_string(document)} 'examples' value is an empty array"
        )
    for item in examples:
        target = (
            request.input.example_list_with_context.examples.add()
            if has_context
            else request.input.example_list.examples.add()
        )
        _example_from_json(item, target)
