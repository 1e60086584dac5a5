"""`kakeya`: the Python SDK of the Kakeya runtime (gRPC).

    with kakeya.Client("127.0.0.1:50051") as client:
        with client.create_session(eos_token_ids=[eos]) as session:
            session.append(prompt_ids)
            generation = session.generate(max_tokens=64)
            tokens = list(generation)
            print(generation.stop_reason, generation.generated_tokens)

`kakeya.tokenization` holds opt-in chat-template helpers; `kakeya.errors` the typed errors;
`kakeya.v1` the generated wire stubs (the runtime imports them from here). The SDK needs
grpcio and protobuf only: `pip install kakeya` installs no torch, and importing it loads
nothing of the runtime.
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
from kakeya.generation import AsyncGeneration, Generation, StopReason
from kakeya.session import AsyncSession, ServerInfo, Session, SessionInfo, WhenFull

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
    "ServerInfo",
    "Session",
    "SessionClosedError",
    "SessionInfo",
    "SessionNotFoundError",
    "StopReason",
    "UnauthenticatedError",
    "WhenFull",
    "__version__",
]
