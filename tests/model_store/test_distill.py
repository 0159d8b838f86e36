from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from model_store.build_config import DistillConfig, StudentConfig
from model_store.distill import (
    TrainData,
    cosent_loss,
    heldout_cosine,
    info_nce,
    length_batches,
    load_student,
    lr_at,
    pad,
    relational_loss,
    schedule_record,
    train,
)
from model_store.stage_cache import input_hash
from model_store.student import Student


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def test_cosent_prefers_cosines_ordered_like_scores() -> None:
    a = _unit(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
    scores = torch.tensor([4.0, 3.0, 2.0, 1.0])
    noise = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    good = _unit(a + torch.tensor([0.1, 0.5, 1.0, 3.0])[:, None] * noise)  # similarity falls with score
    bad = _unit(a + torch.tensor([3.0, 1.0, 0.5, 0.1])[:, None] * noise)
    assert cosent_loss(a, good, scores) < cosent_loss(a, bad, scores)


def test_cosent_ignores_ties_only_batches() -> None:
    a = _unit(torch.randn(3, 4))
    assert float(cosent_loss(a, a, torch.ones(3))) == 0.0  # log(1 + nothing)


def test_info_nce_is_low_for_matching_pairs() -> None:
    a = _unit(torch.randn(8, 16, generator=torch.Generator().manual_seed(0)))
    shuffled = a[torch.randperm(8, generator=torch.Generator().manual_seed(1))]
    assert info_nce(a, a) < info_nce(a, shuffled)


def test_length_batches_cover_every_item_once() -> None:
    lengths = [random.Random(i).randint(3, 40) for i in range(1000)]
    batches = length_batches(lengths, 32, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5  # batches group similar lengths


def test_lr_schedule_warms_up_then_decays() -> None:
    cfg = DistillConfig(steps=100, warmup=10, lr=1e-3)
    assert lr_at(0, cfg) < lr_at(9, cfg) == cfg.lr
    assert lr_at(99, cfg) < lr_at(50, cfg) < cfg.lr
    assert lr_at(99, cfg) >= 0.1 * cfg.lr


def _toy_data(n: int = 200, vocab: int = 40) -> TrainData:
    """Random token sequences whose teacher targets are a fixed random function of their tokens."""
    gen = torch.Generator().manual_seed(0)
    table = _unit(torch.randn(vocab, 384, generator=gen))
    rng = random.Random(0)
    ids = [np.array([rng.randrange(3, vocab) for _ in range(rng.randint(2, 8))], dtype=np.int64) for _ in range(n)]
    targets = _unit(torch.stack([table[torch.from_numpy(x)].mean(0) for x in ids]))
    return TrainData(
        ids=ids[:180], targets=targets[:180], heldout_ids=ids[180:], heldout_targets=targets[180:],
        sts=[], para=[], domain=list(range(40)),
    )  # fmt: skip


def test_catalogue_batches_train_the_catalogue_geometry(tmp_path) -> None:
    data = _toy_data()
    cfg = DistillConfig(
        steps=60, batch_size=32, warmup=5, lr=3e-3, labelled=False, interplay=False, threads=1,
        domain_batch=12, w_domain_rel=4.0, checkpoint_every=30,
    )  # fmt: skip
    student = Student(StudentConfig(embed_dim=16, hidden=16, heads=2, ffn=32, unique_layers=1, max_length=16), 40)
    history = train(student, data, cfg, tmp_path, desc="toy")
    logged = [h for h in history if "domain_rel" in h]
    assert len(logged) == 3  # every 20 steps
    assert logged[-1]["domain_rel"] < logged[0]["domain_rel"]
    with torch.no_grad():  # the in-batch cosine matrix of the catalogue texts moved toward the teacher's
        s = student(*pad([data.ids[i] for i in data.domain]))
    t = data.targets[data.domain]
    fresh = Student(student.cfg, 40).eval()
    with torch.no_grad():
        s0 = fresh(*pad([data.ids[i] for i in data.domain]))
    assert relational_loss(s, t) < relational_loss(s0, t)
    assert (tmp_path / "ckpt.pt").is_file()


def test_no_catalogue_batches_without_catalogue_texts(tmp_path) -> None:
    data = _toy_data()
    data.domain = []
    cfg = DistillConfig(steps=20, batch_size=16, warmup=2, labelled=False, interplay=False, threads=1, domain_batch=8)
    history = train(Student(StudentConfig(embed_dim=8, hidden=8, heads=2, ffn=16, unique_layers=1), 40), data, cfg,
                    tmp_path, desc="toy")  # fmt: skip
    assert all("domain_rel" not in h for h in history)


def _toy_student() -> Student:
    torch.manual_seed(0)
    return Student(StudentConfig(embed_dim=8, hidden=8, heads=2, ffn=16, unique_layers=1, max_length=16), 40)


def _stopping_cfg(**kw) -> DistillConfig:
    base = dict(steps=200, batch_size=16, warmup=2, labelled=False, interplay=False, threads=1, checkpoint_every=20)
    return DistillConfig(**(base | kw))


def test_early_stop_ends_training_and_keeps_the_best_weights(tmp_path) -> None:
    """A rise of 1.0 in the held-out cosine is impossible: after the first check sets the best, two checks
    without it stop the run at step 60 of 200, and the checkpoint (what the build loads) holds step 20's weights."""
    student = _toy_student()
    history = train(student, _toy_data(), _stopping_cfg(patience=2, min_delta=1.0), tmp_path, desc="toy")
    assert history[-1]["step"] == 59  # logged steps count from 0: 60 steps ran
    record = schedule_record(tmp_path / "ckpt.pt")
    assert record["steps_run"] == 60
    assert record["early_stop"] | {"best_heldout_cos": 0} == {
        "patience": 2, "min_delta": 1.0, "best_step": 20, "best_heldout_cos": 0, "checks_since_best": 2,
        "stopped_at": 60,
    }  # fmt: skip
    best = torch.load(tmp_path / "best.pt")
    kept = load_student(tmp_path / "ckpt.pt").state_dict()
    assert all(torch.equal(best[k], kept[k]) and torch.equal(best[k], student.state_dict()[k]) for k in best)
    # The kept weights are step 20's: the held-out cosine recorded there is what they score now.
    data = _toy_data()
    assert heldout_cosine(student, data) == pytest.approx(record["early_stop"]["best_heldout_cos"], abs=1e-5)
    # A resumed finished run trains no further.
    again = _toy_student()
    assert train(again, data, _stopping_cfg(patience=2, min_delta=1.0), tmp_path, desc="toy") == history
    assert schedule_record(tmp_path / "ckpt.pt")["steps_run"] == 60


def test_without_patience_every_step_runs(tmp_path) -> None:
    train(_toy_student(), _toy_data(), _stopping_cfg(steps=60), tmp_path, desc="toy")
    record = schedule_record(tmp_path / "ckpt.pt")
    assert record["steps_run"] == 60 and record["early_stop"]["stopped_at"] is None
    assert record["early_stop"]["best_heldout_cos"] is None  # JSON has no -inf: manifests must stay parseable
    assert not (tmp_path / "best.pt").exists()


def test_early_stop_is_out_of_old_configs_keys_and_dumps() -> None:
    """Configs without early stopping keep their stage-cache keys (their trained runs stay valid) and their dumps
    (the shipped bundles' manifests still equal their configs)."""
    assert input_hash(DistillConfig()) == "98dc1ef698dc7fea"  # the key before the fields existed
    assert "patience" not in DistillConfig().model_dump()
    on = DistillConfig(patience=3, min_delta=1e-3)
    assert input_hash(on) != input_hash(DistillConfig()) and on.model_dump()["patience"] == 3
