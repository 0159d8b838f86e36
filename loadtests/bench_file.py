"""BENCHMARKS.md as a set of replaceable sections: each benchmark (`eibert bench`'s teacher, model, edge and
cloud sections, `make load`'s load section) rewrites only the text between its own markers, so one can be
rerun without touching the figures the others measured.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

HEADER = (
    "# eibert benchmarks\n\nWritten by `make bench` (`eibert bench`); every section records the command and"
    " the machine that produced it. Do not edit by hand.\n"
)


def replace_section(doc: str, name: str, body: str) -> str:
    """Swap the text between `<!-- bench:name -->` markers, appending the section if it is new."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(doc):
        return pattern.sub(lambda _m: block, doc)
    return doc.rstrip() + "\n\n" + block + "\n"


def write_section(out: Path, name: str, body: str) -> None:
    doc = out.read_text() if out.exists() else HEADER
    out.write_text(replace_section(doc, name, body))


def command_line(args: argparse.Namespace) -> str:
    """The command a section was measured with, as the user typed it (`eibert/cli.py` sets `args.argv`)."""
    return ("eibert " + " ".join(shlex.quote(a) for a in args.argv)).strip()
