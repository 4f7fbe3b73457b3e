"""One run, start to finish: config -> model -> method -> data -> train -> evaluate -> run dir.

The run directory is the unit of result. `metrics.json` is written last and atomically,
so its presence means the run finished (done or diverged); a run killed at any moment
leaves no `metrics.json`, and a later invocation simply runs it again.
"""

from __future__ import annotations

import os
import shutil
import socket
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Optional

import torch
from transformers import set_seed

from peftbench.config import EvalConfig, ModelConfig, RunConfig, TaskConfig, to_plain
from peftbench.validate import validate_run_config
from peftbench.yamlio import load_yaml
from peftbench.rundir import ADAPTER_DIR, METRICS_FILE, is_finished  # noqa: F401
from peftbench.identity import base_eval_key, run_hash, run_tasks, task_fingerprints, versions
from peftbench.cost.measure import PeakMemory, structure_flops
from peftbench.cost.params import cost_summary, count_parameters, directory_size
from peftbench.cost.pscp import PscpConstants, pscp
from peftbench.errors import PeftbenchError
from peftbench.evaluate import evaluate_task
from peftbench.evaluate.vllm_backend import plain_weights, require_vllm, scoring_model
from peftbench.io import JsonlLog, atomic_write_dir, atomic_write_json, atomic_write_yaml, file_lock, read_json
from peftbench.methods import METHODS, MethodContext
from peftbench.methods.base import NotMergeableError
from peftbench.models import load_model, load_tokenizer
from peftbench.models.gguf import origin_of
from peftbench.models.loading import model_source, resolve_device
from peftbench.provenance import collect, now
from peftbench.retention import base_retention, compare, score_retention
from peftbench.tasks import TASKS, data_hash
from peftbench.tasks.select import eval_examples, hold_out, resolve_task, split_data  # noqa: F401
from peftbench.train.liger import require_liger
from peftbench.analysis.trajectory import Trajectory
from peftbench.analysis.trajectory import point as trajectory_point
from peftbench.launch import is_main_process, process_rank, world_size
from peftbench.train.modes import TRAINING_MODES
from peftbench.train.sft import autocast_dtype, total_optimizer_steps
from peftbench.train.tracking import Fanout, final_record, open_trackers



def config_hash(cfg: RunConfig) -> str:
    """Identity of a run: everything that changes its result (identity.py)."""
    return run_hash(cfg)


def method_label(cfg: RunConfig) -> str:
    """The method as tables show it: its label, and '-grpo' when trained by RL (SFT is the default)."""
    method = METHODS.get(cfg.method.name)
    label = method.label(method.params(cfg.method.params))
    return label if cfg.train.mode == "sft" else f"{label}-{cfg.train.mode}"


def run_id(cfg: RunConfig) -> str:
    return f"{method_label(cfg)}-{cfg.task.name}-s{cfg.train.seed}-{config_hash(cfg)}"


def run_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output_dir) / cfg.suite / run_id(cfg)




def execute_run(cfg: RunConfig, show_progress: bool = True, force: bool = False) -> dict:
    """Train and evaluate one run into its run directory; return its metrics.

    A run whose `metrics.json` exists is not redone unless `force`.
    """
    out = run_dir(cfg)
    check_launch(cfg)
    if is_finished(out) and not force:
        return read_json(out / METRICS_FILE)
    started = now()
    task = resolve_task(cfg.task)  # bad data fails here, before anything is written or loaded
    data = split_data(task, cfg.task, need_validation=cfg.train.select_best)
    transfer = {other.name: (resolve_task(other), other) for other in cfg.task.transfer or []}
    transfer_data = {name: eval_examples(*pair) for name, pair in transfer.items()}
    main = is_main_process()  # of several under `accelerate launch`, only the main one writes
    show_progress = show_progress and main
    if main:
        if out.exists():
            shutil.rmtree(out)  # leftovers of an interrupted attempt are never reused
        out.mkdir(parents=True)
        atomic_write_yaml(out / "config.yaml", to_plain(cfg))
    train_data, eval_data = data["train"], data["eval"]
    hashes = {"train": data_hash(train_data), "eval": data_hash(eval_data)}
    method = METHODS.get(cfg.method.name)
    params = method.params(cfg.method.params)
    set_seed(cfg.train.seed)  # before attaching: adapter initialisation is seeded too
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, **method.load_kwargs(params))
    _, base_total = count_parameters(model)
    base_flops = structure_flops(model)  # PSCP penalises the FLOPs a method adds
    source = model_source(cfg.model)
    ctx = MethodContext(total_steps=total_optimizer_steps(len(train_data), cfg.train), model_source=source)
    model = method.attach(model, params, ctx)
    trainable, total_after = count_parameters(model)

    optimizer = method.build_optimizer(model, params, cfg.train.lr, cfg.train.weight_decay)
    train_cfg = cfg.train.model_copy(update={"batching": resolve_batching(cfg.train.batching, method, params)})
    device = next(model.parameters()).device
    trajectory = Trajectory(out, model, tokenizer, task, eval_data, cfg) if cfg.train.checkpoint_every and main else None
    if trajectory is not None:
        trajectory.add(_base_point(cfg, show_progress))
    with ExitStack() as closing:
        trackers = open_trackers(cfg.train.report_to, out, run_id(cfg), to_plain(cfg)) if main else []
        for tracker in trackers:  # open until the final scores are in, closed however the run ends
            closing.callback(tracker.close)
        with (JsonlLog(out / "train_log.jsonl") if main else nullcontext()) as log, PeakMemory(device) as memory:
            result = TRAINING_MODES.get(cfg.train.mode)(
                model, tokenizer, task, data, train_cfg, Fanout(log, *trackers), show_progress, optimizer,
                lambda step: method.on_step(model, step), work_dir=out / "trainer", on_checkpoint=trajectory)
        if not main:  # the main process holds the same weights: it evaluates and writes the run
            return {"run_id": run_id(cfg), "status": result.status, "process": process_rank()}

        metrics = {
            "run_id": run_id(cfg),
            "suite": cfg.suite,
            "method": method_label(cfg),
            "task": cfg.task.name,
            "model": cfg.model.name,
            "seed": cfg.train.seed,
            "host": socket.gethostname(), "worker_pid": os.getpid(),  # where it ran (sweeps spread runs out)
            "versions": {**versions(), "tasks": task_fingerprints(run_tasks(cfg))},
            "status": "done" if result.status == "completed" else result.status,
            "train": {"mode": cfg.train.mode, "batching": train_cfg.batching, "processes": world_size(),
                      "precision": "bf16" if autocast_dtype(cfg.train.precision, device) else "fp32", **result.summary()},
            "cost": {**cost_summary(trainable, base_total), "total_params": total_after,
                     "peak_memory_bytes": memory.peak_bytes, "peak_memory_kind": memory.kind},
        }
        if result.status == "completed":
            atomic_write_dir(out / ADAPTER_DIR, lambda tmp: method.save(model, tmp))
            metrics["cost"]["adapter_bytes"] = directory_size(out / ADAPTER_DIR)
            metrics["cost"].update(_inference_flops(model, base_flops))
            model, merged = inference_model(method, params, model)
            # the base's retention first (cached after the first run): under vLLM each model's
            # engine takes its share of the free memory, so two must not be open at once
            base = base_retention(cfg.output_dir, cfg.suite, cfg.model, cfg.retention, cfg.eval, show_progress) \
                if cfg.retention else None
            with served_for_scoring(cfg, method, params, model, tokenizer, out / ADAPTER_DIR) as scored:
                evaluation = evaluate_task(scored, tokenizer, task, eval_data, cfg.eval, show_progress)
                evaluation["merged"] = merged
                atomic_write_json(out / "predictions.json", evaluation.pop("records"))
                metrics["eval"] = evaluation
                metrics["cost"]["inference"] = {"samples_per_s": evaluation["samples_per_s"],
                                                "latency_s_per_sample": evaluation["seconds"] / evaluation["samples"]}
                metrics["pscp"] = pscp_of(metrics)
                if transfer:  # the same model on the other tasks (trained on SST-2, scored on IMDB)
                    metrics["transfer"] = {}
                    for name, (other, _) in transfer.items():
                        scored_on = evaluate_task(scored, tokenizer, other, transfer_data[name], cfg.eval, show_progress)
                        atomic_write_json(out / f"predictions-{name}.json", scored_on.pop("records"))
                        metrics["transfer"][name] = scored_on
                if cfg.retention:
                    tuned = score_retention(scored, tokenizer, cfg.retention, cfg.eval, show_progress)
                    metrics["retention"] = compare(base, tuned)
            if trajectory is not None:
                trajectory.add(trajectory_point(result.steps, evaluation["score"], tuned if cfg.retention else None))
        atomic_write_json(out / "provenance.json", collect(cfg.train.seed, hashes, started, _model_origin(source)))
        for tracker in trackers:  # the final scores, not only the training log
            tracker.write(final_record(metrics, result.steps))
        atomic_write_json(out / METRICS_FILE, metrics)  # last: marks the run finished
        return metrics


def require_model_reachable(model_cfg: ModelConfig) -> None:
    """A hub id that cannot be fetched (offline, not cached) is refused before anything is written."""
    from peftbench.models.names import model_name_problem

    problem = model_name_problem(model_cfg.name, model_cfg.gguf_file, reachable=True)
    if problem:
        raise PeftbenchError(f"model.name: {problem}")


def preflight(model_cfg: ModelConfig, tasks: list[TaskConfig], retention=None, need_validation: bool = False) -> None:
    """Everything a suite needs that can be checked without a model: the model is reachable,
    the sandbox is there for code tasks, and every task's data loads and is not empty.
    Bad input ends here, in one line naming the file, before a run folder is written."""
    require_model_reachable(model_cfg)
    scored_only = [other for t in tasks for other in t.transfer or []] + (list(retention.tasks) if retention else [])
    require_sandbox_for([t.name for t in tasks + scored_only])
    for task_cfg in tasks:
        split_data(resolve_task(task_cfg), task_cfg, need_validation=need_validation)
    for task_cfg in scored_only:
        eval_examples(resolve_task(task_cfg), task_cfg)


def require_sandbox_for(task_names) -> None:
    """Tasks graded by running generated code need the operating-system sandbox: refused
    before any model loads where it cannot be set up (SandboxUnavailable says why)."""
    if any(TASKS.get(name).executes_code for name in task_names):
        from peftbench.sandbox import require_isolation

        require_isolation()


def check_launch(cfg: RunConfig) -> None:
    """Several processes train SFT runs only: GRPO's trainer would need its own launch setup.
    A vLLM backend needs vllm installed, train.liger a CUDA device and liger-kernel, a code
    task the sandbox: refused before training, not after it."""
    method = METHODS.get(cfg.method.name)
    method.check_environment(method.params(cfg.method.params))  # e.g. qlora without CUDA
    require_sandbox_for([cfg.task.name, *(t.name for t in cfg.task.transfer or []),
                         *(t.name for t in (cfg.retention.tasks if cfg.retention else []))])
    require_model_reachable(cfg.model)
    if cfg.eval.backend == "vllm":
        require_vllm()
    if cfg.train.liger:
        require_liger(resolve_device(cfg.model.device).type)
    if world_size() > 1 and cfg.train.mode != "sft":
        raise PeftbenchError(f"train.mode: {cfg.train.mode} under a multi-process launch ({world_size()} processes) "
                             "is not supported; launch it as one process (peftbench train RUN.yaml)")


def inference_model(method, params, model):
    """(the model to evaluate, whether it was merged): an update that folds into the weights is
    merged first, so generation pays no adapter overhead; the adapter is already saved.
    A quantised base is left alone: merging into 4-bit weights would round the update."""
    if not method.mergeable or "quantization_config" in method.load_kwargs(params):
        return model, False
    try:
        return method.merge(model), True
    except NotMergeableError:  # the generic peft method, for a prompt-learning type
        return model, False


def served_for_scoring(cfg: RunConfig, method, params, model, tokenizer, adapter_dir: Path):
    """The tuned model as `cfg.eval.backend` scores it. Under vLLM a plain LoRA adapter is
    served through vLLM's LoRA support on the base weights (no merged copy is written);
    any other model, through its own weights."""
    base = plain_weights(cfg.model)
    if cfg.eval.backend == "vllm" and base is not None and method.serves_as_lora(params):
        return scoring_model(cfg.eval, model, tokenizer, weights=base, adapter=adapter_dir)
    return scoring_model(cfg.eval, model, tokenizer)


def resolve_batching(batching: str, method, params) -> str:
    """`auto` becomes packed where the method allows it; packed where it does not is an error."""
    if batching == "auto":
        return "packed" if method.packs(params) else "padded"
    if batching == "packed" and not method.packs(params):
        raise PeftbenchError(f"train.batching: packed does not suit method {method.name!r} (it prepends virtual "
                             "tokens to every row); use auto or padded")
    return batching


def _model_origin(source: str) -> dict:
    """Provenance of the weights themselves: for a GGUF checkpoint, its file and quantisation."""
    origin = origin_of(source)
    return {"model_origin": {"gguf": origin}} if origin else {}


def _base_point(cfg: RunConfig, show_progress: bool) -> dict:
    """The trajectory's start: the base model's target and retention (both cached on disk)."""
    target = execute_base_eval(cfg.output_dir, cfg.suite, cfg.model, cfg.task, cfg.eval, show_progress)["eval"]["score"]
    kept = base_retention(cfg.output_dir, cfg.suite, cfg.model, cfg.retention, cfg.eval, show_progress) \
        if cfg.retention else None
    return trajectory_point(0, target, kept)


def _inference_flops(model, base_flops: int) -> dict:
    flops = structure_flops(model)
    return {"base_inference_tflops": base_flops / 1e12, "extra_inference_tflops": max(0, flops - base_flops) / 1e12}


def pscp_of(metrics: dict, constants: PscpConstants = PscpConstants()) -> Optional[float]:
    """PSCP of a finished run from its measured score, parameters, extra FLOPs and memory."""
    cost, evaluation = metrics.get("cost") or {}, metrics.get("eval") or {}
    if evaluation.get("score") is None or cost.get("peak_memory_bytes") is None:
        return None
    return pscp(100 * evaluation["score"], cost["trainable_params"], cost.get("extra_inference_tflops", 0.0),
                cost["peak_memory_bytes"] / 1e9, constants)


def load_run(path: str | Path, dtype: Optional[str] = None):
    """The tuned model, tokenizer, config and task of a finished run directory; with `dtype`,
    the base weights loaded in it (float32 for analysis: a bf16 merge rounds small updates)."""
    path = Path(path)
    cfg = validate_run_config(load_yaml(path / "config.yaml"), source=str(path / "config.yaml"))
    if dtype:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"dtype": dtype})})
    if not (path / ADAPTER_DIR).is_dir():
        raise FileNotFoundError(f"{path} has no saved adapter: the run did not finish training")
    tokenizer = load_tokenizer(cfg.model)
    method = METHODS.get(cfg.method.name)
    params = method.params(cfg.method.params)
    method.check_environment(params)
    model = method.load(load_model(cfg.model, **method.load_kwargs(params)), path / ADAPTER_DIR)
    model.eval()
    return model, tokenizer, cfg


MERGE_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}


def merge_run(path: str | Path, out: str | Path, alpha: float = 1.0, dtype: Optional[str] = None) -> Path:
    """Write the run's tuned model as a standalone transformers folder (model + tokenizer);
    with `alpha`, the point at alpha on the method's path from base (0) to tuned (1); with
    `dtype`, cast after merging (the merge itself runs in the training precision)."""
    if dtype is not None and dtype not in MERGE_DTYPES:
        raise PeftbenchError(f"unknown dtype {dtype!r} for merge; choose one of {', '.join(MERGE_DTYPES)}")
    from peftbench.analysis.interpolate import walker

    model, tokenizer, cfg = load_run(path)
    method = METHODS.get(cfg.method.name)
    if alpha == 1.0:
        merged = method.merge(model)  # NotMergeableError for soft prompts
    else:
        merged = walker(method, model, lambda: load_model(cfg.model))(alpha)
    if dtype is not None:
        merged = merged.to(MERGE_DTYPES[dtype])

    def fill(tmp: Path) -> None:
        merged.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))

    return atomic_write_dir(out, fill)


def evaluate_model(
    model_cfg: ModelConfig, task_cfg: TaskConfig, eval_cfg: EvalConfig,
    model=None, tokenizer=None, show_progress: bool = True,
) -> dict:
    """Evaluate a model (the base model unless one is given) on a task's eval split."""
    require_sandbox_for([task_cfg.name])
    tokenizer = tokenizer or load_tokenizer(model_cfg)
    weights = plain_weights(model_cfg) if model is None else None  # the base as loaded, or the given model's own
    model = model or load_model(model_cfg)
    task = resolve_task(task_cfg)
    with scoring_model(eval_cfg, model, tokenizer, weights=weights) as scored:
        return evaluate_task(scored, tokenizer, task, eval_examples(task, task_cfg), eval_cfg, show_progress)


def evaluate_saved_run(path: str | Path, cfg: RunConfig, model, tokenizer, show_progress: bool = True) -> dict:
    """Score a finished run's reloaded model (`load_run`) on its task, under `cfg.eval`: with
    vLLM, a plain LoRA adapter is served from the run's folder as in `execute_run`."""
    method = METHODS.get(cfg.method.name)
    task = resolve_task(cfg.task)
    with served_for_scoring(cfg, method, method.params(cfg.method.params), model, tokenizer,
                            Path(path) / ADAPTER_DIR) as scored:
        return evaluate_task(scored, tokenizer, task, eval_examples(task, cfg.task), cfg.eval, show_progress)


def base_eval_path(output_dir: str, suite: str, model_cfg: ModelConfig, task_cfg: TaskConfig, eval_cfg: EvalConfig) -> Path:
    return Path(output_dir) / suite / f"base-{task_cfg.name}-{base_eval_key(model_cfg, task_cfg, eval_cfg)}"


def execute_base_eval(
    output_dir: str, suite: str, model_cfg: ModelConfig, task_cfg: TaskConfig, eval_cfg: EvalConfig,
    show_progress: bool = True,
) -> dict:
    """Score the untouched base model once per (model, task, eval config); cached on disk."""
    out = base_eval_path(output_dir, suite, model_cfg, task_cfg, eval_cfg)
    if is_finished(out):
        return read_json(out / METRICS_FILE)
    with file_lock(out.parent / f".{out.name}.lock"):  # another `peftbench run` of the suite may be on it
        if is_finished(out):
            return read_json(out / METRICS_FILE)
        return _base_eval(out, suite, model_cfg, task_cfg, eval_cfg, show_progress)


def _base_eval(out: Path, suite: str, model_cfg: ModelConfig, task_cfg: TaskConfig, eval_cfg: EvalConfig,
               show_progress: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    started = now()
    evaluation = evaluate_model(model_cfg, task_cfg, eval_cfg, show_progress=show_progress)
    atomic_write_json(out / "predictions.json", evaluation.pop("records"))
    metrics = {
        "run_id": out.name, "suite": suite, "method": "base", "task": task_cfg.name,
        "model": model_cfg.name, "seed": None, "status": "done", "eval": evaluation,
        "versions": {**versions(), "tasks": task_fingerprints([task_cfg])},
    }
    atomic_write_json(out / "provenance.json", collect(0, {}, started))
    atomic_write_json(out / METRICS_FILE, metrics)
    return metrics
