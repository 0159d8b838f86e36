"""`python -m loadtests.edge_image` runs exactly the RUN lines of service/Dockerfile's venv-edge stage."""

from __future__ import annotations

from loadtests.edge_image import DOCKERFILE, stage_runs


def test_it_reads_the_venv_edge_stage_of_the_dockerfile() -> None:
    runs = stage_runs(DOCKERFILE.read_text())
    assert any('install ".[edge]"' in r and "strip --strip-unneeded" in r for r in runs), runs
    assert not any('".[cloud]"' in r or "edge,cloud,load" in r for r in runs)  # no other stage's lines


def test_a_line_added_to_the_stage_is_run_too() -> None:
    text = DOCKERFILE.read_text().replace("FROM runtime AS edge", "RUN echo extra\n\nFROM runtime AS edge", 1)
    assert stage_runs(text)[-1] == "echo extra"
