"""JSON text and tensors as TF Serving's REST API reads and writes them (serving.json_text,
serving.json_requests, serving.json_responses), checked against the cases of TF Serving's
own json_tensor_test.cc and RapidJSON's messages. No server: the REST round trips are in
test_serving_rest.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import predict_pb2, regression_pb2

from serving import json_requests, json_responses, json_text
from serving.errors import ServingError


def infos(**dtypes) -> dict:
    return {name: meta_graph_pb2.TensorInfo(dtype=dtype) for name, dtype in dtypes.items()}


def fill(body: str, **dtypes):
    request = predict_pb2.PredictRequest()
    layout = json_requests.fill_predict_request(body.encode(), request, lambda _: infos(**dtypes))
    return request, layout


def refusal(body: str, **dtypes) -> str:
    with pytest.raises(ServingError) as caught:
        fill(body, **dtypes)
    return caught.value.message


def tensor(text: str) -> tensor_pb2.TensorProto:
    return text_format.Parse(text, tensor_pb2.TensorProto())


# --- numbers and strings as TF Serving writes them --------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (9000000, "9e+06"),
        (999999, "999999.0"),
        (0.5, "0.5"),
        (0.0003, "0.0003"),
        (0.00003, "3e-05"),
        (555557.5, "555557.5"),
        (3.0, "3.0"),
        (-0.0, "-0.0"),
        (0.1, "0.1"),
        (97.200447, "97.2004471"),  # six digits do not round-trip: max_digits10
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
    ],
)
def test_float_formatting(value, text):
    assert json_text.format_decimal(np.float32(value), single=True) == text


def test_double_formatting():
    assert json_text.format_decimal(0.1, single=False) == "0.1"
    assert json_text.format_decimal(1.7976931348623157e308, single=False) == (
        "1.7976931348623157e+308"
    )


def test_error_body_is_pretty_printed_and_escaped():
    assert json_responses.error_json('a "b"\n\\') == '{\n    "error": "a \\"b\\"\\n\\\\"\n}'


# --- RapidJSON's parse errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"  ", "The document is empty. at offset: 2"),
        (b'{"a":1,}', "Missing a name for object member. at offset: 7"),
        (b"[1 2]", "Missing a comma or ']' after an array element. at offset: 3"),
        (b'{"a" 1}', "Missing a colon after a name of object member. at offset: 5"),
        (b'{"a":1 "b"}', "Missing a comma or '}' after an object member. at offset: 7"),
        (b"[01]", "Missing a comma or ']' after an array element. at offset: 2"),
        (b'"abc', "Missing a closing quotation mark in string. at offset: 4"),
        (b"[1e400]", "Number too big to be stored in double. at offset: 1"),
        (b"[1.]", "Miss fraction part in number. at offset: 3"),
        (b"[1e]", "Miss exponent in number. at offset: 3"),
        (b"tru", "Invalid value. at offset: 3"),
        (b"[Infinit]", "Invalid value. at offset: 8"),
        (b'["\\x"]', "Invalid escape character in string. at offset: 2"),
        (b'["\\u12g4"]', "Incorrect hex digit after \\u escape in string. at offset: 2"),
        (b'["\\ud800"]', "The surrogate pair in string is invalid. at offset: 2"),
        (b'["a\x01"]', "Invalid encoding in string. at offset: 3"),
        (b"[1] 2", "The document root must not be followed by other values. at offset: 4"),
    ],
)
def test_parse_errors(body, message):
    with pytest.raises(json_text.JsonParseError) as caught:
        json_text.parse(body)
    assert str(caught.value) == f"JSON Parse error: {message}"


def test_parse_accepts_what_rapidjson_accepts():
    assert json_text.parse(b"\xef\xbb\xbf[1]") == [1]  # a BOM is skipped
    assert json_text.parse(b"[1]\x00 anything") == [1]  # NUL ends the document
    values = json_text.parse(b"[Inf, -Inf, -NaN, NaN, Infinity, 2.0, 18446744073709551616]")
    assert values[:2] == [math.inf, -math.inf] and math.isnan(values[2])
    assert isinstance(values[5], float) and isinstance(values[6], float)
    assert json_text.parse(b"[18446744073709551615, -9223372036854775808]") == [
        2**64 - 1,
        -(2**63),
    ]


def test_deep_nesting_is_refused_not_crashing():
    with pytest.raises(json_text.JsonParseError):
        json_text.parse(b"[" * 100000)


# --- requests -----------------------------------------------------------------------------------


def test_row_format_single_unnamed_tensor():
    request, layout = fill('{"instances": [[1,2],[3,4],[5,6]]}', default=types_pb2.DT_INT32)
    assert layout == json_requests.ROW
    assert tf.make_ndarray(request.inputs["default"]).tolist() == [[1, 2], [3, 4], [5, 6]]


def test_row_format_named_tensors_and_base64():
    request, _ = fill(
        """{"instances": [
            {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"],
             "float_tensor": [1.0, NaN], "dbl_tensor": [NaN]},
            {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": [{"b64": "YmF6"}, "bat"],
             "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}]}""",
        int_tensor=types_pb2.DT_INT32,
        str_tensor=types_pb2.DT_STRING,
        float_tensor=types_pb2.DT_FLOAT,
        dbl_tensor=types_pb2.DT_DOUBLE,
    )
    assert [d.size for d in request.inputs["int_tensor"].tensor_shape.dim] == [2, 3, 2]
    assert list(request.inputs["str_tensor"].string_val) == [b"foo", b"bar", b"baz", b"bat"]
    floats = list(request.inputs["float_tensor"].float_val)
    assert floats[0] == 1.0 and math.isnan(floats[1]) and floats[2:] == [2.0, math.inf]


def test_columnar_format_keeps_each_shape():
    request, layout = fill(
        '{"inputs": {"series": [[1, 2, 3]], "horizon": 4}}',
        series=types_pb2.DT_FLOAT,
        horizon=types_pb2.DT_INT32,
    )
    assert layout == json_requests.COLUMNAR
    assert not request.inputs["horizon"].tensor_shape.dim
    assert list(request.inputs["horizon"].int_val) == [4]
    assert tf.make_ndarray(request.inputs["series"]).shape == (1, 3)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '{"instances": [[1,2],[3,4],[5,6,7]]}',
            "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting tensor size: 2 but got: 3",
        ),
        (
            '{"instances": [[1,2],[3,4],[[5,6]]]}',
            "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting shape [2] but got: [1,2]",
        ),
        (
            '{"instances": [[1,2],["a", "b"]]}',
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            'JSON Value: "a" Type: String is not of expected type: int32',
        ),
        ('{"signature_name": 5, "instances": [1]}', "must be a string value."),
        ('{"instances": [1], "inputs": [1]}', "Not formatted correctly expecting only"),
        ('{"instances": []}', "No values in 'instances' array"),
        ('{"instances": 5}', "Excepting 'instances' to be an list/array"),
        ("{}", "Missing 'inputs' or 'instances' key"),
        ("[1]", "JSON Value: [\n    1\n] Is not object"),
        ("", "JSON Parse error: The document is empty"),
    ],
)
def test_request_errors(body, message):
    assert message in refusal(body, default=types_pb2.DT_INT32)


def test_lossy_numbers_are_refused():
    assert refusal('{"inputs": [16777217]}', x=types_pb2.DT_FLOAT) == (
        "Cannot convert JSON value: 16777217 to float without loss of precision."
    )
    assert "loss of precision" in refusal('{"inputs": [1e39]}', x=types_pb2.DT_FLOAT)
    assert "loss of precision" in refusal('{"inputs": [9007199254740993]}', x=types_pb2.DT_DOUBLE)


def test_named_inputs_must_all_be_there():
    two = dict(series=types_pb2.DT_FLOAT, horizon=types_pb2.DT_INT32)
    assert refusal('{"inputs": {"series": [[1]]}}', **two) == (
        "Missing named input: horizon in 'inputs' object."
    )
    assert refusal('{"instances": [[1]]}', **two).startswith("instances is a plain list")
    assert "keys must be equal to: horizon,series" in refusal(
        '{"instances": [{"series": [1]}]}', **two
    )


# --- responses ----------------------------------------------------------------------------------

INT_TENSOR = """dtype: DT_INT32 tensor_shape { dim { size: 2 } dim { size: 2 } }
int_val: 1 int_val: 2 int_val: 3 int_val: 4"""


def test_row_and_columnar_answers_are_laid_out_as_tf_serving_does():
    outputs = {"y": tensor(INT_TENSOR)}
    assert json_responses.predict_response_json(outputs, json_requests.ROW) == (
        '{\n    "predictions": [[1, 2], [3, 4]\n    ]\n}'
    )
    assert json_responses.predict_response_json(outputs, json_requests.COLUMNAR) == (
        '{\n    "outputs": [\n        [\n            1,\n            2\n        ],\n'
        "        [\n            3,\n            4\n        ]\n    ]\n}"
    )
    vector = tensor("dtype: DT_FLOAT tensor_shape { dim { size: 3 } } float_val: [2.5, 3, 4.5]")
    assert json_responses.predict_response_json({"y": vector}, json_requests.ROW) == (
        '{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}'
    )


def test_several_outputs_and_bytes():
    outputs = {
        "str_tensor_bytes": tensor(
            'dtype: DT_STRING tensor_shape { dim { size: 2 } } string_val: ["hello", "tf"]'
        ),
        "score": tensor("dtype: DT_DOUBLE tensor_shape { dim { size: 2 } } double_val: [8, 9]"),
    }
    row = json_text.parse(json_responses.predict_response_json(outputs, json_requests.ROW).encode())
    assert row.find("predictions")[0] == json_text.JsonObject(
        [("score", 8.0), ("str_tensor_bytes", json_text.JsonObject([("b64", "aGVsbG8=")]))]
    )
    with pytest.raises(ServingError, match="no shape information"):
        json_responses.predict_response_json(
            {"x": tensor("dtype: DT_INT32 int_val: 1")}, json_requests.ROW
        )
    with pytest.raises(ServingError, match="tensor type: complex64"):
        json_responses.predict_response_json(
            {
                "x": tensor(
                    "dtype: DT_COMPLEX64 tensor_shape { dim { size: 1 } } scomplex_val: [1, 2]"
                )
            },
            json_requests.ROW,
        )


def test_examples_and_regression_results():
    request = regression_pb2.RegressionRequest()
    json_requests.fill_examples_request(
        b'{"context": {"c": "x"}, "examples": [{"x": 2.0, "n": [1, 2], "b": {"b64": "YQ=="}}]}',
        request,
    )
    example = request.input.example_list_with_context.examples[0]
    assert list(example.features.feature["x"].float_list.value) == [2.0]
    assert list(example.features.feature["n"].int64_list.value) == [1, 2]
    assert list(example.features.feature["b"].bytes_list.value) == [b"a"]
    result = regression_pb2.RegressionResult()
    result.regressions.add(value=3.5)
    result.regressions.add(value=4.0)
    assert json_responses.regression_json(result) == '{\n    "results": [3.5, 4.0]\n}'
    with pytest.raises(ServingError, match="expecting type: float"):
        json_requests.fill_examples_request(
            b'{"examples": [{"x": [1.5, "a"]}]}', regression_pb2.RegressionRequest()
        )


# --- the standard parser's fast path agrees with the RapidJSON reader ---------------------------

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_documents = st.recursive(
    _leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, json_text.JsonObject) and isinstance(b, json_text.JsonObject):
        return len(a) == len(b) and all(
            ka == kb and _same(va, vb) for (ka, va), (kb, vb) in zip(a, b, strict=True)
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(_documents, st.sampled_from([None, 2]))
def test_fast_path_agrees_with_the_reader(document, indent):
    body = json.dumps(document, indent=indent).encode()
    reader = json_text._Reader(body).document()
    assert _same(json_text.parse(body), reader)


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=24) | st.text(alphabet='[]{}",:-+.eE0123456789 \\untrfalsNI', max_size=24)
)
def test_any_bytes_parse_or_fail_cleanly(body):
    body = body.encode() if isinstance(body, str) else body
    try:
        value = json_text.parse(body)
    except json_text.JsonParseError as error:
        assert str(error).startswith("JSON Parse error: ")
        with pytest.raises(json_text.JsonParseError) as again:
            json_text._Reader(body).document()
        assert str(again.value) == str(error)
    else:
        assert _same(value, json_text._Reader(body).document())
