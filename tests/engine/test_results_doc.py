"""docs/RESULTS.md: its tables are what the scripts print from the committed result files."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
from refresh_results import refreshed  # noqa: E402

TWO_TABLES = """\
print("| a | b |")
print("|---|---|")
print("| 1 | 2 |")
print("text between")
print("| c |")
print("|---|")
print("| 3 |")
"""


def test_a_marked_table_is_replaced_by_the_table_its_command_prints(tmp_path):
    script = tmp_path / "tables.py"
    script.write_text(TWO_TABLES)
    doc = ["# Title", f"<!-- table: {script} #2 -->", "| old |", "|---|", "| 9 |", "", "end"]
    assert refreshed(doc) == ["# Title", doc[1], "| c |", "|---|", "| 3 |", "", "end"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["<!-- table: {script} #3 -->", "| old |"], "prints 2 tables, not #3"),
        (["<!-- table: {script} -->", "", "| old |"], "no table right under the marker on line 1"),
    ],
)
def test_a_marker_without_its_table_is_refused(tmp_path, lines, message):
    script = tmp_path / "tables.py"
    script.write_text(TWO_TABLES)
    with pytest.raises(SystemExit, match=message):
        refreshed([line.format(script=script) for line in lines])


def test_results_tables_match_the_committed_result_files():
    done = subprocess.run(
        [sys.executable, "scripts/refresh_results.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr + "\n(run scripts/refresh_results.py)"
