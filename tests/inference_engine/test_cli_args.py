"""Flags generated from config dataclasses: names, defaults, help, aliases, no abbreviations."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import pytest

from inference_engine.cli_args import ArgumentParser, add_config_args, config_from_args


class Mode(enum.StrEnum):
    FAST = "fast"
    SAFE = "safe"


@dataclass(frozen=True)
class Inner:
    max_items: int = field(default=3, metadata={"help": "how many"})
    mode: Mode = field(default=Mode.FAST, metadata={"help": "which way"})
    bound_s: float | None = field(default=None, metadata={"help": "a limit"})


@dataclass(frozen=True)
class Outer:
    name: str = field(default="x", metadata={"help": "the name", "flag": "--label"})
    timeout_s: float = field(default=1.5, metadata={"aliases": ("--timeout",)})
    on: bool = field(default=True, metadata={"help": "switch", "aliases": ("--no-switch",)})
    hidden: int = field(default=7, metadata={"cli": False})
    inner: Inner = field(default_factory=Inner)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="demo")
    add_config_args(parser, Outer)
    return parser


def test_no_flags_give_the_dataclass_defaults():
    assert config_from_args(Outer, _parser().parse_args([])) == Outer()


def test_each_field_is_a_flag_nested_ones_too_with_its_type():
    args = _parser().parse_args(
        ["--label", "y", "--timeout-s", "2", "--no-on", "--max-items", "5", "--mode", "safe"]
    )
    built = config_from_args(Outer, args)
    assert built == Outer(name="y", timeout_s=2.0, on=False, inner=Inner(5, Mode.SAFE))
    assert type(built.inner.mode) is Mode
    assert config_from_args(Outer, _parser().parse_args(["--bound-s", "4"])).inner.bound_s == 4.0


def test_help_comes_from_the_field_metadata_and_hidden_fields_have_no_flag():
    text = _parser().format_help()
    assert "the name" in text and "how many" in text and "which way" in text
    assert "--hidden" not in text and "--timeout " not in text  # aliases are not advertised


def test_an_old_flag_name_still_works_and_says_it_is_deprecated(capsys):
    args = _parser().parse_args(["--timeout", "9"])
    assert config_from_args(Outer, args).timeout_s == 9.0
    err = capsys.readouterr().err
    assert "--timeout is deprecated" in err and "use --timeout-s" in err
    assert config_from_args(Outer, _parser().parse_args(["--no-switch"])).on is False
    assert "--no-switch is deprecated" in capsys.readouterr().err


def test_abbreviations_are_refused_and_the_error_names_the_flag(capsys):
    with pytest.raises(SystemExit) as caught:
        _parser().parse_args(["--max-item", "2"])
    assert caught.value.code == 2
    assert "(did you mean --max-items?)" in capsys.readouterr().err


def test_a_bad_number_is_a_usage_error_naming_the_unit(capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(["--timeout-s", "soon"])
    assert "not a number of seconds: 'soon'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["--mode", "slow"])


def test_two_fields_of_one_flag_must_agree_on_the_default():
    @dataclass(frozen=True)
    class Clash:
        max_items: int = 4  # Inner's is 3

    parser = ArgumentParser(prog="demo")
    add_config_args(parser, Inner)
    with pytest.raises(TypeError, match="max_items"):
        add_config_args(parser, Clash)
