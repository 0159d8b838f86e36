"""service/Dockerfile read as stages, so that a check can look at what one image (one `--target`) is made of.

An image is its target stage, the stages it is built FROM (their files end up in it), and the build stages it
copies from (`COPY --from=...`: only what is copied lands in it, but their RUN lines decide what that is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "service" / "Dockerfile"
TARGETS = ("edge", "cloud", "tools")  # one per image of the compose stack


@dataclass(frozen=True)
class Stage:
    name: str
    base: str  # what FROM names: an image or an earlier stage
    lines: tuple[str, ...]  # the instructions, comments dropped, continuation lines joined

    def copies_from(self) -> list[str]:
        return [m for line in self.lines for m in re.findall(r"^COPY\s+(?:--\S+\s+)*?--from=(\S+)", line)]


def instructions(text: str) -> list[str]:
    """The Dockerfile's instructions, without comments (which may well say "no torch"), one per line."""
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    return [ln.strip() for ln in joined.splitlines() if ln.strip()]


def stages(text: str) -> dict[str, Stage]:
    out: dict[str, Stage] = {}
    name, base, lines = "", "", []  # instructions before the first FROM (global ARGs) belong to no stage
    for line in [*instructions(text), "FROM end AS end"]:
        m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?$", line, re.I)
        if m:
            if name:
                out[name] = Stage(name, base, tuple(lines))
            name, base, lines = (m.group(2) or f"stage-{len(out)}"), m.group(1), []
        else:
            lines.append(line)
    return out


def image_stages(all_stages: dict[str, Stage], target: str) -> list[Stage]:
    """The target and the stages it is built FROM: the files of these are in the image."""
    out = [all_stages[target]]
    while out[-1].base in all_stages:
        out.append(all_stages[out[-1].base])
    return out


def build_stages(all_stages: dict[str, Stage], target: str) -> list[Stage]:
    """Every stage the target needs: its image stages, the stages they copy from, and theirs, recursively."""
    seen: dict[str, Stage] = {}
    todo = [target]
    while todo:
        name = todo.pop()
        if name in seen or name not in all_stages:
            continue
        seen[name] = all_stages[name]
        todo += [all_stages[name].base, *all_stages[name].copies_from()]
    return list(seen.values())


def target_text(all_stages: dict[str, Stage], target: str) -> str:
    """The instructions of every stage `target` needs, as one text."""
    return "\n".join(line for stage in build_stages(all_stages, target) for line in stage.lines)


def pip_extras(text: str) -> set[str]:
    """The extras of every `pip install .[...]` in `text`."""
    extras: set[str] = set()
    for group in re.findall(r"\binstall [^\n]*?\"?\.\[([a-z,]+)\]", text):
        extras.update(group.split(","))
    return extras


def default_command(all_stages: dict[str, Stage], target: str) -> list[str]:
    """The CMD of the image (the last one along its FROM chain wins)."""
    import json

    for stage in image_stages(all_stages, target):
        for line in reversed(stage.lines):
            if line.startswith("CMD "):
                return json.loads(line.removeprefix("CMD "))
    raise AssertionError(f"{target} has no CMD")
