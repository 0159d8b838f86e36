"""The build report's rendering: figures land under the column that names them."""

from __future__ import annotations

from model_store.report import _glue_section

TASKS = {"CoLA": 4.16, "SST-2": 75.57, "MRPC": 78.67, "RTE": 56.32}  # the protocol's order


def _table(lines: list[str]) -> dict[str, dict[str, str]]:
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| ")]
    header = rows[0]
    return {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in rows[1:]}


def test_a_cached_teachers_tasks_in_sorted_order_stay_under_their_columns() -> None:
    """The teacher's scores come back from the stage cache as JSON with sorted keys (CoLA, MRPC, RTE, SST-2); the
    student's come in the protocol's order. eibert-small-0.5.0's first report put the teacher's SST-2 under MRPC."""
    teacher = {"CoLA": 7.84, "MRPC": 78.50, "RTE": 58.84, "SST-2": 81.31}  # sorted, as read back from the cache
    metrics = {
        "glue": {
            "student": {"tasks": TASKS, "mean": 53.68},
            "teacher": {"tasks": teacher, "mean": 56.62},
            "task_retention": {k: TASKS[k] / teacher[k] for k in TASKS},
            "mean_retention": 0.948,
        },
        "glue_eval_data": "glue",
    }
    lines = _glue_section(metrics)
    assert [c.strip() for c in lines[2].strip("|").split("|")][1:-1] == list(TASKS)  # the protocol's order
    table = _table(lines)
    assert table["teacher"] == {"CoLA": "7.84", "SST-2": "81.31", "MRPC": "78.50", "RTE": "58.84", "mean": "56.62"}
    assert table["**shipped int8**"]["SST-2"] == "75.57"
    assert table["share of the teacher"]["SST-2"] == f"{100 * 75.57 / 81.31:.1f}%"


def test_a_manifests_sorted_tasks_render_in_the_protocols_order() -> None:
    """Re-rendering from a manifest (sorted keys) keeps the protocol's columns and each figure under its name."""
    student = dict(sorted(TASKS.items()))
    metrics = {
        "glue": {
            "student": {"tasks": student, "mean": 53.68},
            "teacher": {"tasks": student, "mean": 53.68},
            "task_retention": dict.fromkeys(student, 1.0),
            "mean_retention": 1.0,
        },
        "glue_eval_data": "glue",
    }
    lines = _glue_section(metrics)
    assert [c.strip() for c in lines[2].strip("|").split("|")][1:-1] == list(TASKS)
    assert _table(lines)["**shipped int8**"] == {k: f"{v:.2f}" for k, v in TASKS.items()} | {"mean": "**53.68**"}
