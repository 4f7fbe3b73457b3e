"""The one entry point: `peftbench run | train | eval | merge | analyze | micro | report | findings | env |
list | completion`."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from peftbench.errors import PeftbenchError
from peftbench.allocator import keep_freed_memory
from peftbench.progress import WARNINGS_LOG_ENV, quiet_library_output, warnings_logged

DEFAULT_SUITE = "quickstart"

# Piped output gets a wide table instead of rich's 80-column default.
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 160)


def packaged_config(name: str) -> Path:
    return Path(str(resources.files("peftbench") / "configs" / f"{name}.yaml"))


def resolve_suite_path(value: Optional[str]) -> Path:
    """A path to a YAML file, or the name of a config shipped with peftbench."""
    value = value or DEFAULT_SUITE
    path = Path(value)
    if path.is_file():
        return path
    shipped = packaged_config(value)
    if shipped.is_file():
        return shipped
    available = sorted(p.stem for p in packaged_config("x").parent.glob("*.yaml"))
    raise PeftbenchError(f"no config file {value!r}; give a YAML path or a shipped suite: {', '.join(available)}")


# ---------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from peftbench.validate import load_suite_config
    from peftbench.sweep import run_suite
    from peftbench.launch import world_size

    if world_size() > 1:
        raise PeftbenchError(f"peftbench run under a launcher of {world_size()} processes: a sweep spreads runs over "
                             "workers itself (--workers, --executor ray); launch one large run with "
                             "`accelerate launch --multi_gpu --num_processes N -m peftbench train RUN.yaml`")
    overrides = list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    suite = load_suite_config(resolve_suite_path(args.suite), overrides)
    runs = suite.expand()
    suite_dir = Path(suite.output_dir) / suite.name
    modes = f" x {len(suite.modes)} modes" if suite.modes else ""
    err.print(f"suite [bold]{suite.name}[/]: {len(runs)} runs ({len(suite.methods)} methods x "
              f"{len(suite.tasks)} tasks x {len(suite.seeds)} seeds{modes}) -> {Path(suite.output_dir) / suite.name}")
    if args.dry_run:
        from peftbench.sweep.tuning import final_run_template, trials

        if suite.tuning:
            err.print(f"tuning first: {len(trials(suite))} trial runs ({suite.tuning.trials} per method and task, "
                      "scored on validation); the final runs below use each method's first trial point")
        out.print(dry_run_table(final_run_template(suite), suite.name))
        return 0
    from peftbench.sweep.executors import ExecutorOptions

    options = ExecutorOptions(workers=args.workers, address=args.address, cpus_per_run=args.cpus_per_run,
                              gpus_per_run=args.gpus_per_run, show_progress=not args.no_progress)
    os.environ[WARNINGS_LOG_ENV] = str(suite_dir / "warnings.log")  # this process and its workers
    results = run_suite(suite, show_progress=not args.no_progress, console=err, executor=args.executor, options=options,
                        retry_failed=args.retry_failed)
    print_leaderboard(results, suite_dir)
    logged = warnings_logged()
    if logged and not args.verbose:
        err.print(f"{logged} distinct library warnings went to {suite_dir / 'warnings.log'} (--verbose shows them)")
    return 1 if any(r["status"] == "failed" for r in results) else 0


def print_leaderboard(results: list[dict], suite_dir: Path) -> None:
    """Per task: each method's mean and 95% interval over seeds, its change against the base
    model, whether it learned, and a one-line verdict; then report.md and report.html."""
    from peftbench.report.build import LEGEND, build_report, gap_tables, terminal_tables
    from peftbench.report.summary import base_scores, other_base_scores, summarise

    rows = summarise(results)
    unfinished = [r for r in results if r.get("status") not in ("done", None) and r.get("method") != "base"]
    for run in unfinished:
        why = run.get("error") or (run.get("train") or {}).get("reason") or ""
        out.print(f"did not finish: {run.get('run_id')} ({run.get('status')}{': ' + why if why else ''})",
                  highlight=False, soft_wrap=True)
    if not rows:
        for task, score in sorted(base_scores(results).items()):
            out.print(f"base model on {task}: {100 * score:.1f}")
        out.print("no run finished: nothing to compare with the base model")
        return
    for table in terminal_tables(rows, base_scores(results), other_base_scores(results)) + gap_tables(results):
        out.print(table)
    out.print(LEGEND, style="dim")
    _warn_mixed(results)
    _, markdown, page = build_report(suite_dir, run_ids={r.get("run_id") for r in results})
    err.print(f"report: {markdown} and {page}")


def cmd_report(args: argparse.Namespace) -> int:
    from peftbench.report.build import build_report, load_runs

    if args.pscp_from:
        return _published_pscp(args)
    if args.format in ("csv", "jsonl"):
        return _flat_results(args)
    if not args.runs:
        raise PeftbenchError("give the runs folder a suite wrote (e.g. runs/quickstart), or --pscp-from FILE")
    root = Path(args.runs)
    if not root.is_dir():
        raise PeftbenchError(f"no runs folder {root}; give the folder a suite wrote, e.g. runs/quickstart")
    try:
        tables, markdown, page = build_report(root, Path(args.out) if args.out else None, pscp_beta=args.pscp_beta)
    except FileNotFoundError as exc:
        raise PeftbenchError(str(exc)) from None
    for table in tables:
        out.print(table)
    _warn_mixed(load_runs(root))
    err.print(f"wrote {markdown} and {page}")
    return 0


def _warn_mixed(results: list[dict]) -> None:
    from peftbench.report.summary import mixed_versions

    for warning in mixed_versions(results):
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)


def _flat_results(args: argparse.Namespace) -> int:
    """One flat row per run (huggingface/peft's method-comparison way), as CSV or JSON lines."""
    from peftbench.report.flat import flat_rows, write_rows
    from peftbench.rundir import load_runs

    if not args.runs or not Path(args.runs).is_dir():
        raise PeftbenchError(f"no runs folder {args.runs}; give the folder a suite wrote, e.g. runs/quickstart")
    rows = flat_rows(load_runs(Path(args.runs)))
    path = write_rows(rows, args.format, Path(args.out) if args.out else None)
    err.print(f"{len(rows)} runs -> {path or 'stdout'}")
    return 0


def _published_pscp(args: argparse.Namespace) -> int:
    """The PSCP table of a paper's published averages (PEFT-Bench's, shipped in benchmarks/)."""
    from peftbench.report.pscp_table import PSCP_COLUMNS, published_costs, pscp_note, pscp_rows

    table = Table(title=f"PSCP from {args.pscp_from}", caption=pscp_note(args.pscp_beta), caption_justify="left")
    for column in PSCP_COLUMNS:
        table.add_column(column, justify="left" if column in ("method", "tasks of") else "right")
    try:
        rows = pscp_rows(published_costs(args.pscp_from), args.pscp_beta)
    except (OSError, KeyError, ValueError) as exc:
        raise PeftbenchError(f"{args.pscp_from}: {exc}; expected CSV columns method, score, trainable_params, "
                             "extra_tflops, memory_gb") from None
    for row in rows:
        table.add_row(*row)
    out.print(table)
    return 0


def cmd_findings(args: argparse.Namespace) -> int:
    """Run the experiments the claims need (resumable), judge each claim, write findings.md/html."""
    from peftbench.findings import claim_numbers, run_findings
    from peftbench.findings.write import table_rows, write_findings
    from peftbench.sweep.executors import ExecutorOptions

    claims = sorted({int(c) for c in args.claims.split(",")}) if args.claims else claim_numbers()
    os.environ[WARNINGS_LOG_ENV] = str(Path(args.output_dir) / "findings-warnings.log")
    verdicts, experiments = run_findings(claims, args.model, args.output_dir, err, not args.no_progress,
                                         ExecutorOptions(workers=args.workers, show_progress=not args.no_progress),
                                         args.set)
    table = Table(title=f"findings ({args.model or 'micro'})")
    for column in ("claim", "study", "claim", "verdict", "why"):
        table.add_column(column, overflow="fold")
    for row in table_rows(verdicts):
        table.add_row(*row)
    out.print(table)
    markdown, page = write_findings(Path(args.output_dir) / "findings", verdicts, experiments, args.model or "micro")
    err.print(f"wrote {markdown} and {page}")
    return 0


def dry_run_table(runs, title: str) -> Table:
    """Every run the suite expands to, with its estimated size (nothing trains)."""
    from peftbench.run import run_id
    from peftbench.sweep.estimate import estimate_run

    table = Table(title=f"{title}: {len(runs)} runs (dry run)")
    for column in ("run id", "lr", "base params", "trainable", "train examples", "steps", "note"):
        table.add_column(column, justify="left" if column in ("run id", "note") else "right")
    fmt = lambda n: "?" if n is None else f"{n:,}"  # noqa: E731
    for cfg in runs:
        e = estimate_run(cfg)
        table.add_row(run_id(cfg), f"{cfg.train.lr:g}", fmt(e.base_params), fmt(e.trainable_params),
                      fmt(e.train_examples), fmt(e.optimizer_steps), e.note)
    return table


def cmd_train(args: argparse.Namespace) -> int:
    from peftbench.validate import load_run_config
    from peftbench.run import execute_run, run_dir
    from peftbench.launch import is_main_process

    overrides = list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    cfg = load_run_config(args.config, overrides)
    main = is_main_process()  # under `accelerate launch`, the other processes only train
    if main:
        err.print(f"run dir: {run_dir(cfg)}")
    metrics = execute_run(cfg, show_progress=not args.no_progress, force=args.force)
    if main:
        _print_metrics(metrics)
    return 0 if metrics["status"] in ("done", "completed") else 3


def cmd_eval(args: argparse.Namespace) -> int:
    from peftbench.validate import validate_run_config
    from peftbench.yamlio import apply_overrides
    from peftbench.io import atomic_write_json
    from peftbench.run import evaluate_saved_run, load_run

    if bool(args.run) == bool(args.model or args.task):
        raise PeftbenchError("give either --run DIR, or --task NAME [--model NAME] to evaluate a base model")
    if args.run:
        model, tokenizer, cfg = load_run(args.run)
        if args.set:
            cfg = validate_run_config(apply_overrides(cfg.model_dump(mode="json"), args.set), "--set")
        result = evaluate_saved_run(args.run, cfg, model, tokenizer, not args.no_progress)
    else:
        return _eval_base(args)
    records = result.pop("records")
    if args.out:
        atomic_write_json(args.out, {**result, "records": records})
    _print_metrics({"eval": result})
    return 0


def _eval_base(args: argparse.Namespace) -> int:
    """A base model on one or several tasks (groups expanded), loaded once: lm-evaluation-harness's habits."""
    from peftbench.io import atomic_write_json
    from peftbench.models import load_model, load_tokenizer
    from peftbench.run import evaluate_model
    from peftbench.validate import expand_task_groups, validate_eval_request
    from peftbench.yamlio import apply_overrides

    if not args.task:
        raise PeftbenchError("give --task NAME[,NAME...] with --model, or --run DIR")
    task = {k: v for k, v in {"max_eval": args.limit, "few_shot": args.num_fewshot}.items() if v is not None}
    requests = [validate_eval_request(apply_overrides({"model": {"name": args.model} if args.model else {},
                                                       "task": {"name": name, **task}}, args.set), "command line")
                for name in args.task.split(",")]
    tasks = expand_task_groups([r.task for r in requests])
    model_cfg, eval_cfg = requests[0].model, requests[0].eval
    model, tokenizer = load_model(model_cfg), load_tokenizer(model_cfg)
    results = {t.name: evaluate_model(model_cfg, t, eval_cfg, model=model, tokenizer=tokenizer,
                                      show_progress=not args.no_progress) for t in tasks}
    table = Table(title=f"{model_cfg.name}")
    for column in ("task", "metric", "score %", "examples"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for name, result in results.items():
        table.add_row(name, result["primary_metric"], f"{100 * result['score']:.1f}", str(result["samples"]))
    out.print(table)
    if args.out:
        atomic_write_json(args.out, results)
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    from peftbench.completion import script

    suites = [p.stem for p in packaged_config("x").parent.glob("*.yaml")]
    print(script(build_parser(), args.shell, suites), end="")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from peftbench.models.hub import check_can_push, push_folder
    from peftbench.run import merge_run

    if args.push_to_hub:
        check_can_push(args.push_to_hub)
    out_dir = merge_run(args.run, args.out, alpha=args.alpha, dtype=args.dtype)
    err.print(f"merged model written to {out_dir} (loads with AutoModelForCausalLM.from_pretrained)")
    if args.push_to_hub:
        err.print(f"pushed to {push_folder(out_dir, args.push_to_hub, private=args.private)}")
    return 0


def cmd_analyze_spectral(args: argparse.Namespace) -> int:
    from peftbench.analysis.of_run import SPECTRAL_FILE, spectral_of_run

    for run in args.runs:
        summary = spectral_of_run(run)["summary"]
        out.print(f"[bold]{run}[/] ({summary['layers']} adapted weights) -> {Path(run) / SPECTRAL_FILE}")
        for key, value in summary.items():
            if key != "layers":
                out.print(f"  {key:24s} {'-' if value is None else f'{value:.4g}'}")
    return 0


def cmd_analyze_interpolate(args: argparse.Namespace) -> int:
    from peftbench.analysis.interpolate import parse_alphas
    from peftbench.analysis.of_run import PATH_FILE, path_of_run
    from peftbench.validate import validate_retention
    from peftbench.yamlio import load_yaml

    model_name = (load_yaml(Path(args.run) / "config.yaml").get("model") or {}).get("name")
    retention = validate_retention(args.retention, model_name=model_name) if args.retention else None
    result = path_of_run(args.run, parse_alphas(args.alphas), retention, args.tradeoff,
                         args.min_retention_gain, show_progress=not args.no_progress)
    table = Table(title=f"{result['method']} on {result['task']}: {result['path']} path")
    for column in ("alpha", "target %", "retention %"):
        table.add_column(column, justify="right")
    for p in result["points"]:
        kept = p.get("retention")
        table.add_row(f"{p['alpha']:g}", f"{100 * p['target']:.1f}", "-" if kept is None else f"{100 * kept:.1f}")
    out.print(table)
    best = result["best"]
    if best["best_alpha"] is None:
        out.print(f"best trade-off: not defined ({best['reason']})")
    else:
        verdict = "overshoot: yes" if best["overshoot"] else "overshoot: no"
        out.print(f"best trade-off ({best['tradeoff']}): alpha {best['best_alpha']:g}; {verdict} "
                  f"(retention {best['retention_gain_points_over_final']:+.1f} pts over alpha 1)")
    err.print(f"written to {Path(args.run) / PATH_FILE}")
    return 0


def cmd_analyze_ioft(args: argparse.Namespace) -> int:
    from peftbench.analysis.ioft import ioft_run
    from peftbench.io import read_json

    out_dir = ioft_run(args.run, args.out, args.mode, args.factor)
    record = read_json(out_dir / "ioft.json")
    table = Table(title=f"iOFT {args.mode}: rotation strength ||Q||_F per layer, before -> after")
    table.add_column("module")
    table.add_column("layers before -> after")
    for kind, before in record["before"].items():
        after = record["after"][kind]
        table.add_row(kind, "  ".join(f"{before[layer]:.3g}->{after[layer]:.3g}" for layer in before))
    out.print(table)
    err.print(f"rescaled adapter written to {out_dir} (use it with eval --run, merge, analyze)")
    return 0


def cmd_micro_pretrain(args: argparse.Namespace) -> int:
    from peftbench.micro.pretrain import Recipe, pretrain

    recipe = Recipe(seed=args.seed).scaled(args.scale)
    out_dir = Path(args.out)
    card = pretrain(recipe, out_dir, show_progress=not args.no_progress, log_path=out_dir.with_suffix(".log.jsonl"))
    err.print(f"micro model written to {out_dir} in {card['train_seconds'] / 60:.1f} min; "
              f"general-skills average {100 * card['general_average']:.1f}%")
    return 0


def cmd_micro_card(args: argparse.Namespace) -> int:
    from peftbench.micro.card import write_card

    card = write_card(Path(args.folder), samples=args.samples, show_progress=not args.no_progress)
    for name, score in card["scores"].items():
        out.print(f"{name:28s} {100 * score:6.1f}")
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """Versions and devices, for a bug report."""
    import platform

    import torch

    from peftbench.provenance import package_versions

    table = Table(title="peftbench env")
    table.add_column("what")
    table.add_column("value")
    for name, version in package_versions().items():
        table.add_row(name, str(version))
    table.add_row("platform", platform.platform())
    table.add_row("cpu threads", str(torch.get_num_threads()))
    table.add_row("cuda", f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}" if torch.cuda.is_available()
                  else "none")
    try:
        from peftbench.sandbox import require_isolation

        require_isolation()
        sandbox = "ready (bubblewrap, seccomp)"
    except PeftbenchError as exc:
        sandbox = f"unavailable: {exc}"
    table.add_row("code sandbox", sandbox)
    out.print(table)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from peftbench.methods import METHODS
    from peftbench.tasks import TASKS

    if args.what == "methods":
        table = Table(title="methods")
        for column in ("name", "family", "hyper-parameters (defaults)", "merges", "description"):
            table.add_column(column)
        for name, method in METHODS:
            params = ", ".join(f"{k}={f.default!r}" for k, f in method.Params.model_fields.items()) or "-"
            merge = "yes" if method.mergeable else "no"
            table.add_row(name, method.family, params, merge, method.description)
    else:
        from peftbench.tasks import TASK_GROUPS

        table = Table(title="tasks", caption="groups: " + "; ".join(f"{g} = {len(m)} tasks" for g, m in TASK_GROUPS.items()))
        for column in ("name", "splits (eval)", "metrics", "caps train/eval", "runs code", "source", "description"):
            table.add_column(column)
        for name, task in TASKS:
            caps = f"{task.max_train or '-'}/{task.max_eval or '-'}"
            table.add_row(name, f"{', '.join(task.splits)} ({task.eval_split})", ", ".join(task.metrics), caps,
                          "yes" if task.executes_code else "no", task.source, task.description)
    out.print(table)
    return 0


def _flat(mapping: dict, prefix: str):
    for key, value in mapping.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}", value


def _print_metrics(metrics: dict) -> None:
    table = Table(show_header=False)
    if "status" in metrics:
        table.add_row("status", str(metrics["status"]))
    train = metrics.get("train") or {}
    for key in ("steps", "first_loss", "final_loss", "tokens_per_s", "reason"):
        if train.get(key) is not None:
            table.add_row(f"train.{key}", f"{train[key]:.4g}" if isinstance(train[key], float) else str(train[key]))
    for key, value in _flat(metrics.get("cost") or {}, "cost"):
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value))
    if metrics.get("pscp") is not None:
        table.add_row("pscp", f"{metrics['pscp']:.3f}")
    for key, value in ((metrics.get("eval") or {}).get("scores") or {}).items():
        table.add_row(f"eval.{key}", f"{value:.4f}")
    out.print(table)


# ---------------------------------------------------------------- parser


def _common(parser: argparse.ArgumentParser, overrides: bool = True) -> None:
    if overrides:
        parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="override a config field, e.g. --set train.lr=1e-4 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    from peftbench import __version__

    parser = argparse.ArgumentParser(prog="peftbench", description="Compare parameter-efficient fine-tuning methods.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"peftbench {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a suite (methods x tasks x seeds) and print the leaderboard")
    run.add_argument("suite", nargs="?", help=f"suite YAML or shipped suite name (default: {DEFAULT_SUITE})")
    run.add_argument("--output-dir", help="where run directories go (default: the suite's output_dir, 'runs')")
    run.add_argument("--dry-run", action="store_true", help="validate and list the runs without training")
    run.add_argument("--retry-failed", action="store_true",
                     help="run again the runs that raised (killed runs are always run again)")
    run.add_argument("--executor", default="local",
                     help="local: worker processes on this machine; ray: one Ray task per run (default: local)")
    run.add_argument("--workers", type=int, help="local worker processes (default: one per GPU; on CPU one per core for grids of 16+ runs of a model that fits)")
    run.add_argument("--address", help="Ray cluster address, e.g. ray://head:10001 (default: start a local Ray)")
    run.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs each run asks for (default: 1)")
    run.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray: GPUs each run asks for (default: 0)")
    _common(run)
    run.set_defaults(func=cmd_run)

    train = sub.add_parser("train", help="train and evaluate one run from a run config")
    train.add_argument("config", help="run config YAML (model, method, task, train, eval)")
    train.add_argument("--output-dir", help="where the run directory goes")
    train.add_argument("--force", action="store_true", help="redo the run even if it already finished")
    _common(train)
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a finished run, or a base model on a task")
    ev.add_argument("--run", help="run directory to evaluate")
    ev.add_argument("--model", help="base model: built-in name, local folder or hub id")
    ev.add_argument("--task", "--tasks", dest="task", help="task names or groups, comma-separated (with --model), "
                    "e.g. sst2,bbh")
    ev.add_argument("--limit", type=int, help="score at most N examples of each task (a seeded sample)")
    ev.add_argument("--num-fewshot", type=int, help="k solved examples before every prompt (task.few_shot)")
    ev.add_argument("--out", help="write scores and per-example records to this JSON file")
    _common(ev)
    ev.set_defaults(func=cmd_eval)

    mg = sub.add_parser("merge", help="fold a finished run's update into the weights; write a plain model")
    mg.add_argument("run", help="run directory")
    mg.add_argument("--out", required=True, help="folder for the merged model and tokenizer")
    mg.add_argument("--alpha", type=float, default=1.0,
                    help="point on the path base (0) -> tuned (1): W0 + alpha (W1 - W0), OFT/BOFT along the "
                    "rotation; > 1 extrapolates")
    mg.add_argument("--dtype", choices=["float32", "bf16", "bfloat16", "fp16", "float16"],
                    help="cast the merged weights (default: keep the training precision)")
    mg.add_argument("--push-to-hub", metavar="REPO", help="also upload the merged model to this hub repository "
                    "(user/name; needs a login: hf auth login)")
    mg.add_argument("--private", action="store_true", help="with --push-to-hub: create the repository private")
    mg.set_defaults(func=cmd_merge)

    an = sub.add_parser("analyze", help="geometry of a finished run: spectral profile, interpolation path")
    an_sub = an.add_subparsers(dest="analyze_command", required=True)
    sp = an_sub.add_parser("spectral", help="spectral retention/adaptation profile of the merged update")
    sp.add_argument("runs", nargs="+", help="run directories")
    sp.set_defaults(func=cmd_analyze_spectral)
    ip = an_sub.add_parser("interpolate", help="score target and retention along the path base (0) -> tuned (1)")
    ip.add_argument("run", help="run directory")
    ip.add_argument("--alphas", default="0:1:0.1", help="start:stop:step (stop included) or a comma list; "
                    "> 1 extrapolates (default 0:1:0.1)")
    ip.add_argument("--retention", nargs="+", metavar="TASK",
                    help="retention tasks or groups, or 'default' (the micro model's general skills; "
                    "bbh ifeval nq for others); without it: the run's retention block")
    ip.add_argument("--tradeoff", default="balanced", help="how the best alpha is chosen: balanced (mean of "
                    "normalised target gain and retention kept, default) or target")
    ip.add_argument("--min-retention-gain", type=float, default=1.0,
                    help="retention points the best alpha must keep over alpha 1 to count as an overshoot (default 1)")
    ip.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ip.set_defaults(func=cmd_analyze_interpolate)
    io = an_sub.add_parser("ioft", help="iOFT: rescale an OFT/BOFT run's rotations layer by layer into a new run dir")
    io.add_argument("run", help="run directory of an oft or boft run")
    io.add_argument("--mode", required=True, choices=["safescale", "minscale", "uniform"],
                    help="safescale: each layer to the mean strength of the first five layers; minscale: to the "
                    "weakest layer's; uniform: every generator times --factor")
    io.add_argument("--factor", type=float, help="uniform: the factor")
    io.add_argument("--out", required=True, help="the new run directory")
    io.set_defaults(func=cmd_analyze_ioft)

    micro = sub.add_parser("micro", help="the built-in micro world: pretrain the micro model, score it")
    micro_sub = micro.add_subparsers(dest="micro_command", required=True)
    mp = micro_sub.add_parser("pretrain", help="pretrain a micro model from scratch (about 45 min on 2 CPU cores)")
    mp.add_argument("--out", required=True, help="folder for the model, tokenizer and model card")
    mp.add_argument("--seed", type=int, default=0)
    mp.add_argument("--scale", type=float, default=1.0, help="fraction of the recipe's data (quick checks)")
    mp.add_argument("--no-progress", action="store_true")
    mp.set_defaults(func=cmd_micro_pretrain)
    mc = micro_sub.add_parser("card", help="score a micro model folder on every micro task; rewrite its card")
    mc.add_argument("folder")
    mc.add_argument("--samples", type=int, default=200, help="test examples per task")
    mc.add_argument("--no-progress", action="store_true")
    mc.set_defaults(func=cmd_micro_card)

    rp = sub.add_parser("report", help="leaderboard, report.md and a self-contained report.html from finished runs")
    rp.add_argument("runs", nargs="?", help="folder holding run directories (e.g. runs/quickstart)")
    rp.add_argument("--out", help="where report.md, plots/ and report.html go (default: the runs folder)")
    rp.add_argument("--format", choices=["md", "html", "csv", "jsonl"], default="md",
                    help="md/html: report.md and report.html (both, default); csv/jsonl: one flat row per run "
                    "(to --out, a file, or stdout)")
    rp.add_argument("--pscp-beta", type=float, help="the PSCP exponents for the method-level table (default 1, "
                    "PEFT-Bench's table; its final script uses 2)")
    rp.add_argument("--pscp-from", metavar="CSV", help="print the PSCP table of published averages instead "
                    "(columns method, score, trainable_params, extra_tflops, memory_gb), e.g. "
                    "benchmarks/peft_bench_published_averages.csv")
    rp.set_defaults(func=cmd_report)

    fd = sub.add_parser("findings", help="put the studies' claims to the test: run what each needs, judge it, "
                        "write findings.md and findings.html")
    fd.add_argument("--claims", help="comma-separated claim numbers (default: all 12)")
    fd.add_argument("--model", help="the model every experiment uses (default: each config's, the micro model; "
                    "smollm2-135m or a hub id on a GPU)")
    fd.add_argument("--output-dir", default="runs", help="where the experiments' runs and findings/ go")
    fd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field of every experiment (e.g. train.max_steps=100 for a quick look)")
    fd.add_argument("--workers", type=int, help="local worker processes (default: as `peftbench run`)")
    fd.add_argument("--no-progress", action="store_true", help="hide progress bars")
    fd.set_defaults(func=cmd_findings)

    ev = sub.add_parser("env", help="versions, devices and the code sandbox, for a bug report")
    ev.set_defaults(func=cmd_env)

    ls = sub.add_parser("list", help="list registered methods or tasks")
    ls.add_argument("what", choices=["methods", "tasks"])
    ls.set_defaults(func=cmd_list)

    cp = sub.add_parser("completion", help="print a shell completion script (bash or zsh)")
    cp.add_argument("shell", choices=["bash", "zsh"])
    cp.set_defaults(func=cmd_completion)
    for name, command in sub.choices.items():  # `peftbench run --verbose` as well as `peftbench --verbose run`
        command.epilog = "examples:\n" + "\n".join(f"  {line}" for line in COMMAND_EXAMPLES[name])
        command.formatter_class = argparse.RawDescriptionHelpFormatter
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
        command.add_argument("--include-path", action="append", metavar="DIR", default=argparse.SUPPRESS,
                             help="also register the task YAML files in DIR (repeatable)")
    return parser


EXAMPLES = """examples:
  peftbench run                                   the quickstart: six methods on the micro world
  peftbench run real-sentiment --dry-run          list a shipped suite's runs without training
  peftbench run my.yaml --set train.lr=1e-3       any suite, a field overridden
  peftbench eval --task gsm8k --model micro       score a base model
  peftbench report runs/quickstart --format csv   one flat row per run
  peftbench findings --claims 1,7                 put two of the studies' claims to the test
"""

# shown under each command's --help; a test parses every one of them
COMMAND_EXAMPLES = {
    "run": ["peftbench run", "peftbench run real-sentiment --dry-run", "peftbench run my-suite.yaml --set seeds=[0,1]",
            "peftbench run all-methods --workers 2 --retry-failed",
            "peftbench run arena --executor ray --address ray://head:10001 --gpus-per-run 1"],
    "train": ["peftbench train run.yaml", "peftbench train run.yaml --set method.r=16 --force"],
    "eval": ["peftbench eval --run runs/quickstart/lora-micro-sentiment-s0-0123456789",
             "peftbench eval --model micro --tasks micro-math,micro-nli --limit 100",
             "peftbench eval --model HuggingFaceTB/SmolLM2-135M-Instruct --tasks gsm8k --num-fewshot 5 --out gsm8k.json"],
    "merge": ["peftbench merge runs/my-suite/lora-sst2-s0-0123456789 --out merged/",
              "peftbench merge runs/my-suite/lora-sst2-s0-0123456789 --out merged/ --alpha 0.5 --dtype bf16",
              "peftbench merge runs/my-suite/lora-sst2-s0-0123456789 --out merged/ --push-to-hub me/sst2-lora"],
    "analyze": ["peftbench analyze spectral runs/arena/full-micro-math-s0-0123456789",
                "peftbench analyze interpolate runs/arena/full-micro-math-s0-0123456789 --alphas 0:1:0.25 "
                "--retention default",
                "peftbench analyze ioft runs/arena/oft-micro-math-s0-0123456789 --mode safescale --out runs/ioft"],
    "micro": ["peftbench micro pretrain --out my-micro --scale 0.1", "peftbench micro card my-micro"],
    "report": ["peftbench report runs/quickstart", "peftbench report runs/quickstart --format csv --out runs.csv",
               "peftbench report runs/peft-bench --pscp-beta 2",
               "peftbench report --pscp-from benchmarks/peft_bench_published_averages.csv"],
    "findings": ["peftbench findings", "peftbench findings --claims 1,7 --set train.max_steps=100"],
    "env": ["peftbench env"],
    "list": ["peftbench list methods", "peftbench list tasks"],
    "completion": ['eval "$(peftbench completion bash)"', 'eval "$(peftbench completion zsh)"'],
}

VERBOSE_HELP = "also print library warnings in the terminal (they always go to the suite's warnings.log)"


def _load_extensions(include_path: bool) -> None:
    """Plugins (the `peftbench.plugins` entry points) and --include-path task files."""
    from peftbench.plugins import load_plugins

    load_plugins()
    if include_path:
        from peftbench.tasks.catalog import register_include_path

        register_include_path()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_library_output(verbose=args.verbose)
    if getattr(args, "include_path", None):  # this process, and sweep workers through the environment
        os.environ["PEFTBENCH_INCLUDE_PATH"] = os.pathsep.join(args.include_path)
    keep_freed_memory()
    try:
        _load_extensions(bool(getattr(args, "include_path", None)))
        return args.func(args)
    except PeftbenchError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)  # one line, unwrapped
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: finished runs are kept; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
