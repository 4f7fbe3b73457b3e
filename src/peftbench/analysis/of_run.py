"""Analyses of a finished run, stored beside it: `peftbench analyze spectral|interpolate RUN`.

- spectral.json (+ spectral_profiles.safetensors with every layer's full profiles):
  the spectral retention/adaptation profile of the merged update, the relative change of
  each weight's singular values, and how far the representations moved (CKA, Procrustes
  distance, Gram distortion between base and tuned on the run's scored prompts);
- path.json: target and retention scored at each alpha of the path from base to tuned,
  the best trade-off point and the overshoot verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from peftbench.analysis import spectral
from peftbench.analysis.interpolate import walker
from peftbench.analysis.representations import compare_representations
from peftbench.analysis.tradeoff import MIN_RETENTION_GAIN_POINTS, TRADEOFFS, best_point
from peftbench.errors import PeftbenchError
from peftbench.rundir import PATH_FILE, SPECTRAL_FILE, stored  # noqa: F401
from peftbench.io import atomic_write_json
from peftbench.methods import METHODS, NotMergeableError
from peftbench.models import load_model
from peftbench.progress import progress_bar

SPECTRAL_PROFILES_FILE = "spectral_profiles.safetensors"


class NoMatrixUpdate(PeftbenchError):
    """The run changed no 2-D weight (LN tuning changes norm scales only): no spectrum to profile."""


def _needs_merge(method, what: str) -> None:
    if not method.mergeable:
        raise NotMergeableError(
            f"{what} needs the update merged into the weights; method {method.name!r} has none to merge "
            "(soft prompts add virtual tokens, not weight changes)")


REPRESENTATION_PROMPTS = 64  # the run's scored prompts its representations are compared on


def _probe_prompts(cfg) -> list[str]:
    from peftbench.tasks.select import eval_examples, resolve_task

    return [e.prompt for e in eval_examples(resolve_task(cfg.task), cfg.task)[:REPRESENTATION_PROMPTS]]


def spectral_of_run(path: str | Path) -> dict:
    """Spectral profile of a run's merged update against its base weights; written to the run dir."""
    from safetensors.torch import save_file

    from peftbench.run import load_run, method_label

    path = Path(path)
    model, tokenizer, cfg = load_run(path, dtype="float32")  # merged and compared in float32, whatever it trained in
    method = METHODS.get(cfg.method.name)
    _needs_merge(method, "a spectral profile")
    base, tuned = load_model(cfg.model), method.merge(model)
    layers = spectral.model_spectra(base, tuned)
    if not layers:
        raise NoMatrixUpdate(f"{path}: the tuned model changed no 2-D weight outside the embeddings")
    moved = compare_representations(base, tuned, tokenizer, _probe_prompts(cfg))
    result = {
        "run_id": path.name, "method": method_label(cfg), "task": cfg.task.name,
        "summary": {**spectral.summarise(layers), **moved["mean"]}, "layers": [layer.summary() for layer in layers],
        "representations": moved,
        "mean_profiles": {key: spectral.mean_profile(layers, key) for key in ("retention", "adaptation", "alignment")},
    }
    save_file({f"{layer.name}/{key}": torch.tensor(getattr(layer, key))
               for layer in layers for key in ("retention", "adaptation", "alignment")},
              str(path / SPECTRAL_PROFILES_FILE))
    atomic_write_json(path / SPECTRAL_FILE, result)
    return result


def path_of_run(
    path: str | Path, alphas: Sequence[float], retention=None, tradeoff: str = "balanced",
    min_retention_gain_points: float = MIN_RETENTION_GAIN_POINTS, show_progress: bool = True,
) -> dict:
    """Target (and retention, when the run or `retention` names suites) at each alpha."""
    from peftbench.evaluate import evaluate_task
    from peftbench.retention import score_retention
    from peftbench.run import load_run, method_label
    from peftbench.tasks.select import eval_examples, resolve_task

    TRADEOFFS.get(tradeoff)  # an unknown name fails now, not after scoring the whole path
    if not alphas:
        raise PeftbenchError("no alphas to score")
    path = Path(path)
    model, tokenizer, cfg = load_run(path)
    method = METHODS.get(cfg.method.name)
    _needs_merge(method, "an interpolation path")
    retention = retention or cfg.retention
    task = resolve_task(cfg.task)
    examples = eval_examples(task, cfg.task)
    walk = walker(method, model, lambda: load_model(cfg.model))
    points = []
    with progress_bar(len(alphas), "interpolation path", enabled=show_progress) as advance:
        for alpha in sorted(alphas):
            point_model = walk(alpha)
            scored = evaluate_task(point_model, tokenizer, task, examples, cfg.eval, show_progress=False)
            point = {"alpha": alpha, "target": scored["score"]}
            if retention:
                kept = score_retention(point_model, tokenizer, retention, cfg.eval)
                point.update(retention=kept["average"], retention_scores=kept["scores"],
                             cross_entropy=kept["cross_entropy"])
            points.append(point)
            advance(status=f"alpha {alpha:g}: target {100 * point['target']:.1f}")
    result = {
        "run_id": path.name, "method": method_label(cfg), "task": cfg.task.name,
        "path": method.interpolation_path, "points": points,
        "best": best_point(points, tradeoff, min_retention_gain_points),
    }
    atomic_write_json(path / PATH_FILE, result)
    return result


def analyze_finished(run_dirs: Sequence[Path], analysis, retention, console, show_progress: bool = True) -> None:
    """Run a suite's `analysis:` block on its finished runs; each analysis already stored
    is kept (a resumed sweep computes only what is missing)."""
    from peftbench.analysis.interpolate import parse_alphas
    from peftbench.yamlio import load_yaml

    for run in run_dirs:
        method = METHODS.get(load_yaml(run / "config.yaml")["method"]["name"])
        if not method.mergeable:
            console.print(f"[dim]analysis: {run.name} skipped ({method.name} has no weight update to analyse)[/]")
            continue
        if analysis.spectral and stored(run, SPECTRAL_FILE) is None:
            console.print(f"[bold]spectral profile[/] {run.name}")
            try:
                spectral_of_run(run)
            except NoMatrixUpdate:  # its interpolation path still exists: go on to it
                console.print(f"[dim]analysis: no spectral profile for {run.name} ({method.name} changes no "
                              "weight matrix)[/]")
        if analysis.interpolate and stored(run, PATH_FILE) is None:
            console.print(f"[bold]interpolation path[/] {run.name}")
            path_of_run(run, parse_alphas(analysis.interpolate), retention, analysis.tradeoff,
                        show_progress=show_progress)
