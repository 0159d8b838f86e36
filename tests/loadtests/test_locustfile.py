"""The locustfile loads under locust itself (in a subprocess: importing locust monkey-patches the importer)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_locustfile_defines_the_edge_and_cloud_users() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert {"EdgeUser", "CloudDeviceUser"} <= {line.strip() for line in out.stdout.splitlines()}


def test_locustfile_never_imports_torch() -> None:
    code = (
        "import sys, runpy; runpy.run_path('loadtests/locustfile.py');"
        "bad = {'torch', 'transformers', 'model_store.encoders'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
