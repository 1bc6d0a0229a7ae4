"""Where a run's steps execute: one device, several local devices, or several machines.

`--strategy default` is TensorFlow's default strategy (`tf.distribute.get_strategy()`): one
device, no copies, every distribution call a no-op, so the single-device run is unchanged.
`mirrored` keeps a copy of the model on each local GPU (or, on a machine without GPUs, on
`--replicas` logical CPU devices carved out of the one CPU, so the path can be tested
anywhere). `multi-worker` does the same across processes named by `TF_CONFIG`.

Every process of a multi-worker run executes the whole loop, including the checkpoint and
summary writes (they may involve collective reads); only the chief writes into the run dir,
the others write into a temporary directory that is removed at the end, as TensorFlow's
multi-worker guide recommends.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from engine.errors import InputError
from engine.training.config import TrainConfig


def make_strategy(config: TrainConfig) -> tf.distribute.Strategy:
    """The `tf.distribute.Strategy` for `config.strategy`.

    Call it before anything starts TensorFlow's runtime (creating a tensor, a variable,
    listing logical devices): logical CPU devices and the collective ops of a multi-worker
    cluster can only be set up before that.
    """
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy(devices=_mirrored_devices(config.replicas))
    if config.replicas != 1:
        raise InputError("--replicas goes with --strategy mirrored")
    if config.strategy == "default":
        return tf.distribute.get_strategy()
    cluster_spec()  # a clear error for a missing or malformed TF_CONFIG, not a hang
    return tf.distribute.MultiWorkerMirroredStrategy()  # every local GPU, else the CPU


def _mirrored_devices(replicas: int) -> list[str]:
    """The first `replicas` local GPUs (all of them when `replicas` is 1), or, without a GPU,
    `replicas` logical devices made from the CPU."""
    gpus = tf.config.list_physical_devices("GPU")  # lists; does not start the runtime
    if gpus:
        if replicas > len(gpus):
            raise InputError(f"--replicas {replicas}: this machine has {len(gpus)} GPU(s)")
        count = len(gpus) if replicas == 1 else replicas
        return [f"/gpu:{index}" for index in range(count)]
    split_cpu(replicas)
    return [f"/cpu:{index}" for index in range(replicas)]


def split_cpu(replicas: int) -> None:
    """Split the physical CPU into `replicas` logical devices `/cpu:0 .. /cpu:N-1`."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:
        # The runtime already started: that is fine if it started with this very split.
        configured = tf.config.get_logical_device_configuration(cpu) or [None]
        if len(configured) != replicas:
            raise InputError(
                f"--replicas {replicas}: TensorFlow already started with {len(configured)} "
                "logical CPU device(s); the split must happen before anything else runs "
                "(use `engine train`, or a fresh process)"
            ) from None


def cluster_spec() -> dict:
    """The `cluster` of `TF_CONFIG`, checked for the fields a worker needs."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise InputError(
            "--strategy multi-worker needs TF_CONFIG (the cluster and this process's task)"
        )
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        task_type, index = task["type"], int(task["index"])
        if index >= len(cluster[task_type]):
            raise IndexError(f"task index {index} outside the {task_type} list")
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise InputError(f"TF_CONFIG is not a valid cluster description ({error})") from None
    if "worker" not in cluster:
        raise InputError("TF_CONFIG: the cluster names no workers")
    return cluster


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that owns the run dir: the only one unless multi-worker, else the
    `chief` task or, in a cluster without one, worker 0."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker"
        and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict()
    )


@dataclass(frozen=True)
class WriteDir:
    """Where this process writes its copy of the run: the run dir on the chief, a temporary
    directory on any other worker (removed by `cleanup`)."""

    path: Path
    temporary: bool

    def cleanup(self) -> None:
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def write_dir(strategy: tf.distribute.Strategy, run_dir: Path) -> WriteDir:
    if is_chief(strategy):
        return WriteDir(run_dir, temporary=False)
    resolver = strategy.cluster_resolver
    path = Path(tempfile.mkdtemp(prefix=f"seqcast-{resolver.task_type}{resolver.task_id}-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)  # also when the run fails
    return WriteDir(path, temporary=True)


def distribute_dataset(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """Split each global batch of `dataset` among the replicas, in order.

    Workers shard by data (the series lives in memory, there are no files to shard by), so
    every worker builds the same shuffled dataset from the same seed and takes its own
    replicas' parts of each global batch. The default strategy returns the dataset itself
    (the shard policy only matters to workers).
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def sum_gradients_in_step(optimizer) -> None:
    """Let the train step, not the optimizer, sum the gradients across replicas.

    Keras 3's TensorFlow optimizer, called per replica under a strategy, clips each replica's
    own gradients (`BaseOptimizer._backend_apply_gradients`) and only then sums them across
    replicas (`TFOptimizer._backend_update_step` -> `_all_reduce_sum_gradients`): clipping
    by norm or value then acts on partial gradients and differs from one device. The step
    all-reduces first, so the optimizer must not sum again (which would count every gradient
    once per replica). Under the default strategy both sums are the identity.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    if not hasattr(inner, "_all_reduce_sum_gradients"):
        raise RuntimeError(
            "this Keras version's optimizer has no _all_reduce_sum_gradients: the cross-"
            "replica gradient sum of the train step needs reviewing"
        )
    inner._all_reduce_sum_gradients = _already_summed


def _already_summed(grads_and_vars):
    return list(grads_and_vars)
