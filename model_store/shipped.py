"""The bundles this repository ships, named once.

Every Python caller (the bench, `make load`, `eibert simulate`, the demo) takes its default bundle from here.
Files Python does not read (`docker-compose.yml`, `service/Dockerfile`) name the same directory, and
`tests/test_compose.py` fails when they drift from `SHIPPED_BUNDLE`. The pipeline writes new versions with
`eibert build --out model_store/bundles/<name>`; shipping one means changing `SHIPPED_NAME` here.
"""

from __future__ import annotations

from pathlib import Path

BUNDLES_DIR = Path(__file__).resolve().parent / "bundles"
SHIPPED_NAME = "eibert-0.4.0"  # the best bundle within the 1.91 MB budget: what everything serves unless told
SHIPPED_BUNDLE = BUNDLES_DIR / SHIPPED_NAME
# The demo's starting version: it rolls the shipped bundle out over this one, so a rollout changes real weights.
PREVIOUS_BUNDLE = BUNDLES_DIR / "eibert-0.1.0"
