from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("text", "id")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    text: str
    id: str
    def __init__(self, text: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("index", "label", "confidence", "probabilities", "model_name", "model_version", "inference_ms", "queue_ms")
    class ProbabilitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    index: int
    label: str
    confidence: float
    probabilities: _containers.ScalarMap[str, float]
    model_name: str
    model_version: str
    inference_ms: float
    queue_ms: float
    def __init__(self, index: _Optional[int] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ..., probabilities: _Optional[_Mapping[str, float]] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., inference_ms: _Optional[float] = ..., queue_ms: _Optional[float] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("request_id", "prediction", "latency_ms", "id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prediction: Prediction
    latency_ms: float
    id: str
    def __init__(self, request_id: _Optional[str] = ..., prediction: _Optional[_Union[Prediction, _Mapping]] = ..., latency_ms: _Optional[float] = ..., id: _Optional[str] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class PredictBatchResponse(_message.Message):
    __slots__ = ("request_id", "predictions", "latency_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    latency_ms: float
    def __init__(self, request_id: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("review_id", "request_id", "label")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    request_id: str
    label: str
    def __init__(self, review_id: _Optional[str] = ..., request_id: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("feedback_id", "review_id", "label")
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    feedback_id: str
    review_id: str
    label: str
    def __init__(self, feedback_id: _Optional[str] = ..., review_id: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class ModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfoResponse(_message.Message):
    __slots__ = ("model_name", "model_version", "seen_at", "registry_name", "registry_alias", "registry_version", "registry_error")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ALIAS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_VERSION_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ERROR_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    seen_at: str
    registry_name: str
    registry_alias: str
    registry_version: str
    registry_error: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., seen_at: _Optional[str] = ..., registry_name: _Optional[str] = ..., registry_alias: _Optional[str] = ..., registry_version: _Optional[str] = ..., registry_error: _Optional[str] = ...) -> None: ...
