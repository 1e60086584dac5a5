"""Command-line values as the docs write them, and messages that name what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from kakeya_evidence.cli import VALUE_OPTIONS, attach_values, build_parser, main


def test_pytest_args_may_start_with_a_dash_as_the_docs_write_it(tmp_path: Path, capsys):
    argv = ["run", "--pytest-args", "-x", "--output", str(tmp_path / "ev")]
    args = build_parser().parse_args(attach_values(argv, VALUE_OPTIONS))
    assert args.pytest_args == "-x"
    # reaches the runner (which then refuses the missing tests path), not argparse
    assert main([*argv, "--tests", str(tmp_path / "missing")]) == 2
    assert "tests path" in capsys.readouterr().err


def test_a_max_report_mb_that_is_not_a_number_says_megabytes(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--max-report-mb", "abc"])
    err = capsys.readouterr().err
    assert "not a number of megabytes: 'abc'" in err and "seconds" not in err


def test_report_on_an_unknown_output_folder_says_so_on_stderr(tmp_path: Path, capsys):
    missing = tmp_path / "nope"
    assert main(["report", "--output", str(missing)]) == 2
    assert f"no evidence in {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_report_on_an_empty_folder_says_so_and_still_writes_the_error_report(tmp_path, capsys):
    assert main(["report", "--output", str(tmp_path)]) == 2
    assert "no evidence in" in capsys.readouterr().err
    assert (tmp_path / "report.html").is_file()
