"""`modelyard check data` and `modelyard check splits`: output and exit codes for CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from modelyard.cli import main


@pytest.fixture
def clean_csv(tmp_path: Path) -> Path:
    path = tmp_path / "users.csv"
    pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "age": [20, 31, 31, 45, 52, 60],
            "plan": ["basic", "pro", "basic", "pro", "basic", "basic"],
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "batch.csv"
    path.write_text("id,age,plan\n1,20,basic\n1,abc,gold\n3,31,\n")
    return path


def _infer(data: Path, contract: Path) -> None:
    assert main(["check", "data", str(data), "--contract", str(contract), "--infer"]) == 0


def test_infer_writes_a_reviewable_contract(
    clean_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = tmp_path / "contracts" / "users.toml"
    _infer(clean_csv, contract)
    err = capsys.readouterr().err
    assert f"wrote {contract} (3 columns, 6 rows)" in err
    text = contract.read_text()
    assert 'name = "users"' in text
    assert '[columns.plan]\ndtype = "string"\nnullable = false\ncategories = ["basic", "pro"]' in (
        text
    )


def test_infer_without_contract_prints_toml(
    clean_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "data", str(clean_csv), "--infer"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# modelyard data contract")
    assert "[columns.age]" in out


def test_infer_refuses_to_overwrite_without_force(
    clean_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = tmp_path / "c.toml"
    _infer(clean_csv, contract)
    code = main(["check", "data", str(clean_csv), "-c", str(contract), "--infer"])
    assert code == 5
    assert "already exists" in capsys.readouterr().err
    assert main(["check", "data", str(clean_csv), "-c", str(contract), "--infer", "--force"]) == 0


def test_clean_data_passes(
    clean_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = tmp_path / "c.toml"
    _infer(clean_csv, contract)
    capsys.readouterr()
    assert main(["check", "data", str(clean_csv), "--contract", str(contract)]) == 0
    assert capsys.readouterr().out.strip() == f"{clean_csv}: passed (6 rows, 3 columns)"


def test_bad_data_reports_everything_and_exits_3(
    clean_csv: Path, bad_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = tmp_path / "c.toml"
    _infer(clean_csv, contract)
    capsys.readouterr()
    code = main(["check", "data", str(bad_csv), "--contract", str(contract)])
    out, err = capsys.readouterr()
    assert code == 3
    assert f"{bad_csv}: 4 violation(s) in 3 column(s) (3 rows checked)" in out
    assert "[unique] column 'id': 1 duplicate value(s)" in out
    assert "[dtype] column 'age': expected dtype int, got string" in out
    assert "row 1: 'abc'" in out
    assert "[nullable] column 'plan'" in out
    assert (
        "[categories] column 'plan': 1 value(s) outside the allowed categories (unknown: gold)"
        in (out)
    )
    assert "failed: 4 violation(s)" in err
    assert "hint:" in err


def test_json_report(
    clean_csv: Path, bad_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = tmp_path / "c.toml"
    _infer(clean_csv, contract)
    capsys.readouterr()
    code = main(["check", "data", str(bad_csv), "-c", str(contract), "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code == 3
    assert body["ok"] is False
    assert body["violation_count"] == 4
    assert {v["rule"] for v in body["violations"]} == {"unique", "dtype", "nullable", "categories"}


def test_extra_columns_flag(
    clean_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = tmp_path / "c.toml"
    _infer(clean_csv, contract)
    wide = tmp_path / "wide.parquet"
    pd.read_csv(clean_csv).assign(extra=1.0).to_parquet(wide)
    assert main(["check", "data", str(wide), "-c", str(contract)]) == 3
    assert "[unexpected_column] column 'extra'" in capsys.readouterr().out
    assert main(["check", "data", str(wide), "-c", str(contract), "--allow-extra"]) == 0


def test_malformed_contract_exits_2_naming_file_and_key(
    clean_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = tmp_path / "c.toml"
    contract.write_text('[columns.id]\ndtype = "int"\nmaxx = 3\n')
    assert main(["check", "data", str(clean_csv), "-c", str(contract)]) == 2
    err = capsys.readouterr().err
    assert f"error: {contract} (line 3): unknown key 'maxx' in column 'id'" in err


def test_missing_inputs(
    clean_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "data", str(clean_csv)]) == 2
    assert "--infer" in capsys.readouterr().err
    assert main(["check", "data", str(tmp_path / "nope.csv"), "--infer"]) == 2
    assert "does not exist" in capsys.readouterr().err
    odd = tmp_path / "data.xlsx"
    odd.write_text("x")
    assert main(["check", "data", str(odd), "--infer"]) == 2
    assert "unsupported extension '.xlsx'" in capsys.readouterr().err


def test_check_splits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    pd.DataFrame(
        {"id": [1, 2, 3, 4], "y": [0, 1, 0, 1], "ts": ["2024-01-01", "2024-01-02"] * 2}
    ).to_csv(train, index=False)
    pd.DataFrame({"id": [5, 6], "y": [0, 1], "ts": ["2024-02-01", "2024-02-02"]}).to_csv(
        test, index=False
    )
    args = ["check", "splits", str(train), str(test), "--id", "id", "--label", "y", "--time", "ts"]
    assert main(args) == 0
    assert "passed" in capsys.readouterr().out
    pd.DataFrame({"id": [4, 6], "y": [1, 1], "ts": ["2024-01-02", "2024-02-02"]}).to_csv(
        test, index=False
    )
    assert main([*args, "--json"]) == 3
    body = json.loads(capsys.readouterr().out)
    assert [v["rule"] for v in body["violations"]] == ["id_overlap", "label_balance", "time_order"]


def test_check_splits_needs_a_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    assert main(["check", "splits", str(path), str(path)]) == 2
    assert "no split check asked for" in capsys.readouterr().err


def test_real_process_exit_code(clean_csv: Path, bad_csv: Path, tmp_path: Path) -> None:
    contract = tmp_path / "c.toml"
    _infer(clean_csv, contract)
    proc = subprocess.run(
        [sys.executable, "-m", "modelyard.cli", "check", "data", str(bad_csv), "-c", str(contract)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "4 violation(s)" in proc.stdout


def test_terminal_gets_a_table(clean_csv: Path, bad_csv: Path, tmp_path: Path) -> None:
    import os
    import pty

    contract = tmp_path / "c.toml"
    _infer(clean_csv, contract)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelyard.cli",
                "check",
                "data",
                str(bad_csv),
                "-c",
                str(contract),
            ],
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": "160", "TERM": "xterm"},
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=120) == 3
    finally:
        os.close(leader)
    import re

    screen = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode("utf-8", "replace"))
    assert "4 violation(s) in 3 column(s)" in screen
    header = next(line for line in screen.splitlines() if "problem" in line)
    assert header.split()[:4] == ["┃", "column", "┃", "rule"]  # a rich table, not plain lines
    assert "[categories]" not in screen


def test_csv_dates_are_checked_as_datetimes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, later, broken = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    good.write_text("id,ts\n1,2024-01-01\n2,2024-01-02T10:30:00\n3,\n")
    later.write_text("id,ts\n1,2024-01-01\n2,2024-03-01\n")
    broken.write_text("id,ts\n1,2024-01-01\n2,yesterday\n")
    contract = tmp_path / "c.toml"
    _infer(good, contract)
    assert 'dtype = "datetime"\nnullable = true\nmin = 2024-01-01T00:00:00\n' in (
        contract.read_text()
    )
    capsys.readouterr()
    assert main(["check", "data", str(later), "-c", str(contract)]) == 3
    assert "[max] column 'ts': 1 value(s) above max = 2024-01-02 10:30:00" in (
        capsys.readouterr().out
    )
    assert main(["check", "data", str(broken), "-c", str(contract)]) == 3
    out = capsys.readouterr().out
    assert "expected dtype datetime, got string (str); 1 value(s) do not parse as datetime" in out
    assert "row 1: 'yesterday'" in out
