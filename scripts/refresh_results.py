"""Rebuild the tables of docs/RESULTS.md from the result files, in place.

Usage: python scripts/refresh_results.py [--check] [DOC.md]

A table is refreshed when the line before it is a marker naming the command that prints
it, ``<!-- table: scripts/baselines_table.py #3 -->``: the script runs with this Python
from the repository root, and its third printed table (default: the first) replaces the
one under the marker. ``--check`` changes nothing and exits with 1 when a table differs
from what its command prints now (a result file added without refreshing the document).
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- table: (?P<command>.+?)(?: #(?P<index>\d+))? -->$")


def printed_tables(output: str) -> list[list[str]]:
    """The markdown tables (runs of lines starting with ``|``) in a command's output."""
    tables: list[list[str]] = []
    previous_was_row = False
    for line in output.splitlines():
        row = line.startswith("|")
        if row and not previous_was_row:
            tables.append([])
        if row:
            tables[-1].append(line)
        previous_was_row = row
    return tables


def run_script(command: str) -> str:
    """The standard output of ``python <command>`` run in the repository root."""
    done = subprocess.run(
        [sys.executable, *shlex.split(command)], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"error: `{command}` failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def refreshed(lines: list[str]) -> list[str]:
    """``lines`` with the table under every marker replaced by its command's table."""
    outputs: dict[str, list[list[str]]] = {}
    result: list[str] = []
    position = 0
    while position < len(lines):
        line = lines[position]
        result.append(line)
        position += 1
        found = MARKER.match(line)
        if not found:
            continue
        command, index = found["command"], int(found["index"] or 1)
        if command not in outputs:
            outputs[command] = printed_tables(run_script(command))
        tables = outputs[command]
        if not 1 <= index <= len(tables):
            raise SystemExit(f"error: `{command}` prints {len(tables)} tables, not #{index}")
        if position >= len(lines) or not lines[position].startswith("|"):
            raise SystemExit(f"error: no table right under the marker on line {position}: {line}")
        while position < len(lines) and lines[position].startswith("|"):
            position += 1
        result.extend(tables[index - 1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("document", nargs="?", type=Path, default=ROOT / "docs" / "RESULTS.md")
    parser.add_argument("--check", action="store_true", help="report stale tables only")
    args = parser.parse_args()
    if not args.document.is_file():
        raise SystemExit(f"error: {args.document} is not a file")
    lines = args.document.read_text(encoding="utf-8").splitlines()
    new = refreshed(lines)
    if args.check:
        stale = new != lines
        print(f"{args.document}: {'tables are stale' if stale else 'tables are current'}")
        raise SystemExit(1 if stale else 0)
    args.document.write_text("\n".join(new) + "\n", encoding="utf-8")
    print(f"{args.document}: tables refreshed")


if __name__ == "__main__":
    main()
