from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PollRequest(_message.Message):
    __slots__ = ("session", "jobs", "wait")
    class JobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    session: str
    jobs: _containers.ScalarMap[str, str]
    wait: float
    def __init__(self, session: _Optional[str] = ..., jobs: _Optional[_Mapping[str, str]] = ..., wait: _Optional[float] = ...) -> None: ...

class Work(_message.Message):
    __slots__ = ("job_id", "name", "port", "token", "sites", "heartbeat_timeout")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    name: str
    port: int
    token: str
    sites: _containers.RepeatedScalarFieldContainer[str]
    heartbeat_timeout: float
    def __init__(self, job_id: _Optional[str] = ..., name: _Optional[str] = ..., port: _Optional[int] = ..., token: _Optional[str] = ..., sites: _Optional[_Iterable[str]] = ..., heartbeat_timeout: _Optional[float] = ...) -> None: ...

class PollReply(_message.Message):
    __slots__ = ("deploy", "start", "abort", "shutdown", "retry_after")
    DEPLOY_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    ABORT_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    deploy: _containers.RepeatedCompositeFieldContainer[Work]
    start: _containers.RepeatedCompositeFieldContainer[Work]
    abort: _containers.RepeatedScalarFieldContainer[str]
    shutdown: bool
    retry_after: float
    def __init__(self, deploy: _Optional[_Iterable[_Union[Work, _Mapping]]] = ..., start: _Optional[_Iterable[_Union[Work, _Mapping]]] = ..., abort: _Optional[_Iterable[str]] = ..., shutdown: _Optional[bool] = ..., retry_after: _Optional[float] = ...) -> None: ...

class FetchJobRequest(_message.Message):
    __slots__ = ("session", "job_id")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    session: str
    job_id: str
    def __init__(self, session: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class FetchJobReply(_message.Message):
    __slots__ = ("error", "job_id", "job")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    error: str
    job_id: str
    job: bytes
    def __init__(self, error: _Optional[str] = ..., job_id: _Optional[str] = ..., job: _Optional[bytes] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("session", "job_id", "state", "reason")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    session: str
    job_id: str
    state: str
    reason: str
    def __init__(self, session: _Optional[str] = ..., job_id: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportReply(_message.Message):
    __slots__ = ("ok",)
    OK_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    def __init__(self, ok: _Optional[bool] = ...) -> None: ...

class PushLogRequest(_message.Message):
    __slots__ = ("session", "job_id", "offset", "data")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    session: str
    job_id: str
    offset: int
    data: bytes
    def __init__(self, session: _Optional[str] = ..., job_id: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class PushLogReply(_message.Message):
    __slots__ = ("ok", "offset", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    offset: int
    error: str
    def __init__(self, ok: _Optional[bool] = ..., offset: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("path", "job")
    PATH_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    path: str
    job: bytes
    def __init__(self, path: _Optional[str] = ..., job: _Optional[bytes] = ...) -> None: ...

class SubmitReply(_message.Message):
    __slots__ = ("ok", "job_id", "report", "queued")
    OK_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    job_id: str
    report: str
    queued: int
    def __init__(self, ok: _Optional[bool] = ..., job_id: _Optional[str] = ..., report: _Optional[str] = ..., queued: _Optional[int] = ...) -> None: ...

class JobsRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("id", "name", "state", "submitter", "submitter_org", "submitted_at", "started_at", "ended_at", "sites", "error", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTER_FIELD_NUMBER: _ClassVar[int]
    SUBMITTER_ORG_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: str
    submitter: str
    submitter_org: str
    submitted_at: float
    started_at: float
    ended_at: float
    sites: _containers.RepeatedScalarFieldContainer[str]
    error: str
    note: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., submitter: _Optional[str] = ..., submitter_org: _Optional[str] = ..., submitted_at: _Optional[float] = ..., started_at: _Optional[float] = ..., ended_at: _Optional[float] = ..., sites: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class JobsReply(_message.Message):
    __slots__ = ("jobs", "sites", "max_jobs")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    SITES_FIELD_NUMBER: _ClassVar[int]
    MAX_JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobInfo]
    sites: _containers.RepeatedScalarFieldContainer[str]
    max_jobs: int
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ..., sites: _Optional[_Iterable[str]] = ..., max_jobs: _Optional[int] = ...) -> None: ...

class AbortRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class AbortReply(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    error: str
    def __init__(self, ok: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("job_id", "site", "offset")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    site: str
    offset: int
    def __init__(self, job_id: _Optional[str] = ..., site: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class LogsReply(_message.Message):
    __slots__ = ("error", "offset", "ended", "state", "data")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    error: str
    offset: int
    ended: bool
    state: str
    data: bytes
    def __init__(self, error: _Optional[str] = ..., offset: _Optional[int] = ..., ended: _Optional[bool] = ..., state: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DownloadReply(_message.Message):
    __slots__ = ("error", "size", "data")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    error: str
    size: int
    data: bytes
    def __init__(self, error: _Optional[str] = ..., size: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ("sites",)
    SITES_FIELD_NUMBER: _ClassVar[int]
    sites: bool
    def __init__(self, sites: _Optional[bool] = ...) -> None: ...

class ShutdownReply(_message.Message):
    __slots__ = ("ok",)
    OK_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    def __init__(self, ok: _Optional[bool] = ...) -> None: ...
