"""TensorProto <-> NumPy, with the validation TensorFlow's `Tensor::FromProto` applies.

Responses are written as TF Serving writes them: `Tensor::AsProtoField` (typed value fields)
by default, `Tensor::AsProtoTensorContent` when asked to.

A server must never trust a TensorProto: a garbage dtype, a negative or astronomically
large dimension, or content of the wrong length has to become a clean INVALID_ARGUMENT,
never an exception deep inside TensorFlow or an attempt to allocate terabytes.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

# The largest tensor we accept: what fits in one message (2^31 - 1 bytes).
MAX_TENSOR_BYTES = 2**31 - 1
MAX_RANK = 254  # TensorShape::kMaxDimensions


class TensorParseError(ValueError):
    """The TensorProto does not describe a valid tensor."""


def dtype_name(dtype: int) -> str:
    """TensorFlow's `DataTypeString`: DT_FLOAT -> `float`, DT_DOUBLE -> `double`, ..."""
    try:
        return types_pb2.DataType.Name(dtype)[len("DT_") :].lower()
    except ValueError:
        return f"unknown dtype enum ({dtype})"


# Numeric dtypes by the repeated field of tensor.proto their values travel in: integers of
# up to 32 bits share `int_val`, the others have a field of their own name (`half_val`, ...).
_INT_VAL_DTYPES = (tf.int8, tf.int16, tf.int32, tf.uint8, tf.uint16)
_OWN_FIELD_DTYPES = (tf.float16, tf.float32, tf.float64, tf.int64, tf.uint32, tf.uint64, tf.bool)
# dtype -> (numpy dtype, repeated value field).
_NUMERIC = {
    dtype.as_datatype_enum: (dtype.as_numpy_dtype, "int_val") for dtype in _INT_VAL_DTYPES
} | {
    dtype.as_datatype_enum: (dtype.as_numpy_dtype, f"{dtype_name(dtype.as_datatype_enum)}_val")
    for dtype in _OWN_FIELD_DTYPES
}
_NUMPY_TO_DTYPE = {np.dtype(numpy_dtype): dtype for dtype, (numpy_dtype, _) in _NUMERIC.items()}

_KNOWN_DTYPES = frozenset(types_pb2.DataType.values()) - {types_pb2.DT_INVALID}


def is_known_dtype(dtype: int) -> bool:
    return dtype in _KNOWN_DTYPES


def shape_of(proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...]:
    """The concrete shape of a request tensor; unknown rank or dimension is an error."""
    if proto.unknown_rank:
        raise TensorParseError("unknown rank")
    if len(proto.dim) > MAX_RANK:
        raise TensorParseError("too many dimensions")
    shape = tuple(dim.size for dim in proto.dim)
    if any(size < 0 for size in shape):
        raise TensorParseError("negative dimension")
    return shape


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray | None:
    """Parse a request TensorProto into an array; None for a valid dtype we do not decode.

    Mirrors `Tensor::FromProto`: `tensor_content` must hold exactly the tensor's bytes; the
    repeated value fields may hold fewer values than elements (the last value repeats, none
    means zeros) but never more.
    """
    if not is_known_dtype(proto.dtype) or proto.dtype >= 100:  # 100+ are reference dtypes
        raise TensorParseError("invalid dtype")
    shape = shape_of(proto.tensor_shape)
    count = math.prod(shape)  # Python ints: huge dimensions cannot overflow
    if proto.dtype == types_pb2.DT_STRING:
        if proto.tensor_content:
            if count > len(proto.tensor_content):  # every string takes at least one byte
                raise TensorParseError("string content")
            values = _decode_string_list(proto.tensor_content, count)
            return np.array(values, dtype=object).reshape(shape)
        values = list(proto.string_val)
        if len(values) > count or (count and not values and count * 8 > MAX_TENSOR_BYTES):
            raise TensorParseError("string count")
        if count > len(values):
            if count * 8 > MAX_TENSOR_BYTES:
                raise TensorParseError("too large")
            values = values + [values[-1] if values else b""] * (count - len(values))
        return np.array(values, dtype=object).reshape(shape)
    if proto.dtype not in _NUMERIC:
        return None
    numpy_dtype, field = _NUMERIC[proto.dtype]
    itemsize = np.dtype(numpy_dtype).itemsize
    if count * itemsize > MAX_TENSOR_BYTES:
        raise TensorParseError("too large")
    if proto.tensor_content:
        if len(proto.tensor_content) != count * itemsize:
            raise TensorParseError("content size")
        return np.frombuffer(proto.tensor_content, dtype=numpy_dtype).reshape(shape)
    values = getattr(proto, field)
    if len(values) > count:
        raise TensorParseError("too many values")
    if proto.dtype == types_pb2.DT_HALF:
        # half_val holds the float16 bit patterns in int32s.
        array = np.array(values, dtype=np.uint16).view(np.float16)
    else:
        array = np.array(values, dtype=numpy_dtype)
    if len(array) < count:
        fill = array[-1] if len(array) else numpy_dtype(0)
        array = np.concatenate([array, np.full(count - len(array), fill, dtype=numpy_dtype)])
    return array.reshape(shape)


# dtype -> the repeated field `Tensor::AsProtoField` writes its values into.
_AS_PROTO_FIELD = {
    dtype.as_datatype_enum: field
    for dtype, field in [
        *((dtype, "int_val") for dtype in _INT_VAL_DTYPES),
        (tf.float32, "float_val"),
        (tf.float64, "double_val"),
        (tf.int64, "int64_val"),
        (tf.uint32, "uint32_val"),
        (tf.uint64, "uint64_val"),
        (tf.bool, "bool_val"),
        (tf.float16, "half_val"),  # the float16 / bfloat16 bit patterns, one per int32
        (tf.bfloat16, "half_val"),
        (tf.complex64, "scomplex_val"),  # real and imaginary parts interleaved
        (tf.complex128, "dcomplex_val"),
    ]
}


def from_ndarray(array: np.ndarray, tensor_content: bool = False) -> tensor_pb2.TensorProto:
    """A response tensor, as TF Serving writes one: the values in the dtype's typed field
    (`float_val`, `int_val`, `string_val`, ...) like `Tensor::AsProtoField`, or with
    `tensor_content` all of them as raw bytes like `Tensor::AsProtoTensorContent`
    (`--enable_serialization_as_tensor_content`)."""
    array = np.asarray(array)
    proto = tensor_pb2.TensorProto()
    proto.tensor_shape.dim.extend(
        tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape
    )
    if array.dtype.kind in "OSU":
        proto.dtype = types_pb2.DT_STRING
        values = [v if isinstance(v, bytes) else str(v).encode() for v in array.flat]
        if tensor_content:
            proto.tensor_content = _encode_string_list(values)
        else:
            proto.string_val.extend(values)
        return proto
    proto.dtype = tf.as_dtype(array.dtype).as_datatype_enum
    flat = np.ascontiguousarray(array).reshape(-1)
    if tensor_content:
        proto.tensor_content = flat.tobytes()
        return proto
    field = _AS_PROTO_FIELD.get(proto.dtype)
    if field is None:
        raise TypeError(f"cannot write a {dtype_name(proto.dtype)} tensor into a TensorProto")
    if field == "half_val":
        flat = flat.view(np.uint16)
    elif field in ("scomplex_val", "dcomplex_val"):
        flat = flat.view(flat.real.dtype)
    getattr(proto, field).extend(flat.tolist())
    return proto


def _encode_string_list(values: list[bytes]) -> bytes:
    """TensorFlow's string `tensor_content`: every length as a varint32, then the bytes."""
    lengths = bytearray()
    for value in values:
        length = len(value)
        while length >= 0x80:
            lengths.append((length & 0x7F) | 0x80)
            length >>= 7
        lengths.append(length)
    return bytes(lengths) + b"".join(values)


def _decode_string_list(content: bytes, count: int) -> list[bytes]:
    """The inverse of `_encode_string_list`; TensorParseError unless it holds `count` strings."""
    lengths, position = [], 0
    for _ in range(count):
        length, shift = 0, 0
        while True:
            if position >= len(content) or shift > 28:
                raise TensorParseError("string content")
            byte = content[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        lengths.append(length)
    if position + sum(lengths) != len(content):
        raise TensorParseError("string content")
    values = []
    for length in lengths:
        values.append(content[position : position + length])
        position += length
    return values
