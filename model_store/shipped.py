"""The bundles this repository ships, named once.

Every Python caller (the bench, `make load`, `eibert simulate`, the demo) takes its default bundle from here.
Files Python does not read (`docker-compose.yml`, `service/Dockerfile`) name the same directory, and
`tests/test_compose.py` fails when they drift from `SHIPPED_BUNDLE`. The pipeline writes new versions with
`eibert build --out model_store/bundles/<name>`; shipping one means changing `SHIPPED_NAME` here.
"""

from __future__ import annotations

from pathlib import Path

BUNDLES_DIR = Path(__file__).resolve().parent / "bundles"
# eibert-0.4.0's encoder (the best within the 1.91 MB budget) plus the learned ranker: what everything serves
SHIPPED_NAME = "eibert-0.4.1"
SHIPPED_BUNDLE = BUNDLES_DIR / SHIPPED_NAME
# The demo's starting version: it rolls the shipped bundle out over this one. Same encoder, the content ranker:
# the rollout changes the ranker, and the A/B readout shows what that does to the fleet's click rate.
PREVIOUS_BUNDLE = BUNDLES_DIR / "eibert-0.4.0"
