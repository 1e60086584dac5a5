"""The deprecated OpenAI-style HTTP+SSE shim (sunset: see `app.SUNSET`).

`app` (routes, the one-shot session, the middleware), `requests` (the strict request
model and bounded prompt building), `sse` (SSE framing and OpenAI shapes), `detokenizer`
(UTF-8-safe streamed text), `transport` (uvicorn with TCP_NODELAY, bounded request heads
and a header timeout). Delete this folder at the sunset.
"""
