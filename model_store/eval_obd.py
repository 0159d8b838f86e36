"""`eibert eval obd`: the edge's inverse-propensity estimator (`service.edge.position_bias.ipw_mean`) on real
logged bandit data with positions and propensities, against its authors' published figure.

Data: the Open Bandit Dataset (Saito, Aihara, Matsutani & Narita, "Open Bandit Dataset and Pipeline: Towards
Realistic and Reproducible Off-Policy Evaluation", NeurIPS 2021 Datasets and Benchmarks): ZOZOTOWN fashion
recommendations in three slots, logged by a Uniform Random and a Bernoulli Thompson Sampling (BTS) policy, with
each shown item's slot, click and propensity. The `obp` package ships a 10,000-row sample per policy and
campaign inside itself, so nothing is downloaded.

Published figure: the authors' quickstart (github.com/st-tech/zr-obp, `examples/quickstart/obd.ipynb`, run
with obp 0.5.4) evaluates BTS (ZOZOTOWN's production prior, `random_state=12345`, 100,000 Monte-Carlo draws of
its action distribution) off-policy from the Random policy's logs of campaign "all": IPW estimate 0.004553,
relative estimation error 0.084019 against BTS's on-policy value (the mean click of BTS's own logs). Here the
same action distribution comes from obp's own `BernoulliTS`, and the estimate from our `ipw_mean`.

Why this is not in `make venv`: obp 0.5.7 (the newest) declares Python < 3.11 and pins exact old versions
(torch 1.12, scikit-learn 1.1.3, scipy 1.9.3, Pillow 9.1.1 built from source), so `pip install obp` fails on
this project's Python 3.11 (pip falls back to 0.5.6 and 0.5.5, whose PyYAML 5.4.1 does not build either).
It does work installed without its pins, beside this project's venv:

    python3.11 -m venv /tmp/obp && echo "$PWD/.venv/lib/python3.11/site-packages" \\
        > /tmp/obp/lib/python3.11/site-packages/eibert.pth
    /tmp/obp/bin/pip install --no-deps --ignore-requires-python obp==0.5.7
    /tmp/obp/bin/pip install "pandas<3" scikit-learn seaborn    # pandas 3 refuses obp's drop(columns, axis)
    /tmp/obp/bin/python -m model_store.eval_obd                   # or: /tmp/obp/bin/eibert eval obd

Measured that way (obp 0.5.7, pandas 2.3, numpy 2.4): ours 0.004553 and relative error 0.084019, the published
figures to all six places (`tests/model_store/test_eval_obd.py` runs where obp is installed and skips elsewhere).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from service.edge.position_bias import ipw_mean

PUBLISHED_IPW = 0.004553  # examples/quickstart/obd.ipynb, obp 0.5.4
PUBLISHED_RELATIVE_EE = 0.084019
RANDOM_STATE = 12345
N_SIM = 100_000


def run_obd_check() -> dict[str, Any]:
    """Blocking (about a minute: 100,000 Monte-Carlo draws of BTS). Needs `obp` (see the module docstring)."""
    from obp.dataset import OpenBanditDataset
    from obp.ope import InverseProbabilityWeighting
    from obp.policy import BernoulliTS

    dataset = OpenBanditDataset(behavior_policy="random", campaign="all")  # the sample inside the package
    feedback = dataset.obtain_batch_bandit_feedback()
    policy = BernoulliTS(
        n_actions=dataset.n_actions,
        len_list=dataset.len_list,
        is_zozotown_prior=True,
        campaign="all",
        random_state=RANDOM_STATE,
    )
    action_dist = policy.compute_batch_action_dist(n_sim=N_SIM, n_rounds=feedback["n_rounds"])  # (n, actions, slots)
    rows = np.arange(feedback["n_rounds"])
    target = action_dist[rows, feedback["action"], feedback["position"]]
    ours = ipw_mean(feedback["reward"], feedback["pscore"], target)
    theirs = InverseProbabilityWeighting().estimate_policy_value(
        reward=feedback["reward"],
        action=feedback["action"],
        position=feedback["position"],
        pscore=feedback["pscore"],
        action_dist=action_dist,
    )
    truth = OpenBanditDataset.calc_on_policy_policy_value_estimate(behavior_policy="bts", campaign="all")
    return {
        "rows": int(feedback["n_rounds"]),
        "slots": int(dataset.len_list),
        "ipw": round(float(ours), 6),
        "obp_ipw": round(float(theirs), 6),
        "published_ipw": PUBLISHED_IPW,
        "bts_on_policy": round(float(truth), 6),
        "relative_ee": round(abs(float(truth) - ours) / float(truth), 6),
        "published_relative_ee": PUBLISHED_RELATIVE_EE,
    }


def main() -> int:
    sys.stdout.write(json.dumps(run_obd_check()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
