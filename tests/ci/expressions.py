"""A small evaluator of GitHub Actions expressions, for testing the workflows' ``if:``.

It follows GitHub's documented rules for what the workflows use: literals
(``'text'`` with ``''`` as a quote, numbers, ``true``/``false``/``null``), context
paths (``github.event.label.name``, names may hold ``-``), ``!``, ``==``, ``!=``,
``&&``, ``||``, parentheses, and the functions ``always()``, ``success()``,
``failure()``, ``cancelled()``, ``contains()``, ``startsWith()``. ``&&`` and ``||``
return an operand, as in GitHub; ``==`` ignores case for strings and coerces mixed
types to numbers (``null`` and ``''`` are both 0). A missing property is ``null``.
A job's ``if:`` without a status function means ``success() && (...)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!().,\[\]])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)
_STATUS_FUNCTIONS = ("always(", "success(", "failure(", "cancelled(")


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot read expression at {text[pos:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class Evaluator:
    """Evaluate one expression against contexts and a job's ``needs`` results."""

    def __init__(self, contexts: Mapping[str, Any], needs_results: Mapping[str, str]) -> None:
        self.contexts = contexts
        self.needs_results = needs_results
        self.tokens: list[tuple[str, str]] = []
        self.pos = 0

    def evaluate(self, text: str) -> Any:
        self.tokens, self.pos = tokenize(text), 0
        value = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"trailing tokens in {text!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, got {token[1]!r}")
        self.pos += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            value = right if truthy(value) else value
        return value

    def _compare(self) -> Any:
        value = self._unary()
        while self._peek() in {"==", "!="}:
            op = self._take()[1]
            same = equal(value, self._unary())
            value = same if op == "==" else not same
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text in {"true", "false", "null"}:
            return {"true": True, "false": False, "null": None}[text]
        if self._peek() == "(":
            return self._call(text)
        return self._path(self.contexts.get(text))

    def _path(self, value: Any) -> Any:
        while self._peek() in {".", "["}:
            if self._take()[1] == ".":
                key = self._take()[1]
            else:
                key = self._or()
                self._take("]")
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    def _call(self, name: str) -> Any:
        self._take("(")
        args = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        results = set(self.needs_results.values())
        if name == "always":
            return True
        if name == "success":
            return results <= {"success"}
        if name == "failure":
            return "failure" in results
        if name == "cancelled":
            return False
        if name == "contains":
            return str(args[1]).lower() in str(args[0]).lower()
        if name == "startsWith":
            return str(args[0]).lower().startswith(str(args[1]).lower())
        raise ValueError(f"unknown function {name}()")


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and value != 0.0


def equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    if type(left) is type(right):
        return left == right
    return _number(left) == _number(right)


def _number(value: Any) -> float:
    if value is None or value is False or value == "":
        return 0.0
    if value is True:
        return 1.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def job_runs(condition: str | None, contexts: Mapping[str, Any], needs: Mapping[str, str]) -> bool:
    """Whether a job with this ``if:`` starts, given its needs' results."""
    text = condition or "success()"
    if not any(fn in text for fn in _STATUS_FUNCTIONS):
        text = f"success() && ({text})"
    return truthy(Evaluator(contexts, needs).evaluate(text))
