"""Command-line flags generated from frozen config dataclasses (stdlib only).

A config field is an option: its flag is the field name with dashes
(``max_concurrent`` -> ``--max-concurrent``), its default the field's, its help the
``help`` of the field's metadata, as vLLM's ``EngineArgs.add_cli_args`` does. Nested
config dataclasses contribute their fields too, so one composed config is one flat set
of flags; a name that two pieces share (``model``) is one flag that sets both.

Field metadata the generator reads:

- ``help``: the flag's help text.
- ``flag``: a flag name other than the field's, kept from before (``--model`` for
  ``model_id``); the parsed value's name (``dest``) follows the flag.
- ``aliases``: older flag names, accepted for one release with a deprecation line.
- ``cli``: False keeps a field off the command line (set by the program, not the user).
- ``type``: a parser for the flag's text, where the field's type alone does not say how
  (``1,2,4`` for a tuple of counts).
- ``choices``: the values the flag accepts (an enum field's are its members' values).

Parsers are built with ``allow_abbrev=False`` and name the closest flag on a typo, so
``--worker 2`` is a usage error that names ``--workers`` instead of a silent full run.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

__all__ = [
    "ArgumentParser",
    "add_config_args",
    "config_fields",
    "config_from_args",
    "flag_dest",
    "flag_name",
]

_C = TypeVar("_C")


class ArgumentParser(argparse.ArgumentParser):
    """argparse without abbreviations whose usage errors suggest the flag meant.

    Subparsers made by ``add_subparsers`` are of this class too (argparse's default).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        hint = _suggestion(self, message)
        super().error(message + hint)


def flag_name(field: dataclasses.Field[Any]) -> str:
    """The flag of a config field: metadata ``flag``, else ``--`` and the name with dashes."""
    return str(field.metadata.get("flag") or "--" + field.name.replace("_", "-"))


def flag_dest(field: dataclasses.Field[Any]) -> str:
    """The attribute the parsed value lands in: the flag without dashes (``model``)."""
    return flag_name(field).lstrip("-").replace("-", "_")


def config_fields(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    """Every command-line field of a config dataclass and its nested ones, with its type."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            yield from config_fields(kind)
        elif field.metadata.get("cli", True):
            yield field, kind


def add_config_args(
    parser: argparse.ArgumentParser, cls: type, *, skip: Sequence[str] = ()
) -> None:
    """Add one flag per field of ``cls`` (nested configs included), default and help from it.

    A flag seen before (in this call or on ``parser``) adds nothing: it is the same
    option. ``skip`` names fields the caller adds by hand.

    Raises:
        TypeError: Two fields of one flag have different defaults (they would disagree).
    """
    seen: dict[str, Any] = {a.dest: a.default for a in parser._actions}
    for field, kind in config_fields(cls):
        dest, default = flag_dest(field), _default(field)
        if field.name in skip:
            continue
        if dest in seen:
            if seen[dest] != getattr(default, "value", default):
                raise TypeError(f"{dest}: defaults {seen[dest]!r} and {default!r}")
            continue
        seen[dest] = getattr(default, "value", default)
        _add_field(parser, field, kind, default)


def config_from_args(cls: type[_C], args: argparse.Namespace) -> _C:
    """Build ``cls`` from parsed flags: each field from its flag, nested configs likewise.

    Fields without a flag (``cli`` False, or not parsed) keep their defaults.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[field.name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            values[field.name] = config_from_args(kind, args)
        elif field.metadata.get("cli", True) and hasattr(args, flag_dest(field)):
            values[field.name] = _coerce(kind, getattr(args, flag_dest(field)))
    return cls(**values)


def _coerce(kind: Any, value: Any) -> Any:
    """An enum field gets its member, not the flag's text."""
    base = _unwrap_optional(kind)
    if isinstance(base, type) and issubclass(base, enum.Enum) and value is not None:
        return base(value)
    return value


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _add_field(
    parser: argparse.ArgumentParser, field: dataclasses.Field[Any], kind: Any, default: Any
) -> None:
    flag, help_text = flag_name(field), field.metadata.get("help")
    aliases = tuple(field.metadata.get("aliases", ()))
    options: dict[str, Any] = {"dest": flag_dest(field), "default": default, "help": help_text}
    if kind is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **options)
        for alias in aliases:
            const = not alias.startswith("--no-")
            parser.add_argument(
                alias, action=_DeprecatedFlag, nargs=0, const=const, new=flag, **_quiet(options)
            )
        return
    options.update(_value_options(field.name, kind, default))
    if "type" in field.metadata:
        options["type"] = field.metadata["type"]
    if "choices" in field.metadata:
        options["choices"] = tuple(field.metadata["choices"])
        options["metavar"] = "|".join(str(c) for c in options["choices"] if c != "")
    parser.add_argument(flag, **options)
    for alias in aliases:
        parser.add_argument(alias, action=_DeprecatedFlag, new=flag, **_quiet(options))


def _value_options(name: str, kind: Any, default: Any) -> dict[str, Any]:
    base = _unwrap_optional(kind)
    if isinstance(base, type) and issubclass(base, enum.Enum):
        values = [member.value for member in base]
        return {"choices": values, "default": getattr(default, "value", default)}
    if base is float:
        return {"type": _number_parser(name), "metavar": "N"}
    if base is int:
        return {"type": int, "metavar": "N"}
    return {"type": str}


def _unwrap_optional(kind: Any) -> Any:
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        rest = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else str
    return kind


def _number_parser(name: str) -> Any:
    unit = " of seconds" if name.endswith("_s") or "timeout" in name else ""

    def parse(text: str) -> float:
        try:
            return float(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"not a number{unit}: {text!r}") from exc

    parse.__name__ = "number"
    return parse


def _quiet(options: dict[str, Any]) -> dict[str, Any]:
    """An alias's options: same destination and parsing, no default of its own, no help."""
    kept = {k: v for k, v in options.items() if k not in ("default", "help")}
    return {**kept, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}


class _DeprecatedFlag(argparse.Action):
    """An old flag name: stores like the new one and says, once, to use the new one."""

    def __init__(self, *args: Any, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"{parser.prog}: warning: {option_string} is deprecated and goes in the next "
            f"release; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def _suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """' (did you mean --workers?)' for an unrecognized flag, else ''."""
    words = [w.split("=", 1)[0] for w in message.replace(",", " ").split() if w.startswith("--")]
    known, shown = _option_strings(parser)
    for word in words:
        if word in known:
            continue
        close = difflib.get_close_matches(word, sorted(shown), n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]}?)"
    return ""


def _option_strings(parser: argparse.ArgumentParser) -> tuple[set[str], set[str]]:
    """Every long flag of parser and its subcommands, and those of them its help shows."""
    known: set[str] = set()
    shown: set[str] = set()
    for action in parser._actions:
        flags = {s for s in action.option_strings if s.startswith("--")}
        known |= flags
        if action.help is not argparse.SUPPRESS:
            shown |= flags
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                more_known, more_shown = _option_strings(sub)
                known, shown = known | more_known, shown | more_shown
    return known, shown
