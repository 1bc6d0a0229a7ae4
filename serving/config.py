"""Which models to serve: a text `ModelServerConfig` (`models.config`), as TF Serving reads it.

Only a `model_config_list` of `tensorflow` models is supported; see docs/serving.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import ServingConfigError


def single_model_config(name: str, base_path: str) -> model_server_config_pb2.ModelServerConfig:
    """The config `--model_name NAME --model_base_path DIR` stands for (policy latest{1})."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = name
    model.base_path = base_path
    model.model_platform = "tensorflow"
    return config


def load_model_config(path: str | os.PathLike) -> model_server_config_pb2.ModelServerConfig:
    """Parse a text ModelServerConfig (`models.config`)."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ServingConfigError(f"cannot read model config {path}: {error.strerror}") from error
    return parse_model_config(text, path)


def parse_model_config(
    text: str, path: str | os.PathLike
) -> model_server_config_pb2.ModelServerConfig:
    """A text ModelServerConfig; a syntax error reads as TF Serving's (protobuf's) own."""
    return parse_text_proto(text, model_server_config_pb2.ModelServerConfig(), path)


def parse_text_proto(text: str, message, path: str | os.PathLike):
    """Parse a text proto file into `message`; an error reads as TF Serving's
    ParseProtoTextFile's (ServingConfigError)."""
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        where = f"{error.GetLine()}:{error.GetColumn()}: " if error.GetLine() else ""
        # Python's parser may quote the line before its message; protobuf's C++ does not.
        text = re.sub(r"^'.*': (?=[A-Z])", "", str(error).split(" : ", 1)[-1])
        raise ServingConfigError(
            f"Invalid protobuf file: '{path}': Error parsing text-format "
            f"{message.DESCRIPTOR.full_name}: {where}{text}"
        ) from error
    return message


def validate_config(config: model_server_config_pb2.ModelServerConfig) -> None:
    """Refuse, with ServingConfigError, a config this server cannot serve."""
    if config.WhichOneof("config") != "model_config_list":
        raise ServingConfigError("only a model_config_list is supported")
    names = [model.name for model in config.model_config_list.config]
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ServingConfigError(f"Illegal to list model {duplicate} multiple times in config list")
    for model in config.model_config_list.config:
        if not model.name:
            raise ServingConfigError("every model in the config needs a name")
        if model.model_platform not in ("", "tensorflow"):
            raise ServingConfigError(
                f"model {model.name}: platform {model.model_platform!r} is not supported"
            )
        if not Path(model.base_path).is_dir():
            raise ServingConfigError(
                f"model {model.name}: base path {model.base_path} is not a directory"
            )
