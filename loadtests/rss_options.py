"""`python -m loadtests.rss_options`: what onnxruntime's session options do to the resident memory a model adds.

The edge's target is <= 8 MB added by the first model load; this shows what the last megabytes are. Each option set
runs in a fresh interpreter that has already imported numpy, onnxruntime, tokenizers and the edge runtime (their
import cost is not the model's). The probe creates the session, runs three one-text encodes and trims the heap, and
reports VmRSS, split into RssAnon (the private heap) and RssFile (library code faulted in: file-backed, shared with
every process that maps the same libraries, and reclaimable). The probe builds its own session, not `OnnxEncoder`,
because the encoder fixes the options this script varies.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from model_store.shipped import SHIPPED_BUNDLE
from service.devstack.processes import ROOT

# name -> SessionOptions changes (attributes, or config entries named with a dot)
OPTION_SETS: dict[str, dict[str, object]] = {
    "as served (ORT_ENABLE_ALL, arena on)": {},
    "CPU arena off": {"enable_cpu_mem_arena": False},
    "arena and memory pattern off": {"enable_cpu_mem_arena": False, "enable_mem_pattern": False},
    "... and weight pre-packing off": {
        "enable_cpu_mem_arena": False, "enable_mem_pattern": False, "session.disable_prepacking": "1",
    },
    "... and graph optimisation basic": {
        "enable_cpu_mem_arena": False, "enable_mem_pattern": False, "graph_optimization_level": "ORT_ENABLE_BASIC",
    },
    "... and graph optimisation off": {
        "enable_cpu_mem_arena": False, "enable_mem_pattern": False, "graph_optimization_level": "ORT_DISABLE_ALL",
    },
}  # fmt: skip

_PROBE = """
import json, sys
import numpy as np, onnxruntime as ort
from pathlib import Path
from service.edge.encoder import load_tokenizer
from service.edge.slot import release_freed_heap
def mem():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out
bundle, changes = Path(sys.argv[1]), json.loads(sys.argv[2])
tok = load_tokenizer(bundle / "tokenizer.json", 128)
release_freed_heap()
m0 = mem()
opts = ort.SessionOptions()
opts.intra_op_num_threads = opts.inter_op_num_threads = 1
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
for key, value in changes.items():
    if "." in key:
        opts.add_session_config_entry(key, value)
    elif key == "graph_optimization_level":
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, value)
    else:
        setattr(opts, key, value)
sess = ort.InferenceSession(str(bundle / "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"])
enc = tok.encode_batch(["a man is playing the guitar on stage"])
feed = {"input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64)}
for _ in range(3):
    sess.run(None, feed)
release_freed_heap()
m1 = mem()
print(json.dumps({k: round(m1[k] - m0[k], 1) for k in m0}))
"""


def measure(bundle: Path, changes: dict[str, object]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(bundle), json.dumps(changes)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtests.rss_options", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", type=Path, default=SHIPPED_BUNDLE)
    args = p.parse_args(argv)
    print(f"MB added by the first session of {args.bundle.name} (total = private heap + library code)")
    for name, changes in OPTION_SETS.items():
        m = measure(args.bundle, changes)
        print(f"  {name:40s} {m['VmRSS']:5.1f} = {m['RssAnon']:4.1f} + {m['RssFile']:4.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
