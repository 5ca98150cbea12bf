from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HelloRequest(_message.Message):
    __slots__ = ("stream", "version", "poll_group")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    POLL_GROUP_FIELD_NUMBER: _ClassVar[int]
    stream: str
    version: int
    poll_group: str
    def __init__(self, stream: _Optional[str] = ..., version: _Optional[int] = ..., poll_group: _Optional[str] = ...) -> None: ...

class HelloReply(_message.Message):
    __slots__ = ("heartbeat_timeout", "long_poll", "chunk_bytes", "max_model_bytes", "poll_group")
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    LONG_POLL_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    POLL_GROUP_FIELD_NUMBER: _ClassVar[int]
    heartbeat_timeout: float
    long_poll: float
    chunk_bytes: int
    max_model_bytes: int
    poll_group: bool
    def __init__(self, heartbeat_timeout: _Optional[float] = ..., long_poll: _Optional[float] = ..., chunk_bytes: _Optional[int] = ..., max_model_bytes: _Optional[int] = ..., poll_group: _Optional[bool] = ...) -> None: ...

class PollTasksRequest(_message.Message):
    __slots__ = ("group", "wait")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    group: str
    wait: float
    def __init__(self, group: _Optional[str] = ..., wait: _Optional[float] = ...) -> None: ...

class PolledTask(_message.Message):
    __slots__ = ("task", "sites")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    task: TaskReply
    sites: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[TaskReply, _Mapping]] = ..., sites: _Optional[_Iterable[str]] = ...) -> None: ...

class PollTasksReply(_message.Message):
    __slots__ = ("tasks", "ended")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[PolledTask]
    ended: bool
    def __init__(self, tasks: _Optional[_Iterable[_Union[PolledTask, _Mapping]]] = ..., ended: _Optional[bool] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("wait",)
    WAIT_FIELD_NUMBER: _ClassVar[int]
    wait: float
    def __init__(self, wait: _Optional[float] = ...) -> None: ...

class TaskReply(_message.Message):
    __slots__ = ("kind", "name", "task_id", "model", "model_bytes")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NONE: _ClassVar[TaskReply.Kind]
        TASK: _ClassVar[TaskReply.Kind]
        END: _ClassVar[TaskReply.Kind]
    NONE: TaskReply.Kind
    TASK: TaskReply.Kind
    END: TaskReply.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    kind: TaskReply.Kind
    name: str
    task_id: str
    model: bytes
    model_bytes: int
    def __init__(self, kind: _Optional[_Union[TaskReply.Kind, str]] = ..., name: _Optional[str] = ..., task_id: _Optional[str] = ..., model: _Optional[bytes] = ..., model_bytes: _Optional[int] = ...) -> None: ...

class FetchModelRequest(_message.Message):
    __slots__ = ("task_id", "offset")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    offset: int
    def __init__(self, task_id: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class SubmitResultRequest(_message.Message):
    __slots__ = ("task_id", "model", "wait", "stream", "records")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    model: bytes
    wait: float
    stream: str
    records: bytes
    def __init__(self, task_id: _Optional[str] = ..., model: _Optional[bytes] = ..., wait: _Optional[float] = ..., stream: _Optional[str] = ..., records: _Optional[bytes] = ...) -> None: ...

class ResultPart(_message.Message):
    __slots__ = ("task_id", "model_bytes", "data")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    model_bytes: int
    data: bytes
    def __init__(self, task_id: _Optional[str] = ..., model_bytes: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class SubmitResultReply(_message.Message):
    __slots__ = ("accepted", "next", "ack", "error")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    next: TaskReply
    ack: int
    error: str
    def __init__(self, accepted: _Optional[bool] = ..., next: _Optional[_Union[TaskReply, _Mapping]] = ..., ack: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatReply(_message.Message):
    __slots__ = ("ended",)
    ENDED_FIELD_NUMBER: _ClassVar[int]
    ended: bool
    def __init__(self, ended: _Optional[bool] = ...) -> None: ...

class SendEventsRequest(_message.Message):
    __slots__ = ("stream", "records")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    stream: str
    records: bytes
    def __init__(self, stream: _Optional[str] = ..., records: _Optional[bytes] = ...) -> None: ...

class SendEventsReply(_message.Message):
    __slots__ = ("ack", "error")
    ACK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ack: int
    error: str
    def __init__(self, ack: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ByeRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ByeReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
