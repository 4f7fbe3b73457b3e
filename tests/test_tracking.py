"""train.report_to: the training log and the final scores reach tensorboard, mlflow and wandb."""

import json

import pytest

from peftbench.errors import ConfigError
from peftbench.io import read_json
from peftbench.run import execute_run, run_dir, run_id
from peftbench.validate import validate_run_config


def _run(tmp_path, report_to):
    return validate_run_config({
        "model": {"name": "tiny-random-llama", "device": "cpu"},
        "method": {"name": "lora", "target_modules": "all-linear"},
        "task": {"name": "toy-sentiment-choice", "max_eval": 8},
        "train": {"max_steps": 4, "batch_size": 8, "logging_steps": 1, "report_to": report_to},
        "output_dir": str(tmp_path / "runs"),
    })


def test_trackers_receive_the_training_log(tmp_path, monkeypatch):
    for module in ("tensorboard", "mlflow", "wandb"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install 'peftbench[tracking]')")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = _run(tmp_path, ["tensorboard", "mlflow", "wandb"])
    assert execute_run(cfg, show_progress=False)["status"] == "done"
    out = run_dir(cfg)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in log if "loss" in r}
    assert sorted(losses) == [1, 2, 3, 4]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {e.step: e.value for e in events.Scalars("train/loss")} == pytest.approx(losses)
    score = read_json(out / "metrics.json")["eval"]["score"]
    assert [e.value for e in events.Scalars("final/score")] == pytest.approx([score])  # the result, not only the log

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{(out / 'mlflow.db').resolve()}")
    (experiment,) = [e for e in client.search_experiments() if e.name == cfg.suite]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == run_id(cfg) and run.data.params["method.name"] == "lora"
    assert {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")} == pytest.approx(losses)
    assert run.data.metrics["final/score"] == pytest.approx(score) and "final/pscp" in run.data.metrics

    # wandb's offline transaction log (protobuf records) holds each value as JSON text
    (transactions,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    payload = transactions.read_bytes()
    assert all(json.dumps(loss).encode() in payload for loss in losses.values())


def test_report_to_names_known_trackers_and_leaves_the_run_id_alone(tmp_path):
    with pytest.raises(ConfigError, match=r"train.report_to.*unknown tracker.*known: mlflow, tensorboard, wandb"):
        _run(tmp_path, ["neptune"])
    assert run_id(_run(tmp_path, ["tensorboard"])) == run_id(_run(tmp_path, []))
