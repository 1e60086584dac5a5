from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kakeya_evidence.cli import build_parser, main


def test_every_subcommand_is_registered():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    assert {"run", "host-check", "prewarm", "suite", "report", "publish", "annotate"} <= set(
        commands
    )


def test_a_bad_timeout_exits_2_with_a_message_and_a_report(tmp_path: Path, capsys):
    out = tmp_path / "ev"
    assert main(["run", "--output", str(out), "--test-timeout", "-5"]) == 2
    assert "test_timeout" in capsys.readouterr().err
    assert (out / "report.html").is_file() and (out / "evidence.json").is_file()


def test_a_timeout_that_is_not_a_number_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", "--test-timeout", "soon"])
    assert caught.value.code == 2
    assert "not a number of seconds" in capsys.readouterr().err


def test_an_unwritable_output_dir_is_refused_before_any_work(tmp_path: Path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["run", "--output", str(blocker / "ev"), "--tests", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err
    assert not (tmp_path / "file" / "ev").exists()


def test_report_subcommand_renders_from_stage_files(tmp_path: Path):
    assert main(["report", "--output", str(tmp_path)]) == 2  # no stages ran: an error verdict
    assert (tmp_path / "report.html").is_file()
    assert (tmp_path / "summary.md").is_file()


def test_an_abbreviated_flag_is_refused_naming_the_flag_meant(tmp_path: Path, capsys):
    """`--worker 2` once ran a full pipeline over evidence/; now it is a usage error."""
    with pytest.raises(SystemExit) as caught:
        main(["run", "--output", str(tmp_path / "ev"), "--worker", "2"])
    assert caught.value.code == 2
    assert "--workers" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()


def test_every_stage_option_is_a_flag_of_run():
    """Notebook 00's requirements included: each field of each piece has its flag."""
    from inference_engine.cli_args import config_fields, flag_name
    from kakeya_evidence.config import LOCATION_FIELDS, RunConfig

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    flags = {s for action in run._actions for s in action.option_strings}
    wanted = {flag_name(f) for f, _ in config_fields(RunConfig)}
    assert {"--min-memory-gb", "--min-free-disk-gb", "--max-suite-s"} <= wanted <= flags
    # only where a notebook writes and starts pytest is the runner's to set
    pieces = [(name, getattr(RunConfig(), name)) for name in ("host", "cache", "suite", "report")]
    pieces.append(("gates", RunConfig().report.gates))
    for name, piece in pieces:
        hidden = {f.name for f in dataclasses.fields(piece) if not f.metadata.get("cli", True)}
        assert hidden <= set(LOCATION_FIELDS.get(name, ())), name


def test_renamed_flags_still_work_for_one_release(tmp_path: Path, capsys):
    out = tmp_path / "ev"
    assert main(["run", "--output", str(out), "--test-timeout", "-5", "--load-time"]) == 2
    err = capsys.readouterr().err
    assert "--test-timeout is deprecated" in err and "use --test-timeout-s" in err
    assert "--load-time is deprecated" in err
