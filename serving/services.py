"""TF Serving's gRPC services over a ModelManager: PredictionService and ModelService.

Every handler answers with a status, never an exception: a ServingError becomes its own
code and message, anything else INTERNAL. Codes and messages follow TF Serving's own
(predict_util.cc, classifier.cc, regressor.cc, multi_inference.cc, get_model_metadata_impl.cc,
get_model_status_impl.cc, model_service_impl.cc); see docs/serving.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from serving import inference
from serving.errors import ServingConfigError, ServingError, first_line, invalid_argument
from serving.manager import ModelManager

log = logging.getLogger("seqcast.serving")


def _run(context: grpc.ServicerContext, call: Callable[[], object]):
    """Run a handler; a ServingError becomes its status, anything else INTERNAL. Never raises
    past here, so one bad request cannot take a worker thread down."""
    try:
        return call()
    except ServingError as error:
        context.abort(error.code, error.message)
    except grpc.RpcError:
        raise  # context.abort's own exception
    except Exception as error:  # noqa: BLE001 - answer, log, keep serving
        log.exception("request failed")
        context.abort(grpc.StatusCode.INTERNAL, first_line(error))


def _model_spec(request):
    """The request's ModelSpec; TF Serving refuses a request without one."""
    if not request.HasField("model_spec"):
        raise invalid_argument("Missing ModelSpec")
    return request.model_spec


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """`tensor_content`: Predict outputs as raw bytes, as TF Serving's
    `--enable_serialization_as_tensor_content` asks; else in the typed value fields."""

    def __init__(self, manager: ModelManager, tensor_content: bool = False):
        self.manager = manager
        self.tensor_content = tensor_content

    def Predict(self, request, context):  # noqa: N802 - the generated service's names
        def call():
            servable = self.manager.resolve(_model_spec(request))
            return servable.predict(request, tensor_content=self.tensor_content)

        return _run(context, call)

    def GetModelMetadata(self, request, context):  # noqa: N802
        def call():
            model_spec = _model_spec(request)
            if not request.metadata_field:
                raise invalid_argument(
                    "GetModelMetadataRequest must specify at least one metadata_field"
                )
            for metadata_field in request.metadata_field:
                if metadata_field != "signature_def":
                    raise invalid_argument(f"Metadata field {metadata_field} is not supported")
            servable = self.manager.resolve(model_spec)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature in servable.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(signature)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            response.metadata["signature_def"].Pack(signature_map)
            return response

        return _run(context, call)

    def Classify(self, request, context):  # noqa: N802
        def call():
            return inference.classify(self.manager.resolve(_model_spec(request)), request)

        return _run(context, call)

    def Regress(self, request, context):  # noqa: N802
        def call():
            return inference.regress(self.manager.resolve(_model_spec(request)), request)

        return _run(context, call)

    def MultiInference(self, request, context):  # noqa: N802
        def call():
            # TF Serving resolves the first task's model (an empty spec without tasks).
            has_spec = request.tasks and request.tasks[0].HasField("model_spec")
            model_spec = request.tasks[0].model_spec if has_spec else model_pb2.ModelSpec()
            return inference.multi_inference(self.manager.resolve(model_spec), request)

        return _run(context, call)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request, context):  # noqa: N802
        def call():
            return self.manager.status(_model_spec(request))

        return _run(context, call)

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        def call():
            try:
                self.manager.reload(request.config)
            except ServingConfigError as error:
                raise invalid_argument(str(error)) from error
            response = model_management_pb2.ReloadConfigResponse()
            response.status.SetInParent()  # error_code OK, as TF Serving's ToStatusProto
            return response

        return _run(context, call)
