"""One run, start to finish: config -> model -> method -> data -> train -> evaluate -> run dir.

The run directory is the unit of result. `metrics.json` is written last and atomically,
so its presence means the run finished (done or diverged); a run killed at any moment
leaves no `metrics.json`, and a later invocation simply runs it again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Optional

from transformers import set_seed

from peftbench.config import EvalConfig, ModelConfig, RunConfig, TaskConfig, load_yaml, to_plain, validate_run_config
from peftbench.cost.measure import PeakMemory, forward_flops
from peftbench.cost.params import cost_summary, count_parameters, directory_size
from peftbench.cost.pscp import PscpConstants, pscp
from peftbench.evaluate import evaluate_task
from peftbench.io import JsonlLog, atomic_write_dir, atomic_write_json, atomic_write_yaml, read_json
from peftbench.methods import METHODS, MethodContext
from peftbench.models import load_model, load_tokenizer
from peftbench.models.loading import resolve_source
from peftbench.provenance import collect, now
from peftbench.tasks import TASKS, data_hash
from peftbench.train import train_sft
from peftbench.train.sft import total_optimizer_steps

METRICS_FILE = "metrics.json"
ADAPTER_DIR = "adapter"


def config_hash(cfg: RunConfig) -> str:
    """Identity of a run: everything that changes its result (not where it is written)."""
    plain = to_plain(cfg)
    plain.pop("output_dir", None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:10]


def method_label(cfg: RunConfig) -> str:
    method = METHODS.get(cfg.method.name)
    return method.label(method.params(cfg.method.params))


def run_id(cfg: RunConfig) -> str:
    return f"{method_label(cfg)}-{cfg.task.name}-s{cfg.train.seed}-{config_hash(cfg)}"


def run_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output_dir) / cfg.suite / run_id(cfg)


def is_finished(path: Path) -> bool:
    return (path / METRICS_FILE).is_file()


def resolve_task(task_cfg: TaskConfig):
    """The registered task, reading the config's local files when it names some."""
    task = TASKS.get(task_cfg.name)
    return task.with_files(task_cfg.data_files) if task_cfg.data_files else task


def eval_examples(task, task_cfg: TaskConfig):
    return task.examples(task.eval_split, task_cfg.max_eval or task.max_eval, task_cfg.sample_seed)


def _task_data(task_cfg: TaskConfig):
    task = resolve_task(task_cfg)
    train = task.examples("train", task_cfg.max_train or task.max_train, task_cfg.sample_seed)
    return task, train, eval_examples(task, task_cfg)


def execute_run(cfg: RunConfig, show_progress: bool = True, force: bool = False) -> dict:
    """Train and evaluate one run into its run directory; return its metrics.

    A run whose `metrics.json` exists is not redone unless `force`.
    """
    out = run_dir(cfg)
    if is_finished(out) and not force:
        return read_json(out / METRICS_FILE)
    if out.exists():
        shutil.rmtree(out)  # leftovers of an interrupted attempt are never reused
    out.mkdir(parents=True)
    started = now()
    atomic_write_yaml(out / "config.yaml", to_plain(cfg))

    task, train_data, eval_data = _task_data(cfg.task)
    hashes = {"train": data_hash(train_data), "eval": data_hash(eval_data)}
    method = METHODS.get(cfg.method.name)
    params = method.params(cfg.method.params)
    method.check_environment(params)  # e.g. qlora without CUDA: refuse before loading anything
    set_seed(cfg.train.seed)  # before attaching: adapter initialisation is seeded too
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, **method.load_kwargs(params))
    _, base_total = count_parameters(model)
    base_flops = forward_flops(model)  # PSCP penalises the FLOPs a method adds, so count the base's
    ctx = MethodContext(total_steps=total_optimizer_steps(len(train_data), cfg.train), model_source=resolve_source(cfg.model.name))
    model = method.attach(model, params, ctx)
    trainable, total_after = count_parameters(model)

    optimizer = method.build_optimizer(model, params, cfg.train.lr, cfg.train.weight_decay)
    device = next(model.parameters()).device
    with JsonlLog(out / "train_log.jsonl") as log, PeakMemory(device) as memory:
        result = train_sft(model, tokenizer, train_data, cfg.train, log, show_progress,
                           optimizer=optimizer, on_step=lambda step: method.on_step(model, step))

    metrics = {
        "run_id": run_id(cfg),
        "suite": cfg.suite,
        "method": method_label(cfg),
        "task": cfg.task.name,
        "model": cfg.model.name,
        "seed": cfg.train.seed,
        "status": "done" if result.status == "completed" else result.status,
        "train": result.summary(),
        "cost": {**cost_summary(trainable, base_total), "total_params": total_after,
                 "peak_memory_bytes": memory.peak_bytes, "peak_memory_kind": memory.kind},
    }
    if result.status == "completed":
        atomic_write_dir(out / ADAPTER_DIR, lambda tmp: method.save(model, tmp))
        metrics["cost"]["adapter_bytes"] = directory_size(out / ADAPTER_DIR)
        metrics["cost"].update(_inference_flops(model, base_flops))
        evaluation = evaluate_task(model, tokenizer, task, eval_data, cfg.eval, show_progress)
        atomic_write_json(out / "predictions.json", evaluation.pop("records"))
        metrics["eval"] = evaluation
        metrics["cost"]["inference"] = {"samples_per_s": evaluation["samples_per_s"],
                                        "latency_s_per_sample": evaluation["seconds"] / evaluation["samples"]}
        metrics["pscp"] = pscp_of(metrics)
    atomic_write_json(out / "provenance.json", collect(cfg.train.seed, hashes, started))
    atomic_write_json(out / METRICS_FILE, metrics)  # last: marks the run finished
    return metrics


def _inference_flops(model, base_flops: int) -> dict:
    flops = forward_flops(model)
    return {"base_inference_tflops": base_flops / 1e12, "extra_inference_tflops": max(0, flops - base_flops) / 1e12}


def pscp_of(metrics: dict, constants: PscpConstants = PscpConstants()) -> Optional[float]:
    """PSCP of a finished run from its measured score, parameters, extra FLOPs and memory."""
    cost, evaluation = metrics.get("cost") or {}, metrics.get("eval") or {}
    if evaluation.get("score") is None or cost.get("peak_memory_bytes") is None:
        return None
    return pscp(100 * evaluation["score"], cost["trainable_params"], cost.get("extra_inference_tflops", 0.0),
                cost["peak_memory_bytes"] / 1e9, constants)


def load_run(path: str | Path):
    """The tuned model, tokenizer, config and task of a finished run directory."""
    path = Path(path)
    cfg = validate_run_config(load_yaml(path / "config.yaml"), source=str(path / "config.yaml"))
    if not (path / ADAPTER_DIR).is_dir():
        raise FileNotFoundError(f"{path} has no saved adapter: the run did not finish training")
    tokenizer = load_tokenizer(cfg.model)
    method = METHODS.get(cfg.method.name)
    params = method.params(cfg.method.params)
    method.check_environment(params)
    model = method.load(load_model(cfg.model, **method.load_kwargs(params)), path / ADAPTER_DIR)
    model.eval()
    return model, tokenizer, cfg


def merge_run(path: str | Path, out: str | Path) -> Path:
    """Write the run's tuned model as a standalone transformers folder (model + tokenizer)."""
    model, tokenizer, cfg = load_run(path)
    merged = METHODS.get(cfg.method.name).merge(model)  # NotMergeableError for soft prompts

    def fill(tmp: Path) -> None:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))

    return atomic_write_dir(out, fill)


def evaluate_model(
    model_cfg: ModelConfig, task_cfg: TaskConfig, eval_cfg: EvalConfig,
    model=None, tokenizer=None, show_progress: bool = True,
) -> dict:
    """Evaluate a model (the base model unless one is given) on a task's eval split."""
    tokenizer = tokenizer or load_tokenizer(model_cfg)
    model = model or load_model(model_cfg)
    task = resolve_task(task_cfg)
    return evaluate_task(model, tokenizer, task, eval_examples(task, task_cfg), eval_cfg, show_progress)


def base_eval_path(output_dir: str, suite: str, model_cfg: ModelConfig, task_cfg: TaskConfig, eval_cfg: EvalConfig) -> Path:
    key = json.dumps([to_plain(model_cfg), to_plain(task_cfg), to_plain(eval_cfg)], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return Path(output_dir) / suite / f"base-{task_cfg.name}-{digest}"


def execute_base_eval(
    output_dir: str, suite: str, model_cfg: ModelConfig, task_cfg: TaskConfig, eval_cfg: EvalConfig,
    show_progress: bool = True,
) -> dict:
    """Score the untouched base model once per (model, task, eval config); cached on disk."""
    out = base_eval_path(output_dir, suite, model_cfg, task_cfg, eval_cfg)
    if is_finished(out):
        return read_json(out / METRICS_FILE)
    out.mkdir(parents=True, exist_ok=True)
    started = now()
    evaluation = evaluate_model(model_cfg, task_cfg, eval_cfg, show_progress=show_progress)
    atomic_write_json(out / "predictions.json", evaluation.pop("records"))
    metrics = {
        "run_id": out.name, "suite": suite, "method": "base", "task": task_cfg.name,
        "model": model_cfg.name, "seed": None, "status": "done", "eval": evaluation,
    }
    atomic_write_json(out / "provenance.json", collect(0, {}, started))
    atomic_write_json(out / METRICS_FILE, metrics)
    return metrics
