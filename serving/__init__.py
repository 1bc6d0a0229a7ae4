"""seqcast serving: TensorFlow Serving's gRPC and REST APIs without TensorFlow Serving.

- `serving.server`: `ModelServer`, an embedded server for exported SavedModels
  (`<model_base_path>/<version>/`): gRPC, health, start and stop.
- `serving.config`: `single_model_config`, `load_model_config` (text `ModelServerConfig`);
  `serving.config_watch`: re-reading it while serving.
- `serving.grpc_options`: the gRPC server's channel arguments (`--grpc_channel_arguments`).
- `serving.manager`: `ModelManager`, loading, unloading, status, reload;
  `serving.versions`: version discovery and policies.
- `serving.servable`: `Servable`, one loaded version and Predict on it;
  `serving.inference`: Classify, Regress and MultiInference on it;
  `serving.runners`: running a signature, through TF2's loader or a TF1 session.
- `serving.batching`: `--enable_batching`, concurrent calls merged into one model call
  (`BatchingParameters`, the scheduler, the batching layer over a runner).
- `serving.services`: TF Serving's `PredictionService` and `ModelService`.
- `serving.errors`: `ServingError`, `ServingConfigError`, and TF Serving's messages.
- `serving.client`: `ForecastClient`, which works against it and the real server alike.
- `serving.tensors`: strict TensorProto <-> NumPy conversion, responses as TF Serving
  writes them.
- `serving.rest_server`, `serving.rest_api`: TF Serving's REST API (`--rest_api_port`):
  HTTP and routing, and the handlers, which call the gRPC servicers in-process
  (`serving.local_context`).
- `serving.json_text`, `serving.json_requests`, `serving.json_responses`,
  `serving.proto_json`: JSON as TF Serving's REST API reads and writes it (RapidJSON's
  parser and writer, json_tensor.cc's reading and writing, the C++ proto JSON printer).
- `serving.metrics`: request counts and latencies, the Prometheus page, MonitoringConfig.
- `serving/deploy/`: files to run the real `tensorflow/serving` container.

This package imports neither `engine`, `cells` nor `export`: only TensorFlow and
tensorflow-serving-api, as a real TF Serving deployment has.
"""
