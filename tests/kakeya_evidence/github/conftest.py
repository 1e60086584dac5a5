"""Fixtures for the GitHub glue: the fake API, and the subcommands run in-process."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Iterator

import pytest
from fake_github import INSTALLATION_TOKEN, FakeGitHub, serve_fake_github

from kakeya_evidence import github
from kakeya_evidence.github import client as client_module


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    """A fake GitHub API, with GITHUB_TOKEN and GITHUB_API_URL pointing at it."""
    monkeypatch.setenv("GITHUB_TOKEN", INSTALLATION_TOKEN)
    for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    with serve_fake_github() as state:
        monkeypatch.setenv("GITHUB_API_URL", state.base_url)
        yield state


@pytest.fixture
def cli() -> Callable[[list[str]], tuple[int, str]]:
    """Run one GitHub subcommand as the CLI would; return (exit code, stdout)."""

    def run(argv: list[str]) -> tuple[int, str]:
        parser = argparse.ArgumentParser()
        github.register(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(argv)
        out = io.StringIO()
        return args.func(args, out), out.getvalue()

    return run


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries record their waits instead of sleeping (every client, also the CLI's)."""
    waits: list[float] = []
    monkeypatch.setattr(client_module, "_sleep", waits.append)
    return waits
