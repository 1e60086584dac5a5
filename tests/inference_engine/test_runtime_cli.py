"""`kakeya-runtime`'s flags reach the frozen configs built at the edge."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import pytest

from inference_engine.cli import build_parser
from inference_engine.cli_args import config_fields, flag_name
from inference_engine.config import RuntimeConfig
from inference_engine.server.config import ServerConfig
from inference_engine.server.serve import runtime_config, server_config


def test_reflection_is_on_unless_turned_off() -> None:
    parser = build_parser()
    assert server_config(parser.parse_args(["serve"])).reflection is True
    assert server_config(parser.parse_args(["serve", "--no-reflection"])).reflection is False


def test_serve_defaults_are_the_config_dataclasses_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert runtime_config(args) == RuntimeConfig()
    assert server_config(args) == ServerConfig()


def test_every_generated_serve_flag_reaches_the_config_it_came_from() -> None:
    """A flag whose value serve.py did not read would be a lie: give each a new value."""
    argv, expected = ["serve"], {}
    for config in (RuntimeConfig, ServerConfig):
        for field, kind in config_fields(config):
            value = _other_value(field, kind)
            argv += [flag_name(field), str(value)]
            expected[field.name] = value
    args = build_parser().parse_args(argv)
    built = {**_leaves(runtime_config(args)), **_leaves(server_config(args))}
    assert {name: built[name] for name in expected} == expected


def test_abbreviated_flags_are_refused_and_the_meant_one_named(capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["serve", "--max-concurren", "2"])
    assert caught.value.code == 2
    assert "did you mean --max-concurrent?" in capsys.readouterr().err


def _other_value(field: dataclasses.Field[Any], kind: Any) -> Any:
    default = field.default
    if isinstance(default, enum.Enum):
        return next(member for member in type(default) if member != default)
    if kind is str:
        return {"device": "cpu", "dtype": "float16"}.get(field.name, f"{default}-other")
    return default + 1


def _leaves(config: Any) -> dict[str, Any]:
    values = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        values.update(_leaves(value) if dataclasses.is_dataclass(value) else {field.name: value})
    return values
