"""The official `openai` client, unchanged, against the HTTP shim (stream and non-stream)."""

from __future__ import annotations

import openai
import pytest

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]


@pytest.fixture
def oai(runtime):
    client = openai.OpenAI(base_url=f"{runtime.http_url}/v1", api_key="unused", max_retries=0)
    yield client
    client.close()


def test_non_stream(oai, runtime) -> None:
    completion = oai.chat.completions.create(
        model=runtime.engine.model_id, messages=MESSAGES, max_tokens=6
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason in ("length", "stop")
    assert completion.usage.completion_tokens <= 6 and completion.usage.prompt_tokens > 0


def test_stream_matches_non_stream(oai, runtime) -> None:
    full = oai.chat.completions.create(
        model=runtime.engine.model_id, messages=MESSAGES, max_tokens=6
    )
    stream = oai.chat.completions.create(
        model=runtime.engine.model_id, messages=MESSAGES, max_tokens=6, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == full.choices[0].finish_reason
    assert chunks[-1].usage.total_tokens == full.usage.total_tokens


def test_models_list(oai, runtime) -> None:
    assert [m.id for m in oai.models.list()] == [runtime.engine.model_id]


def test_errors_surface_as_openai_exceptions(oai, runtime) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=runtime.engine.model_id, messages=MESSAGES, max_tokens=0)
    assert info.value.status_code == 400
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="no/such-model", messages=MESSAGES, max_tokens=2)


def test_api_key_is_the_bearer_token(serve_runtime) -> None:
    server = serve_runtime(token="oai-s3cret")
    base_url = f"{server.http_url}/v1"
    model = server.engine.model_id
    bad = openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0)
    with bad, pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=model, messages=MESSAGES, max_tokens=2)
    with openai.OpenAI(base_url=base_url, api_key="oai-s3cret", max_retries=0) as good:
        stream = good.chat.completions.create(
            model=model, messages=MESSAGES, max_tokens=2, stream=True
        )
        assert list(stream)[-1].choices[0].finish_reason in ("length", "stop")
