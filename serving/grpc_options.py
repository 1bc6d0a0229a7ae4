"""The gRPC server's channel arguments: TF Serving's defaults and `--grpc_channel_arguments`.

TF Serving takes `key=value` pairs separated by commas (`grpc.max_connection_age_ms=2000,
grpc.keepalive_time_ms=10000`) and passes each to gRPC's ServerBuilder: as an int when the
value parses as a 32-bit integer, else as a string. Later arguments override the defaults.
"""

from __future__ import annotations

import re

from serving.errors import ServingConfigError

MAX_MESSAGE_BYTES = 2**31 - 1
INT32_RANGE = range(-(2**31), 2**31)

# Message size limits as TF Serving sets them; no port sharing between two servers.
DEFAULT_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
]


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """`k1=v1,k2=v2` -> [(k1, v1), (k2, v2)], integer values as ints; empty text -> []."""
    arguments: list[tuple[str, int | str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ServingConfigError(
                f"bad gRPC channel argument {item!r}: expected key=value (comma-separated)"
            )
        key, value = key.strip(), value.strip()
        # safe_strto32's notion of an integer: optional sign, decimal digits, int32 range.
        if re.fullmatch(r"[+-]?[0-9]+", value) and int(value) in INT32_RANGE:
            arguments.append((key, int(value)))
        else:
            arguments.append((key, value))
    return arguments


def server_options(channel_arguments: list[tuple[str, int | str]]) -> list[tuple[str, int | str]]:
    """TF Serving's defaults, then the given arguments (a key given again wins)."""
    given = {key for key, _ in channel_arguments}
    return [option for option in DEFAULT_OPTIONS if option[0] not in given] + list(
        channel_arguments
    )
