"""How much a second thread buys the build's teacher scoring: the teacher-glue stage at 1 and 2 torch threads.

`python -m model_store.teacher_threads_bench --glue-data ../shared/data/glue --limit 1500` prints one JSON line
(wall and process CPU seconds per thread count, and the GLUE mean each got). Both runs are in one process on the
same rows, so the ratio holds on a noisy machine where absolute seconds do not. It backs the build's choice of
`max(workers, distill.threads)` threads for the teacher's scores (`build_evaluation.Evaluator.teacher_threads`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from model_store.eval_glue import evaluate_glue
from model_store.teacher import TeacherEncoder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--glue-data", required=True, help="GLUE directory (the shared data's layout)")
    ap.add_argument("--limit", type=int, default=1500, help="rows per task split")
    args = ap.parse_args(argv)
    out: dict[str, dict[str, float]] = {}
    for threads in (1, 2):
        enc = TeacherEncoder(threads=threads)
        cpu0, t0 = time.process_time(), time.perf_counter()
        scores = evaluate_glue(enc, Path(args.glue_data), limit=args.limit)
        out[f"threads_{threads}"] = {
            "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(time.process_time() - cpu0, 1),
            "glue_mean": scores.mean,
        }
    out["speedup"] = round(out["threads_1"]["wall_s"] / out["threads_2"]["wall_s"], 2)
    print(json.dumps({"limit": args.limit, **out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
