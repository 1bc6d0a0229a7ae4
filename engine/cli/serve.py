"""`engine serve`: the embedded TensorFlow Serving (gRPC, and REST with --rest_api_port),
with TF Serving's flag names (docs/cli.md, docs/serving.md)."""

from __future__ import annotations

import click

from engine.cli.options import quiet_option
from engine.errors import InputError, RunFailed


@click.command("serve")
@click.option(  # --model_base_path etc.: TF Serving's spelling, as its own test suite runs it
    "--model-base-path",
    "--model_base_path",
    "model_base_path",
    default=None,
    metavar="DIR",
    help="The model's base path: the directory holding its integer-named versions.",
)
@click.option(
    "--model-name",
    "--model_name",
    "model_name",
    default=None,
    help="Name clients ask for (with --model-base-path; default seqcast).",
)
@click.option(
    "--model-config-file",
    "--model_config_file",
    "model_config_file",
    default=None,
    help="A text ModelServerConfig (models.config) instead of --model-base-path.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8500,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="gRPC port (0: any free port).",
)
@click.option(
    "--poll-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="How often the base paths are checked for new versions.",
)
@click.option("--tls-cert", default=None, help="PEM certificate: serve over TLS (with --tls-key).")
@click.option("--tls-key", default=None, help="PEM private key for --tls-cert.")
@click.option(
    "--grpc-socket-path",
    "--grpc_socket_path",
    "grpc_socket_path",
    default=None,
    metavar="PATH",
    help="Also serve gRPC on this Unix socket (TF Serving's flag).",
)
@click.option(
    "--grpc-channel-arguments",
    "--grpc_channel_arguments",
    "grpc_channel_arguments",
    default="",
    metavar="K=V,...",
    help="gRPC server channel arguments, comma-separated key=value (TF Serving's format).",
)
@click.option(
    "--model-config-file-poll-wait-seconds",
    "--model_config_file_poll_wait_seconds",
    "config_poll_seconds",
    default=0.0,
    type=click.FloatRange(min=0),
    help="Re-read --model-config-file every N seconds (0: read once).",
)
@click.option(
    "--enable-serialization-as-tensor-content",
    "--enable_serialization_as_tensor_content",
    "tensor_content",
    is_flag=True,
    help="Predict outputs as tensor_content bytes instead of the typed value fields.",
)
@click.option(
    "--rest-api-port",
    "--rest_api_port",
    "rest_api_port",
    default=None,
    type=click.IntRange(0, 65535),
    help="Also serve TF Serving's REST API on this port (0: any free port; default off).",
)
@click.option(
    "--rest-api-timeout-in-ms",
    "--rest_api_timeout_in_ms",
    "rest_api_timeout_ms",
    default=30000,
    show_default=True,
    type=int,
    help="Deadline of a REST predict, classify or regress, in ms (<= 0: none).",
)
@click.option(
    "--monitoring-config-file",
    "--monitoring_config_file",
    "monitoring_config_file",
    default=None,
    metavar="FILE",
    help="TF Serving's MonitoringConfig text proto: Prometheus metrics on the REST port.",
)
@click.option(
    "--enable-batching",
    "--enable_batching",
    "enable_batching",
    is_flag=True,
    help="Merge concurrent requests to one signature into batches, as TF Serving does.",
)
@click.option(
    "--batching-parameters-file",
    "--batching_parameters_file",
    "batching_parameters_file",
    default=None,
    metavar="FILE",
    help="TF Serving's BatchingParameters text proto for --enable_batching.",
)
@quiet_option
def serve(
    model_base_path,
    model_name,
    model_config_file,
    host,
    port,
    poll_seconds,
    tls_cert,
    tls_key,
    grpc_socket_path,
    grpc_channel_arguments,
    config_poll_seconds,
    tensor_content,
    rest_api_port,
    rest_api_timeout_ms,
    monitoring_config_file,
    enable_batching,
    batching_parameters_file,
    quiet,
):
    """Serve exported models over TensorFlow Serving's gRPC API until SIGTERM or SIGINT.

    Prints one line when ready, then one line per version loaded or unloaded (not with
    --quiet). New versions written into the base path are picked up while serving.
    """
    import signal
    import threading

    from serving.batching import BatchingParameters, load_batching_parameters
    from serving.config import load_model_config, single_model_config
    from serving.errors import ServingConfigError, ServingStartError
    from serving.grpc_options import parse_channel_arguments
    from serving.metrics import load_monitoring_config
    from serving.server import ModelServer

    if (model_config_file is None) == (model_base_path is None):
        raise InputError("give either --model-base-path (and --model-name) or --model-config-file")
    if model_config_file is not None and model_name is not None:
        raise InputError("--model-name goes with --model-base-path; models.config names its models")
    if config_poll_seconds and model_config_file is None:
        raise InputError("--model_config_file_poll_wait_seconds goes with --model-config-file")
    if batching_parameters_file is not None and not enable_batching:  # TF Serving's words
        raise InputError(
            "server_options.batching_parameters_file is set without setting "
            "server_options.enable_batching to true."
        )

    def event(message: str) -> None:
        if not quiet:
            click.echo(f"engine serve: {message}")

    try:
        if model_config_file is not None:
            config = load_model_config(model_config_file)
        else:
            config = single_model_config(model_name or "seqcast", model_base_path)
        monitoring = (
            load_monitoring_config(monitoring_config_file) if monitoring_config_file else None
        )
        if monitoring is not None and monitoring.enable and rest_api_port is None:
            raise InputError("--monitoring_config_file serves its metrics on --rest_api_port")
        batching = None
        if enable_batching:
            batching = (
                load_batching_parameters(batching_parameters_file)
                if batching_parameters_file
                else BatchingParameters()
            )
        server = ModelServer(
            config,
            host=host,
            port=port,
            poll_seconds=poll_seconds,
            tls_cert=tls_cert,
            tls_key=tls_key,
            on_event=event,
            grpc_socket_path=grpc_socket_path,
            channel_arguments=parse_channel_arguments(grpc_channel_arguments),
            tensor_content=tensor_content,
            model_config_file=model_config_file,
            model_config_file_poll_wait_seconds=config_poll_seconds,
            rest_api_port=rest_api_port,
            rest_api_timeout_ms=rest_api_timeout_ms,
            monitoring=monitoring,
            batching=batching,
        ).start()
    except ServingConfigError as error:
        raise InputError(str(error)) from error
    except ServingStartError as error:  # as TF Serving, which exits when a model fails
        raise RunFailed(f"cannot start: {error}") from error

    stop = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stop.set())
    models = ", ".join(
        f"{name} versions {versions or 'none yet'}"
        for name, versions in server.manager.available().items()
    )
    scheme = "TLS" if tls_cert else "plaintext"
    where = server.address + (f" and unix:{grpc_socket_path}" if grpc_socket_path else "")
    if server.rest_address is not None:  # before the ready line: that one means all is up
        metrics = f", metrics at {monitoring.path}" if monitoring and monitoring.enable else ""
        click.echo(f"engine serve: REST API on http://{server.rest_address}{metrics}")
    click.echo(f"engine serve: ready on {where} ({scheme}): {models}")
    while not stop.wait(0.5):
        pass
    event("shutting down: finishing in-flight requests")
    server.stop(grace=10.0)
    event("stopped")
