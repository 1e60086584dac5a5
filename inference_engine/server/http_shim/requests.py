"""Requests to the shim: the strict request model, bounded parsing, prompt building.

Everything here runs before a session exists, so a refused request changes nothing. The
body's size is bounded while it is read; the CPU work (JSON, schema, chat template,
tokenizer) runs in `prepare`, on a worker thread, with the prompt's characters bounded
before the template sees it and its tokens before a session is created.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

import pydantic_core
from jinja2 import TemplateError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.requests import Request

from inference_engine.config import LimitsConfig
from inference_engine.errors import ErrorCode, InvalidArgument, quote
from inference_engine.session.events import GenerationParams
from inference_engine.session.validation import check_params
from kakeya.tokenization import encode_chat

MAX_MESSAGES = 1024
_TOKENIZER_LOCK = threading.Lock()  # one template+encode at a time: the tokenizer is shared


class HttpError(Exception):
    """A request problem found by the shim itself (before the engine).

    `code` is the OpenAI envelope's code string; `error_code` the taxonomy row it counts as.
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        param: str | None = None,
        error_code: ErrorCode = ErrorCode.INVALID_ARGUMENT,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.error_code = error_code


# --- the request model: strict types, unknown fields ignored ----------------------------

_STRICT = ConfigDict(strict=True, extra="ignore")


class ContentPart(BaseModel):
    """One part of a message's content; only text parts reach the prompt."""

    model_config = ConfigDict(strict=True, extra="allow")
    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _text_parts_have_text(self) -> ContentPart:
        if self.type == "text" and self.text is None:
            raise ValueError("a text part needs a 'text' string")
        return self


class FunctionCall(BaseModel):
    model_config = _STRICT
    name: str
    arguments: str


class ToolCall(BaseModel):
    model_config = _STRICT
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = _STRICT
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The content as text (text parts joined; other parts carry nothing here)."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(part.text or "" for part in self.content if part.type == "text")

    def template_fields(self) -> dict[str, Any]:
        """What the chat template reads, and nothing a client added besides."""
        fields: dict[str, Any] = {"role": self.role, "content": self.text()}
        if self.reasoning_content is not None:
            fields["reasoning_content"] = self.reasoning_content
        if self.tool_calls:
            fields["tool_calls"] = [call.model_dump() for call in self.tool_calls]
        if self.tool_call_id is not None:
            fields["tool_call_id"] = self.tool_call_id
        return fields

    def chars(self) -> int:
        calls = self.tool_calls or []
        return (
            len(self.text())
            + len(self.reasoning_content or "")
            + sum(len(c.function.name) + len(c.function.arguments) for c in calls)
        )


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's request this shim serves; unknown fields are ignored."""

    model_config = _STRICT
    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stream: bool = False
    n: int | None = None
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    chat_template_kwargs: dict[str, Any] | None = None


# --- reading and preparing ----------------------------------------------------------------


@dataclass(frozen=True)
class PromptLimits:
    """Bounds `prepare` applies, from the server and the core configuration."""

    model_id: str
    max_prompt_chars: int
    default_max_tokens: int
    limits: LimitsConfig


@dataclass(frozen=True)
class Prepared:
    """A request that passed every check: its options, generation parameters and prompt."""

    chat: ChatCompletionRequest
    params: GenerationParams
    prompt_ids: list[int]


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The request body, bounded in size while it is read.

    Raises:
        HttpError: wrong content type (415), body over the limit (413).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HttpError(415, "content-type must be application/json", "unsupported_media_type")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise _too_large(limit_bytes)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit_bytes:
            raise _too_large(limit_bytes)
    return bytes(body)


def _too_large(limit_bytes: int) -> HttpError:
    return HttpError(
        413,
        f"body over {limit_bytes} bytes",
        "request_too_large",
        None,
        ErrorCode.RESOURCE_EXHAUSTED,
    )


def prepare(body: bytes, tokenizer: Any, bounds: PromptLimits) -> Prepared:
    """Parses, validates and tokenizes one request; CPU work, for a worker thread.

    Raises:
        HttpError: malformed JSON (400), schema (422), unsupported option (400), unknown
            model (404).
        InvalidArgument: a parameter or the prompt out of bounds (400).
    """
    chat = parse_chat(body)
    if chat.model != bounds.model_id:
        raise HttpError(
            404, f"model {quote(chat.model)} is not served", "model_not_found", "model",
            ErrorCode.NOT_FOUND,
        )  # fmt: skip
    params = generation_params(chat, bounds.default_max_tokens)
    check_params(params, bounds.limits)
    chars = sum(message.chars() for message in chat.messages)
    if chars > bounds.max_prompt_chars:
        raise InvalidArgument(
            "messages", f"{chars} characters exceed the limit of {bounds.max_prompt_chars}"
        )
    ids = prompt_ids(tokenizer, chat)
    if len(ids) > bounds.limits.max_append_tokens:
        raise InvalidArgument(
            "messages",
            f"the prompt is {len(ids)} tokens; the limit is {bounds.limits.max_append_tokens}",
        )
    return Prepared(chat, params, ids)


def parse_chat(body: bytes) -> ChatCompletionRequest:
    """The body as a request: JSON (nesting bounded by the parser), then the schema.

    Raises:
        HttpError: 400 for malformed JSON, 422 naming the first offending field, 400 for
            options this shim does not serve.
    """
    try:
        data = pydantic_core.from_json(body)
    except ValueError as error:  # also: nesting over the parser's depth limit
        raise HttpError(400, f"malformed JSON: {error}", "invalid_json") from error
    try:
        chat = ChatCompletionRequest.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        param = param if param is None or len(param) <= 64 else param[:64] + "..."
        raise HttpError(422, f"{param}: {first['msg']}", "invalid_request", param) from error
    unsupported = {"n": chat.n not in (None, 1), "stop": bool(chat.stop), "tools": bool(chat.tools)}
    for name, bad in unsupported.items():
        if bad:
            raise HttpError(
                400, f"{name}: not supported by this shim; use gRPC", "unsupported", name
            )
    return chat


def prompt_ids(tokenizer: Any, chat: ChatCompletionRequest) -> list[int]:
    """Renders the messages with the model's chat template into token ids.

    Raises:
        InvalidArgument: the template cannot render these messages, or
            `chat_template_kwargs.enable_thinking` is not a boolean.
    """
    thinking = (chat.chat_template_kwargs or {}).get("enable_thinking")
    if thinking is not None and not isinstance(thinking, bool):
        raise InvalidArgument("chat_template_kwargs.enable_thinking", "must be a boolean")
    messages = [message.template_fields() for message in chat.messages]
    try:
        with _TOKENIZER_LOCK:
            return encode_chat(tokenizer, messages, enable_thinking=thinking)
    except (TemplateError, TypeError, ValueError) as error:  # the template over client data
        raise InvalidArgument(
            "messages", f"the chat template cannot render them ({type(error).__name__})"
        ) from error


def generation_params(chat: ChatCompletionRequest, default_max_tokens: int) -> GenerationParams:
    """Request options to core parameters; `check_params` bounds them."""
    max_tokens = chat.max_completion_tokens
    if max_tokens is None:
        max_tokens = chat.max_tokens if chat.max_tokens is not None else default_max_tokens
    return GenerationParams(
        max_tokens=max_tokens,
        temperature=0.0 if chat.temperature is None else chat.temperature,
        top_p=1.0 if chat.top_p is None else chat.top_p,
        seed=chat.seed,
    )
