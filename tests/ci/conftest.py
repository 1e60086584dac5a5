"""Fixtures for the workflow and runbook checks: the GitHub subcommands run in-process."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import pytest

from kakeya_evidence import github


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
