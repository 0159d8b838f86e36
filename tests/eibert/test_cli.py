"""The root command line: every part's subcommands assembled, both entry points, and the admin verbs
(`eibert rollout`, `eibert keygen`) end to end against a real cloud over HTTP."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from eibert.cli import main
from service.common.signing import private_key_from_pem, public_key_to_b64
from tests.simulators.conftest import ADMIN_TOKEN, Cloud

SUBCOMMANDS = ["build", "eval", "edge", "cloud", "publish", "rollout", "keygen", "simulate", "sim", "demo", "bench"]


@pytest.mark.parametrize("entry", [[sys.executable, "-m", "eibert"], [str(Path(sys.executable).parent / "eibert")]])
def test_help_lists_every_subcommand(entry: list[str]) -> None:
    proc = subprocess.run([*entry, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert f"    {name} " in proc.stdout


def test_building_the_parser_loads_no_heavy_stack() -> None:
    """`eibert --help` must not import torch, onnxruntime or the web stack (each part imports them lazily)."""
    code = "import sys, eibert.cli; eibert.cli.build_parser(); print(sorted(m for m in ('torch', 'onnxruntime', "
    code += "'fastapi', 'transformers') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_simulate_without_a_cloud_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv("EIBERT_SIM_CLOUD", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["simulate"])
    assert exc.value.code == 2 and "--cloud" in capsys.readouterr().err


def test_edge_with_a_missing_bundle_is_one_clear_line(tmp_path: Path, capsys) -> None:
    assert main(["edge", "--bundle", str(tmp_path / "nope"), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


# -- keygen -----------------------------------------------------------------------------------------------------


def test_keygen_writes_a_private_pem_and_prints_the_pinned_key(tmp_path: Path, capsys) -> None:
    out = tmp_path / "keys" / "signing.pem"
    assert main(["keygen", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = private_key_from_pem(out.read_bytes())
    assert isinstance(key, Ed25519PrivateKey)
    assert printed["public_key"] == public_key_to_b64(key.public_key())
    assert len(base64.b64decode(printed["public_key"])) == 32


def test_keygen_never_replaces_an_existing_key(tmp_path: Path, capsys) -> None:
    out = tmp_path / "signing.pem"
    out.write_bytes(b"a key devices already pin")
    assert main(["keygen", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == b"a key devices already pin"


# -- rollout ----------------------------------------------------------------------------------------------------


def _run(argv: list[str], capsys) -> tuple[int, dict | None, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def test_rollout_show_set_and_rollback_end_to_end(
    cloud: Cloud, tiny_bundle: Path, variant_bundle: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("EIBERT_ADMIN_TOKEN", ADMIN_TOKEN)
    first, second = cloud.publish(tiny_bundle), cloud.publish(variant_bundle)
    at = ["--cloud", cloud.url]
    assert _run(["rollout", "show", *at], capsys)[1]["stable"] is None
    code, state, _ = _run(["rollout", "set", first, "100", *at], capsys)
    assert code == 0 and state["stable"] == first
    code, state, _ = _run(["rollout", "set", second, "10", *at], capsys)
    assert code == 0 and (state["stable"], state["candidate"], state["percent"]) == (first, second, 10)
    code, state, _ = _run(["rollout", "set", second, "100", *at], capsys)
    assert (state["stable"], state["candidate"], state["previous_stable"]) == (second, None, first)
    code, state, _ = _run(["rollout", "rollback", *at], capsys)
    assert code == 0 and state["stable"] == first
    assert _run(["rollout", "show", *at], capsys)[1] == state


def test_rollout_refusals_are_one_clear_line(cloud: Cloud, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("EIBERT_ADMIN_TOKEN", ADMIN_TOKEN)
    code, _, err = _run(["rollout", "set", "nope-1.0", "50", "--cloud", cloud.url], capsys)
    assert code == 1 and "404" in err and "not registered" in err and "Traceback" not in err
    code, _, err = _run(["rollout", "rollback", "--cloud", cloud.url], capsys)
    assert code == 1 and "409" in err and "nothing to roll back" in err
    monkeypatch.setenv("EIBERT_ADMIN_TOKEN", "wrong-token-but-long-enough-0123456789")
    code, _, err = _run(["rollout", "set", "nope-1.0", "50", "--cloud", cloud.url], capsys)
    assert code == 1 and "403" in err
    monkeypatch.delenv("EIBERT_ADMIN_TOKEN")
    code, _, err = _run(["rollout", "show", "--cloud", cloud.url], capsys)
    assert code == 1 and "EIBERT_ADMIN_TOKEN" in err
