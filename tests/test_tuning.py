"""Equal tuning budget, validation hold-out and best-epoch selection."""

import math
from dataclasses import replace

import pytest
import yaml
from transformers import set_seed

from peftbench.config import MethodConfig, ModelConfig, TaskConfig, TrainConfig, TuningConfig
from peftbench.validate import validate_suite_config
from peftbench.errors import ConfigError
from peftbench.io import read_json
from peftbench.models import load_model, load_tokenizer
from peftbench.run import hold_out, split_data
from peftbench.sweep.tuning import trial_points
from peftbench.tasks import TASKS
from peftbench.train import train_sft
from peftbench.train.data import encode_examples, epoch_batches
from peftbench.train.sft import validation_loss


def test_every_method_gets_the_same_number_of_trials():
    tuning = TuningConfig(trials=3, space={"lr": [1e-4, 1e-3, 1e-2]}, methods={"lora": {"r": [4, 8]}})
    lora, ia3 = MethodConfig(name="lora"), MethodConfig(name="ia3")
    lora_points, ia3_points = trial_points(tuning, lora), trial_points(tuning, ia3)
    assert len(lora_points) == len(ia3_points) == 3
    assert all(set(p) == {"lr", "r"} for p in lora_points) and all(set(p) == {"lr"} for p in ia3_points)
    assert trial_points(tuning, lora) == lora_points  # seeded: the same sample every time
    assert len({tuple(sorted(p.items())) for p in lora_points}) == 3  # distinct points of the 6-point grid

    with pytest.raises(ConfigError, match="tuning.space.*6 points but trials is 3"):
        trial_points(tuning.model_copy(update={"sampler": "grid"}), lora)
    with pytest.raises(ConfigError, match="fewer than trials=4"):
        trial_points(tuning.model_copy(update={"trials": 4}), ia3)


def _suite(tmp_path, **extra):
    raw = {
        "name": "tuned",
        "model": {"name": "tiny-random-llama", "device": "cpu"},
        "methods": [{"name": "lora", "target_modules": "all-linear"}, {"name": "ia3"}],
        "tasks": [{"name": "toy-sentiment-choice", "max_train": 64, "max_eval": 16, "validation_fraction": 0.25}],
        "seeds": [0, 1],
        "train": {"max_steps": 3, "batch_size": 8},
        "output_dir": str(tmp_path / "runs"),
        **extra,
    }
    return validate_suite_config(raw)


def test_tuning_needs_a_validation_split_and_valid_points(tmp_path):
    with pytest.raises(ConfigError, match=r"tasks\[0\].validation_fraction.*no validation split"):
        _suite(tmp_path, tasks=[{"name": "toy-sentiment"}], tuning={"trials": 1, "space": {"lr": [1e-3]}})
    with pytest.raises(ConfigError, match=r"tuning point \{'r': -1\}"):
        _suite(tmp_path, tuning={"trials": 1, "methods": {"lora": {"r": [-1]}, "ia3": {"lr": [1e-3]}}})


def test_a_tuned_sweep_picks_each_methods_best_validation_point(tmp_path):
    from peftbench.sweep import run_suite

    suite = _suite(tmp_path, tuning={"trials": 2, "space": {"lr": [1e-6, 5e-2]}})
    results = run_suite(suite, show_progress=False)
    record = read_json(tmp_path / "runs" / "tuned" / "tuning.json")
    assert [len(r["trials"]) for r in record] == [2, 2]  # the same budget for both methods
    trial_metrics = [read_json(p) for p in (tmp_path / "runs" / "tuned.trials").glob("*/metrics.json")]
    assert len(trial_metrics) == 4 and all(m["seed"] == 0 for m in trial_metrics)
    for choice in record:
        scores = [t["validation_score"] for t in choice["trials"]]
        assert choice["best_validation_score"] == max(scores)
        assert choice["best"] == choice["trials"][scores.index(max(scores))]["point"]
    finals = [r for r in results if r.get("method") not in (None, "base")]
    assert len(finals) == 4 and {r["seed"] for r in finals} == {0, 1}
    for final in finals:  # each final run trained at its method's chosen lr and was scored on test
        config = yaml.safe_load((tmp_path / "runs" / "tuned" / final["run_id"] / "config.yaml").read_text())
        chosen = next(c for c in record if final["method"].startswith(c["method"]))["best"]["lr"]
        assert math.isclose(config["train"]["lr"], chosen) and config["task"]["eval_split"] is None


def test_hold_out_is_seeded_disjoint_and_sized():
    examples = list(range(100))
    train, validation = hold_out(examples, 0.1, seed=3)
    assert len(validation) == 10 and len(train) == 90 and not set(train) & set(validation)
    assert hold_out(examples, 0.1, seed=3) == (train, validation) and hold_out(examples, 0.1, seed=4) != (train, validation)
    task = TASKS.get("toy-sentiment")
    data = split_data(task, TaskConfig(name="toy-sentiment", validation_fraction=0.25, eval_split="validation"))
    assert len(data["train"]) == 384 and data["eval"] == data["validation"] and len(data["validation"]) == 128


def test_select_best_keeps_the_epoch_with_the_lowest_validation_loss():
    cfg = ModelConfig(name="tiny-random-llama", device="cpu")
    tokenizer = load_tokenizer(cfg)
    train = TASKS.get("toy-sentiment").examples("train", 96)
    # a validation set the training makes worse (an answer it never teaches): the more the
    # model learns 'positive'/'negative', the less it expects ' banana', so the best epoch
    # is an early one and the final weights must be swapped back for it
    validation = [replace(e, answer=" banana") for e in TASKS.get("toy-sentiment").examples("test", 24)]
    set_seed(0)
    model = load_model(cfg)
    result = train_sft(model, tokenizer, train, TrainConfig(epochs=4, lr=1e-2, batch_size=24, select_best=True),
                       show_progress=False, validation=validation)
    losses = result.validation_losses
    assert len(losses) == 4 and result.best_epoch == losses.index(min(losses)) + 1
    assert result.best_epoch < 4, losses  # precondition: the restore is exercised
    held_out = encode_examples(tokenizer, validation, 512)
    assert math.isclose(validation_loss(model, tokenizer, held_out, 24), min(losses), rel_tol=1e-5)
    with pytest.raises(ValueError, match="select_best needs validation examples"):
        train_sft(model, tokenizer, train, TrainConfig(select_best=True), show_progress=False)


def test_group_by_length_keeps_every_example_once_and_cuts_padding():
    tokenizer = load_tokenizer(ModelConfig(name="tiny-random-llama"))
    encoded = encode_examples(tokenizer, TASKS.get("micro-math").examples("train", 640), 512)
    for grouped in (False, True):
        batches = list(epoch_batches(encoded, 16, seed=0, epoch=0, group_by_length=grouped))
        assert sorted(id(e) for b in batches for e in b) == sorted(id(e) for e in encoded)
    padded = {g: sum(16 * max(len(e.input_ids) for e in b) for b in epoch_batches(encoded, 16, 0, 0, g))
              for g in (False, True)}
    assert padded[True] < 0.9 * padded[False]
    first = [id(e) for b in epoch_batches(encoded, 16, 0, 0, True) for e in b]
    assert first == [id(e) for b in epoch_batches(encoded, 16, 0, 0, True) for e in b]  # seeded
    assert first != [id(e) for b in epoch_batches(encoded, 16, 0, 1, True) for e in b]  # reshuffled per epoch
