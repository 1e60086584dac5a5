from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StopReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOP_REASON_UNSPECIFIED: _ClassVar[StopReason]
    STOP_REASON_MAX_TOKENS: _ClassVar[StopReason]
    STOP_REASON_EOS: _ClassVar[StopReason]
    STOP_REASON_CANCELLED: _ClassVar[StopReason]
    STOP_REASON_SHUTDOWN: _ClassVar[StopReason]

class WhenFull(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WHEN_FULL_UNSPECIFIED: _ClassVar[WhenFull]
    WHEN_FULL_REJECT: _ClassVar[WhenFull]
    WHEN_FULL_EVICT_IDLE: _ClassVar[WhenFull]
STOP_REASON_UNSPECIFIED: StopReason
STOP_REASON_MAX_TOKENS: StopReason
STOP_REASON_EOS: StopReason
STOP_REASON_CANCELLED: StopReason
STOP_REASON_SHUTDOWN: StopReason
WHEN_FULL_UNSPECIFIED: WhenFull
WHEN_FULL_REJECT: WhenFull
WHEN_FULL_EVICT_IDLE: WhenFull

class CreateSessionRequest(_message.Message):
    __slots__ = ("eos_token_ids", "label")
    EOS_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    eos_token_ids: _containers.RepeatedScalarFieldContainer[int]
    label: str
    def __init__(self, eos_token_ids: _Optional[_Iterable[int]] = ..., label: _Optional[str] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ...) -> None: ...

class AppendTokensRequest(_message.Message):
    __slots__ = ("session_id", "token_ids")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, session_id: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class AppendTokensResponse(_message.Message):
    __slots__ = ("history_tokens",)
    HISTORY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    history_tokens: int
    def __init__(self, history_tokens: _Optional[int] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("session_id", "max_tokens", "temperature", "top_p", "top_k", "seed")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int
    def __init__(self, session_id: _Optional[str] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class TokenEvent(_message.Message):
    __slots__ = ("token_id", "index")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    token_id: int
    index: int
    def __init__(self, token_id: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class TruncationEvent(_message.Message):
    __slots__ = ("dropped_tokens", "cached_tokens")
    DROPPED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    dropped_tokens: int
    cached_tokens: int
    def __init__(self, dropped_tokens: _Optional[int] = ..., cached_tokens: _Optional[int] = ...) -> None: ...

class DoneEvent(_message.Message):
    __slots__ = ("stop_reason", "generated_tokens", "prefill_tokens", "prefill_s", "total_s", "history_tokens")
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFILL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFILL_S_FIELD_NUMBER: _ClassVar[int]
    TOTAL_S_FIELD_NUMBER: _ClassVar[int]
    HISTORY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    stop_reason: StopReason
    generated_tokens: int
    prefill_tokens: int
    prefill_s: float
    total_s: float
    history_tokens: int
    def __init__(self, stop_reason: _Optional[_Union[StopReason, str]] = ..., generated_tokens: _Optional[int] = ..., prefill_tokens: _Optional[int] = ..., prefill_s: _Optional[float] = ..., total_s: _Optional[float] = ..., history_tokens: _Optional[int] = ...) -> None: ...

class GenerateEvent(_message.Message):
    __slots__ = ("token", "truncation", "done")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    token: TokenEvent
    truncation: TruncationEvent
    done: DoneEvent
    def __init__(self, token: _Optional[_Union[TokenEvent, _Mapping]] = ..., truncation: _Optional[_Union[TruncationEvent, _Mapping]] = ..., done: _Optional[_Union[DoneEvent, _Mapping]] = ...) -> None: ...

class CancelGenerateRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CancelGenerateResponse(_message.Message):
    __slots__ = ("was_running",)
    WAS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    was_running: bool
    def __init__(self, was_running: _Optional[bool] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSessionInfoRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session_id", "label", "eos_token_ids", "history_tokens", "cached_tokens", "dropped_tokens", "kv_live_bytes", "kv_bound_bytes", "idle_s", "invariant_checks", "generating", "server")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    EOS_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    KV_LIVE_BYTES_FIELD_NUMBER: _ClassVar[int]
    KV_BOUND_BYTES_FIELD_NUMBER: _ClassVar[int]
    IDLE_S_FIELD_NUMBER: _ClassVar[int]
    INVARIANT_CHECKS_FIELD_NUMBER: _ClassVar[int]
    GENERATING_FIELD_NUMBER: _ClassVar[int]
    SERVER_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    label: str
    eos_token_ids: _containers.RepeatedScalarFieldContainer[int]
    history_tokens: int
    cached_tokens: int
    dropped_tokens: int
    kv_live_bytes: int
    kv_bound_bytes: int
    idle_s: float
    invariant_checks: int
    generating: bool
    server: ServerInfo
    def __init__(self, session_id: _Optional[str] = ..., label: _Optional[str] = ..., eos_token_ids: _Optional[_Iterable[int]] = ..., history_tokens: _Optional[int] = ..., cached_tokens: _Optional[int] = ..., dropped_tokens: _Optional[int] = ..., kv_live_bytes: _Optional[int] = ..., kv_bound_bytes: _Optional[int] = ..., idle_s: _Optional[float] = ..., invariant_checks: _Optional[int] = ..., generating: _Optional[bool] = ..., server: _Optional[_Union[ServerInfo, _Mapping]] = ...) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("max_sessions", "when_full")
    MAX_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    WHEN_FULL_FIELD_NUMBER: _ClassVar[int]
    max_sessions: int
    when_full: WhenFull
    def __init__(self, max_sessions: _Optional[int] = ..., when_full: _Optional[_Union[WhenFull, str]] = ...) -> None: ...
