"""The extras check both commands run first: from the installed distribution's metadata."""

from __future__ import annotations

from importlib import metadata

import pytest

from inference_engine import cli as runtime_cli
from inference_engine import extras
from kakeya_evidence import cli as evidence_cli

REQUIRES = [
    "grpcio>=1.85.1",
    'torch==2.13.0; sys_platform == "linux" and extra == "runtime"',
    'torch>=2.6; sys_platform != "linux" and extra == "runtime"',
    'fastapi>=0.115; extra == "runtime"',
    'kakeya[runtime]; extra == "evidence"',
    'papermill>=2.6; extra == "evidence"',
    'kakeya[evidence]; extra == "test"',
    'openai; extra == "test"',
]


@pytest.fixture
def fake_metadata(monkeypatch: pytest.MonkeyPatch):
    """`kakeya` with REQUIRES, and only the distributions in the returned set installed."""
    installed: set[str] = {"grpcio", "fastapi", "papermill", "openai"}

    def requires(distribution: str) -> list[str]:
        if distribution != "kakeya":
            raise metadata.PackageNotFoundError(distribution)
        return REQUIRES

    def distribution(name: str) -> object:
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return object()

    monkeypatch.setattr(extras.metadata, "requires", requires)
    monkeypatch.setattr(extras.metadata, "distribution", distribution)
    return installed


def test_missing_requirements_follow_the_extras_own_extras(fake_metadata) -> None:
    assert extras.missing_requirements("runtime") == ["torch"]
    assert extras.missing_requirements("evidence") == ["torch"]  # through kakeya[runtime]
    assert extras.missing_requirements("test") == ["torch"]
    fake_metadata.add("torch")
    assert extras.missing_requirements("test") == []
    fake_metadata.discard("papermill")
    assert extras.missing_requirements("runtime") == []
    assert extras.missing_requirements("evidence") == ["papermill"]


def test_an_uninstalled_distribution_has_nothing_to_check(fake_metadata) -> None:
    assert extras.missing_requirements("runtime", distribution="not-installed") == []


def test_this_environment_has_every_extra_the_suite_needs() -> None:
    for extra in ("runtime", "evidence", "test"):
        assert extras.missing_requirements(extra) == [], extra


@pytest.mark.parametrize(
    "main, argv, extra",
    [
        (runtime_cli.main, ["serve"], "runtime"),
        (runtime_cli.main, ["prewarm", "--check"], "runtime"),
        (evidence_cli.main, ["run"], "evidence"),
    ],
)
def test_a_command_without_its_extra_exits_2_naming_it(
    fake_metadata, capsys: pytest.CaptureFixture[str], main, argv, extra
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"install kakeya[{extra}]" in err and "missing: torch" in err
