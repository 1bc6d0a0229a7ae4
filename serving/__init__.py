"""seqcast serving: TensorFlow Serving's gRPC API without TensorFlow Serving.

- `serving.server`: `ModelServer`, an embedded server for exported SavedModels
  (`<model_base_path>/<version>/`), with TF Serving's services, errors and version handling.
- `serving.client`: `ForecastClient`, which works against it and the real server alike.
- `serving.tensors`: strict TensorProto <-> NumPy conversion for request handling.
- `serving/deploy/`: files to run the real `tensorflow/serving` container.

This package imports neither `engine`, `cells` nor `export`: only TensorFlow and
tensorflow-serving-api, as a real TF Serving deployment has.
"""
