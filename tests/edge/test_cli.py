"""`eibert edge` for real: a uvicorn server in a subprocess, and the edge path's import hygiene."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.common.errors import BundleError
from service.devstack.processes import ServerProcess, free_port, http_ok
from service.edge.cli import add_edge_arguments, cmd_edge, settings_from_args

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 60.0


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--cloud")
    p.add_argument("--port", type=int, default=8080)
    add_edge_arguments(p)
    return p.parse_args(list(argv))


def test_flags_become_settings(tmp_path: Path) -> None:
    s = settings_from_args(
        _args("--bundle", str(tmp_path), "--port", "9001", "--threads", "2", "--no-batching", "--cache-size", "0")
    )
    assert (s.port, s.threads, s.batching, s.cache_size, s.bundle) == (9001, 2, False, 0, tmp_path)
    assert settings_from_args(_args("--bundle", str(tmp_path))).batching is False  # opt-in (issue 14)
    assert settings_from_args(_args("--bundle", str(tmp_path), "--batching")).batching is True
    with pytest.raises(SystemExit):
        _args("--bundle", str(tmp_path), "--batching", "--no-batching")
    with pytest.raises(ValueError, match="invalid edge settings: cloud updates need the cloud's pinned public key"):
        settings_from_args(_args("--bundle", str(tmp_path), "--cloud", "http://c"))  # no pinned key


def test_a_bad_bundle_is_an_error_before_serving(tiny_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    (bad / "tokenizer.json").write_text("{}")
    with pytest.raises(BundleError, match=r"tokenizer\.json"):
        cmd_edge(_args("--bundle", str(bad), "--port", str(free_port())))


def test_serves_over_http_and_never_imports_torch(tiny_bundle: Path, tmp_path: Path) -> None:
    """The standalone entry point serves; the edge process never loads torch, transformers or model_store."""
    port, state = free_port(), tmp_path / "state"
    probe = (
        "import sys, threading, service.edge.cli as c\n"
        "def report():\n"
        "    import time; time.sleep(0.5)\n"
        "    bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'model_store'))\n"
        "    print('FORBIDDEN', bad, flush=True)\n"
        "threading.Thread(target=report, daemon=True).start()\n"
        f"sys.exit(c.main(['--bundle', {str(tiny_bundle)!r}, '--port', '{port}', '--state-dir', {str(state)!r}]))\n"
    )
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "edge.log"
    server = ServerProcess("edge", [sys.executable, "-c", probe], probe=http_ok(f"{base}/readyz"), log_path=log_path)
    server.start()
    try:
        server.wait_ready(STARTUP_S)  # a bounded wait for startup (model load + warm-up), not a timing assertion
        r = httpx.post(f"{base}/v1/encode", json={"texts": ["hello world"]}, timeout=10)
        assert r.status_code == 200 and r.json()["model_version"] == "tiny-0.0.1"
        r = httpx.post(f"{base}/v1/rank", json={"candidates": [{"id": "a", "text": "b"}], "top_k": 3}, timeout=10)
        assert r.status_code == 200 and r.json()["items"] == [{"id": "a", "score": 0.0}]
        assert "eibert_edge_request_seconds_bucket" in httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        returncode = server.stop()
    out = log_path.read_text()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: exit by SIGTERM, not a crash.
    assert returncode in (0, -15) and "Application shutdown complete" in out, out
    forbidden = [line for line in out.splitlines() if line.startswith("FORBIDDEN")]
    assert forbidden == ["FORBIDDEN []"], out


def test_standalone_entry_reports_a_bad_bundle_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "service.edge.cli", "--bundle", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "no manifest.json" in proc.stderr and "Traceback" not in proc.stderr
