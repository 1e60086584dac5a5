"""`kakeya`: the Python SDK of the Kakeya runtime (gRPC).

    with kakeya.Client("127.0.0.1:50051") as client:
        with client.create_session(eos_token_ids=[eos]) as session:
            session.append(prompt_ids)
            generation = session.generate(max_tokens=64)
            tokens = list(generation)
            print(generation.stop_reason, generation.generated_tokens)

`kakeya.tokenization` holds opt-in chat-template helpers; `kakeya.errors` the typed errors.
"""

from __future__ import annotations

from kakeya.client import AsyncClient, Client
from kakeya.errors import (
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    KakeyaError,
    ResourceExhaustedError,
    RuntimeUnavailableError,
    SessionClosedError,
    SessionNotFoundError,
    UnauthenticatedError,
)
from kakeya.session import (
    AsyncGeneration,
    AsyncSession,
    Generation,
    Session,
    SessionInfo,
    StopReason,
)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncGeneration",
    "AsyncSession",
    "CancelledError",
    "Client",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "Generation",
    "InternalError",
    "InvalidArgumentError",
    "KakeyaError",
    "ResourceExhaustedError",
    "RuntimeUnavailableError",
    "Session",
    "SessionClosedError",
    "SessionInfo",
    "SessionNotFoundError",
    "StopReason",
    "UnauthenticatedError",
    "__version__",
]
