"""GetModelStatus and GetModelMetadata answers as TF Serving's REST API prints them.

TF Serving prints these protos with protobuf's C++ JSON printer (`add_whitespace`,
`always_print_primitive_fields`): one space of indent per level, every field even when it
holds its default, and fields in declaration order with a set `oneof` member last (so a
ModelSpec reads name, signature_name, version). The metadata answer is glued together from
two printed protos, newlines and all, exactly as TF Serving's ToJsonString glues them.
"""

from __future__ import annotations

import json

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.errors import ServingError


def _ordered(message: Message, value, preserve_names: bool):
    """Reorder `MessageToDict`'s output into the C++ printer's field order."""
    if not isinstance(value, dict):
        return value
    descriptor = message.DESCRIPTOR
    if descriptor.GetOptions().map_entry:
        return value
    plain = [f for f in descriptor.fields if f.containing_oneof is None or _synthetic(f)]
    oneof = [f for f in descriptor.fields if f not in plain]
    ordered = {}
    for field in plain + oneof:
        key = field.name if preserve_names else field.json_name
        if key not in value:
            continue
        ordered[key] = _field_value(message, field, value[key], preserve_names)
    for key, item in value.items():  # anything the descriptor walk did not name
        ordered.setdefault(key, item)
    return ordered


def _synthetic(field) -> bool:
    """A proto3 `optional` field's oneof is not a real oneof."""
    oneof = field.containing_oneof
    return getattr(oneof, "is_synthetic", False) or (
        len(oneof.fields) == 1 and oneof.name.startswith("_")
    )


def _field_value(message: Message, field, value, preserve_names: bool):
    if field.message_type is None:
        return value
    if field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        if value_field.message_type is None:
            return dict(sorted(value.items()))
        entries = getattr(message, field.name)
        return {
            key: _ordered(entries[_map_key(field, key)], value[key], preserve_names)
            for key in sorted(value)
        }
    if field.is_repeated:
        return [
            _ordered(item, entry, preserve_names)
            for item, entry in zip(getattr(message, field.name), value)
        ]
    return _ordered(getattr(message, field.name), value, preserve_names)


def _map_key(field, key: str):
    key_field = field.message_type.fields_by_name["key"]
    if key_field.type == key_field.TYPE_BOOL:
        return key == "true"
    if key_field.cpp_type in (key_field.CPPTYPE_STRING,):
        return key
    return int(key)


def to_json(message: Message, preserve_names: bool = False) -> str:
    """`MessageToJsonString` with TF Serving's options, newline included."""
    value = json_format.MessageToDict(
        message,
        preserving_proto_field_name=preserve_names,
        always_print_fields_with_no_presence=True,
    )
    return json.dumps(_ordered(message, value, preserve_names), indent=1, ensure_ascii=False) + (
        "\n"
    )


def status_json(response) -> str:
    """A GetModelStatusResponse; every version carries a status, OK included, as TF
    Serving's always does."""
    for version_status in response.model_version_status:
        version_status.status.SetInParent()
    return to_json(response)


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> str:
    """TF Serving's ToJsonString(GetModelMetadataResponse)."""
    if "signature_def" not in response.metadata:
        raise ServingError(
            grpc.StatusCode.INTERNAL,
            "Failed to find 'signature_def' key in the GetModelMetadataResponse metadata map.",
        )
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    if not response.metadata["signature_def"].Unpack(signature_map):
        raise ServingError(
            grpc.StatusCode.INTERNAL, "Failed to unpack 'Any' object to 'SignatureDefMap'."
        )
    model_spec = to_json(response.model_spec, preserve_names=True)
    signatures = to_json(signature_map, preserve_names=True)
    return f'{{\n"model_spec":{model_spec},\n"metadata": {{"signature_def": {signatures}}}\n}}\n'
