"""seqcast serving: TensorFlow Serving's gRPC API without TensorFlow Serving.

- `serving.server`: `ModelServer`, an embedded server for exported SavedModels
  (`<model_base_path>/<version>/`): gRPC, health, start and stop.
- `serving.config`: `single_model_config`, `load_model_config` (text `ModelServerConfig`).
- `serving.manager`: `ModelManager`, version discovery, policies, loading and unloading.
- `serving.servable`: `Servable`, one loaded version and Predict on it.
- `serving.services`: TF Serving's `PredictionService` and `ModelService`.
- `serving.errors`: `ServingError`, `ServingConfigError`, and TF Serving's messages.
- `serving.client`: `ForecastClient`, which works against it and the real server alike.
- `serving.tensors`: strict TensorProto <-> NumPy conversion for request handling.
- `serving/deploy/`: files to run the real `tensorflow/serving` container.

This package imports neither `engine`, `cells` nor `export`: only TensorFlow and
tensorflow-serving-api, as a real TF Serving deployment has.
"""
