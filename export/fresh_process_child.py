"""Check 1's child: load a version with `tf.saved_model.load` where seqcast cannot be imported.

Run as `python -I fresh_process_child.py VERSION_DIR INPUTS_NPZ OUTPUTS_NPZ` from an empty
directory. `-I` ignores PYTHON* variables and leaves the script's and the current directory
off `sys.path`, but an installed seqcast is still importable from site-packages, so the
first thing the script does is make `engine`, `cells`, `export` and `serving` unimportable;
then it imports numpy and TensorFlow. It imports nothing of ours: this file stands alone.

INPUTS_NPZ holds `"<index>.<signature>.<input name>"` arrays; OUTPUTS_NPZ receives
`"<index>.<signature>.<output name>"`: every output of the signature for that request.
"""

import sys

BLOCKED_PACKAGES = ("engine", "cells", "export", "serving")


def block_packages() -> None:
    """Make every import of BLOCKED_PACKAGES raise ImportError, and prove that it does."""
    import importlib

    for name in BLOCKED_PACKAGES:
        sys.modules[name] = None  # an import of `name` now raises ImportError
    for name in BLOCKED_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        sys.exit(f"{name} is importable in the verification process")


def loaded_ours() -> list[str]:
    """Modules of BLOCKED_PACKAGES that got loaded anyway."""
    return [
        name
        for name, module in sys.modules.items()
        if module is not None and name.split(".")[0] in BLOCKED_PACKAGES
    ]


def signature_defaults(version_dir: str) -> dict:
    """`{signature: {input: tensor}}`: the SignatureDefs' default values. The functions
    `tf.saved_model.load` restores need every input; TF Serving fills these in."""
    import os

    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(version_dir, "saved_model.pb"), "rb") as handle:
        saved_model.ParseFromString(handle.read())
    return {
        key: {name: tf.constant(tf.make_ndarray(value)) for name, value in sig.defaults.items()}
        for graph in saved_model.meta_graphs
        if "serve" in graph.meta_info_def.tags
        for key, sig in graph.signature_def.items()
    }


def main(version_dir: str, inputs_path: str, outputs_path: str) -> None:
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(version_dir)
    defaults = signature_defaults(version_dir)
    calls = {}
    with np.load(inputs_path) as inputs:
        for key in inputs.files:
            index, signature, name = key.split(".", 2)
            calls.setdefault((int(index), signature), {})[name] = tf.constant(inputs[key])
    outputs = {}
    for (index, signature), feeds in sorted(calls.items()):
        # What a server does with an input the request leaves out: feed the default.
        feeds = {**defaults.get(signature, {}), **feeds}
        result = loaded.signatures[signature](**feeds)
        for name, value in result.items():
            outputs[f"{index}.{signature}.{name}"] = value.numpy()
    if loaded_ours():
        sys.exit(f"the verification process loaded {loaded_ours()}")
    np.savez(outputs_path, **outputs)


if __name__ == "__main__":
    block_packages()
    main(*sys.argv[1:4])
