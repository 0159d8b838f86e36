"""The README's CLI table and the real parsers agree: every flag any `eibert` command takes (what its `--help`
lists) appears in that command's row, and `eibert edge --help` names the enrolment token's variable.

The commands are walked from `eibert.cli.build_parser()` itself, so a new command or flag without a README row
fails here, and so does a row that names a flag the command does not take.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from eibert.cli import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command words, parser) of every leaf command."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from commands(child, (*path, name))


def flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}


def table_rows(readme: str) -> dict[str, str]:
    """First cell of each CLI table row, keyed by its command words (`eibert rollout show|set ...` -> `rollout`)."""
    rows = {}
    for line in re.findall(r"^\| `eibert .*$", readme, flags=re.M):
        cell = re.split(r"(?<!\\)\|", line)[1].strip(" `")  # the first cell (`\|` inside it is an escaped bar)
        words = [w for w in cell.split()[1:] if re.fullmatch(r"[a-z][a-z-]*", w)]
        rows[" ".join(words[:2]) if words[:1] == ["eval"] else words[0]] = cell
    return rows


def problems(readme: str) -> list[str]:
    rows = table_rows(readme)
    out = []
    for path, parser in commands(build_parser()):
        key = " ".join(path[:2]) if path[0] == "eval" else path[0]
        row = rows.get(key)
        if row is None:
            out.append(f"eibert {' '.join(path)}: no row in the README's CLI table")
            continue
        shown = set(re.findall(r"--[a-z0-9][a-z0-9-]*", row))
        out += [f"eibert {' '.join(path)}: {f} is missing from its README row" for f in sorted(flags(parser) - shown)]
    for key, row in rows.items():
        parsers = [
            p for path, p in commands(build_parser()) if (" ".join(path[:2]) if path[0] == "eval" else path[0]) == key
        ]
        taken = set().union(*(flags(p) for p in parsers)) if parsers else set()
        out += [
            f"README row of eibert {key} names {f}, which it does not take"
            for f in sorted(set(re.findall(r"--[a-z0-9][a-z0-9-]*", row)) - taken)
        ]
    return out


def test_every_flag_of_every_command_is_in_the_readme_table() -> None:
    assert problems(README) == []


@pytest.mark.parametrize(("old", "new"), [("[--cache-size N] ", ""), ("[--dev]", "[--dev] [--no-such-flag]")])
def test_a_missing_or_invented_flag_is_found(old: str, new: str) -> None:
    assert old in README
    assert problems(README.replace(old, new, 1))


def test_edge_help_names_the_enrolment_token_and_state() -> None:
    edge = dict(commands(build_parser()))[("edge",)]
    text = edge.format_help()
    assert "EIBERT_EDGE_ENROLMENT_TOKEN" in text and "--enrolment-token-file" in text and "--state-dir" in text
