"""`python -m loadtests.edge_image`: the edge image's Python environment, built without Docker, and its size.

It runs the RUN lines of service/Dockerfile's `venv-edge` stage (read from the file, so the figures follow the
Dockerfile) against a temporary directory instead of /opt/eibert, with this machine's Python 3.11 and pip
configuration, then prints one JSON line: the environment's megabytes (`du -sm`, what `COPY --from=venv-edge`
adds to the base image) and the largest packages. The base image (`python:3.11-slim-bookworm`) is not measured
here: pull it and `docker image inspect` it, or read README "Image sizes". The stage's `apt-get` line (binutils,
for `strip`) is not run on this machine: its own `strip`, if it has one, is used, as the stage would use it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "service" / "Dockerfile"
STAGE = "venv-edge"
VENV = "/opt/eibert"


def stage_runs(text: str, stage: str = STAGE) -> list[str]:
    """The RUN commands of `stage`, continuation lines joined, comments dropped."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()
    runs, inside = [], False
    for line in joined:
        m = re.match(r"\s*FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            inside = m.group(1) == stage
        elif inside and line.strip().startswith("RUN "):
            runs.append(line.strip().removeprefix("RUN ").strip())
    return runs


def build(venv: Path, python: str) -> None:
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {**os.environ, "VENV_PIP": f"{sys.executable} -m pip --python {venv}/bin/python", "PIP_NO_CACHE_DIR": "1"}
    for run in stage_runs(DOCKERFILE.read_text()):
        if "apt-get" in run:
            continue
        subprocess.run(["bash", "-c", run.replace(VENV, str(venv))], cwd=ROOT, env=env, check=True)


def sizes(venv: Path, top: int) -> dict:
    site = next(venv.glob("lib/python3.*/site-packages"))
    mb = int(subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True, check=True).stdout.split()[0])
    out = subprocess.run(["du", "-sm", *map(str, site.iterdir())], capture_output=True, text=True, check=True)
    rows = sorted(((int(n), Path(p).name) for n, p in (ln.split("\t") for ln in out.stdout.splitlines())), reverse=True)
    pyc = sum(p.stat().st_size for p in site.rglob("*.pyc")) // (1024 * 1024)
    return {"venv_mb": mb, "pyc_mb": pyc, "largest_mb": {name: n for n, name in rows[:top]}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.edge_image", description=__doc__.splitlines()[0])
    p.add_argument("--python", default=shutil.which("python3.11") or sys.executable, help="a Python 3.11")
    p.add_argument("--top", type=int, default=12, help="how many of the largest packages to list")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eibert-edge-venv-") as tmp:
        venv = Path(tmp) / "eibert"
        build(venv, args.python)
        sys.stdout.write(json.dumps(sizes(venv, args.top)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
