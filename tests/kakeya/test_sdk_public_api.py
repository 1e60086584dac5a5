"""The SDK's public names are pinned: adding or removing one is a deliberate change."""

from __future__ import annotations

import kakeya
import kakeya.tokenization

PINNED = [
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


def test_all_is_pinned() -> None:
    assert sorted(kakeya.__all__) == sorted(PINNED)
    assert all(hasattr(kakeya, name) for name in kakeya.__all__)


def test_every_exported_error_derives_from_kakeya_error() -> None:
    for name in kakeya.__all__:
        value = getattr(kakeya, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, kakeya.KakeyaError), name


def test_tokenization_all_is_pinned() -> None:
    assert sorted(kakeya.tokenization.__all__) == sorted(
        [
            "IM_END",
            "ChatTokenizer",
            "encode_chat",
            "render_chat",
            "resolve_eos_ids",
        ]
    )
