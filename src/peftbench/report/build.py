"""`peftbench report RUNS_DIR`: a terminal leaderboard, report.md (+ plots/*.png) and one
self-contained report.html (plots embedded as base64 PNG) from the finished runs."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Optional

from rich.table import Table

from peftbench.io import atomic_write_text
from peftbench.report import plots
from peftbench.report.summary import (MethodSummary, base_scores, mean_ranks, mixed_versions, other_base_scores,
                                      summarise, transfer_gaps, verdict)
from peftbench.rundir import load_runs  # noqa: F401  (report's readers take it from here)


def _cell(value: Optional[float], spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _score(row: MethodSummary) -> str:
    text = f"{100 * row.mean:.1f}"
    if len(row.scores) > 1:
        text += f" [{100 * row.low:.1f}, {100 * row.high:.1f}]"
    return text + (" (n.s.)" if row.not_significant else "")


BASE_MARKS = {"above": "↑", "below": "↓", "same": "≈"}


def _vs_base(row: MethodSummary) -> str:
    if row.vs_base is None:
        return "-"
    return f"{row.vs_base:+.1f} {BASE_MARKS.get(row.against_base or '', '')}".rstrip()


def _learned(row: MethodSummary) -> str:
    measured = [r for r in row.runs if (r.get("train") or {}).get("first_loss") is not None]
    return f"{len(measured) - row.not_learned}/{len(measured)}" if measured else "-"


COLUMNS = ("rank", "method", "score % [95% CI]", "vs base", "learned", "seeds", "retention %", "forgetting pts", "PSCP",
           "trainable %", "peak mem GB", "train tok/s", "latency ms")

LEGEND = ("score: mean over seeds with a 95% t interval; (n.s.): not significantly below the task's best method "
          "(paired t-test over seeds, p >= 0.05). vs base: points against the base model; ↑ / ↓: above / below it "
          "beyond doubt, ≈: indistinguishable from it (95% interval of the difference, from the seeds and, where "
          "the metric is a mean over items, from the test items too). learned: runs whose training loss fell below "
          "90% of where it began.")


def _values(row: MethodSummary) -> list[str]:
    retention = None if row.retention is None else 100 * row.retention
    return [str(row.rank), row.method, _score(row), _vs_base(row), _learned(row), str(len(row.scores)),
            _cell(retention, ".1f"), _cell(row.forgetting_points, "+.1f"), _cell(row.pscp, ".2f"),
            _cell(row.trainable_percent, ".3f"), _cell(row.peak_memory_gb, ".2f"), _cell(row.tokens_per_s, ",.0f"),
            _cell(row.latency_ms, ".1f")]


SCORING_WORDS = {"loglik": "by log-likelihood", "generate": "by generation"}


def _title(rows: list[MethodSummary], task: str, bases: dict[str, float], others: Optional[dict] = None) -> str:
    """'sst2 (accuracy by log-likelihood, base model 72.5; by generation 26.5)'."""
    evaluation = next((r.runs[0].get("eval", {}) for r in rows if r.task == task and r.runs), {})
    metric = " ".join(filter(None, [evaluation.get("primary_metric"), SCORING_WORDS.get(evaluation.get("scoring"))]))
    base = f"base model {100 * bases[task]:.1f}" if task in bases else "no base score"
    base += "".join(f"; {SCORING_WORDS.get(s, s)} {100 * v:.1f}" for s, v in sorted((others or {}).get(task, {}).items()))
    return f"{task} ({metric + ', ' if metric else ''}{base})"


def _shown(rows: list[MethodSummary], task: str) -> tuple[list[str], list[list[str]]]:
    """The task's columns and cells, without the columns no run measured (retention without
    a retention block, ...)."""
    cells = [_values(r) for r in rows if r.task == task]
    keep = [i for i, column in enumerate(COLUMNS) if any(row[i] != "-" for row in cells)]
    return [COLUMNS[i] for i in keep], [[row[i] for i in keep] for row in cells]


def terminal_tables(rows: list[MethodSummary], bases: dict[str, float], others: Optional[dict] = None) -> list[Table]:
    tables = []
    for task in sorted({r.task for r in rows}):
        table = Table(title=_title(rows, task, bases, others), caption=verdict(rows, task), caption_justify="left")
        columns, cells = _shown(rows, task)
        for column in columns:
            table.add_column(column, justify="left" if column == "method" else "right",
                             no_wrap=column.startswith("score"))
        for row in cells:
            table.add_row(*row)
        tables.append(table)
    return tables


def _figures(rows: list[MethodSummary], bases: dict[str, float]) -> list[tuple[str, str, bytes]]:
    """(file name, caption, png) for every figure the results support."""
    figures = []
    for task in sorted({r.task for r in rows}):
        figures.append((f"scores-{task}.png", f"{task}: score by method", plots.scores_by_task(rows, task, bases.get(task))))
        for name, caption, make in ((f"rank-lr-{task}.png", f"{task}: rank x learning rate", plots.rank_lr_heatmap),
                                    (f"curves-{task}.png", f"{task}: training curves", plots.training_curves)):
            png = make(rows, task)
            if png:
                figures.append((name, caption, png))
    scatter = plots.cost_vs_score(rows)
    if scatter:
        figures.append(("cost-vs-score.png", "cost vs performance", scatter))
    plane = plots.target_vs_retention(rows, bases)
    if plane:
        figures.append(("target-vs-retention.png", "target score vs retained general ability (Pareto front marked; "
                        "dashed: interpolation paths from base to tuned, circled: best trade-off alpha; "
                        "dotted: training trajectories, checkpoint by checkpoint)", plane))
    for task in sorted({r.task for r in rows}):
        png = plots.spectral_profiles(rows, task)
        if png:
            figures.append((f"spectral-{task}.png", f"{task}: spectral retention and adaptation profiles", png))
    return figures


GEOMETRY_COLUMNS = ("task", "method", "target %", "retention %", "forgetting pts", "best alpha", "overshoot",
                    "dP fluctuation", "E fluctuation", "stable rank", "intruders", "spectrum change", "CKA",
                    "Procrustes")


def geometry_rows(rows: list[MethodSummary]) -> list[list[str]]:
    """Stability vs plasticity per method: trade-off along the path and spectral summary
    (runs analysed with `peftbench analyze interpolate|spectral`)."""
    table = []
    for row in rows:
        if row.path is None and row.spectral is None and row.retention is None:
            continue
        best, spec = (row.path or {}).get("best") or {}, row.spectral or {}
        overshoot = {True: "yes", False: "no"}.get(best.get("overshoot"), "-")
        retention = None if row.retention is None else 100 * row.retention
        table.append([row.task, row.method, f"{100 * row.mean:.1f}", _cell(retention, ".1f"),
                      _cell(row.forgetting_points, "+.1f"), _cell(best.get("best_alpha"), "g"), overshoot,
                      _cell(spec.get("retention_fluctuation"), ".3g"), _cell(spec.get("adaptation_fluctuation"), ".3g"),
                      _cell(spec.get("stable_rank"), ".2f"), _cell(spec.get("intruder_dimensions"), ".1f"),
                      _cell(spec.get("spectral_change"), ".3g"), _cell(spec.get("cka"), ".3f"),
                      _cell(spec.get("procrustes"), ".3f")])
    return table


GEOMETRY_NOTE = ("best alpha: the point of the base-to-tuned interpolation path with the best target/retention "
                 "trade-off; overshoot: it lies before alpha 1 and keeps retention the final model lost. Fluctuations "
                 "(lower = smoother), stable rank and intruder dimensions: spectral profile of the merged update; "
                 "spectrum change: relative change of the weights' singular values; CKA (1 = unchanged) and "
                 "Procrustes distance (0 = unchanged) between base and tuned hidden states on the scored prompts. "
                 "'-': not analysed (peftbench analyze interpolate|spectral RUN).")


GRADING_NOTE = ("Programs graded in the sandbox, summed over seeds. rejected: the program returned an object that is "
                "not plain data (such as a str subclass that equals everything); it is never compared, so it "
                "counts against the method, apart from wrong answers (failed) and crashes or early exits (error).")


def grading_rows(results: list[dict]) -> list[list[str]]:
    """[task, method, metric, passed, failed, error, timeout, rejected] for runs graded by execution."""
    from peftbench.sandbox import STATUSES

    totals: dict[tuple, dict] = {}
    for run in results:
        for metric, found in ((run.get("eval") or {}).get("grading") or {}).items():
            if "counts" not in found:
                continue
            key = (run.get("task"), run.get("method"), metric)
            counts = totals.setdefault(key, dict.fromkeys(STATUSES, 0))
            for status, n in (found.get("counts") or {}).items():
                counts[status] = counts.get(status, 0) + n
    return [[*map(str, key), *(str(counts[s]) for s in STATUSES)] for key, counts in sorted(totals.items())]


GRADING_COLUMNS = ("task", "method", "metric", "passed", "failed", "error", "timeout", "rejected")


GAP_COLUMNS = ("method", "trained-on %", "transfer %", "gap pts [95% CI]", "seeds")
GAP_NOTE = ("gap: score on the task trained on minus score on the transfer task, per seed, with a 95% t interval over "
            "seeds; a smaller gap transfers better, where the method learned the task at all (one at the base score "
            "has no gain to lose).")


def gap_sections(results: list[dict]) -> list[tuple[str, list[list[str]]]]:
    """(title, rows) per transfer pair: each method's two scores and the gap between them."""
    sections: dict[str, list[list[str]]] = {}
    for gap in transfer_gaps(results):
        interval = f" [{gap.low:+.1f}, {gap.high:+.1f}]" if len(gap.seeds) > 1 else ""
        sections.setdefault(f"transfer gap: {gap.task} -> {gap.transfer}", []).append(
            [gap.method, f"{100 * gap.source:.1f}", f"{100 * gap.target:.1f}", f"{gap.gap:+.1f}{interval}",
             str(len(gap.seeds))])
    return list(sections.items())


def gap_tables(results: list[dict]) -> list[Table]:
    tables = []
    for title, rows in gap_sections(results):
        table = Table(title=title, caption=GAP_NOTE, caption_justify="left")
        for column in GAP_COLUMNS:
            table.add_column(column, justify="left" if column == "method" else "right", no_wrap=column.startswith("gap"))
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    return tables


def _markdown_table(rows: list[MethodSummary], task: str) -> str:
    columns, cells = _shown(rows, task)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def write_markdown(out: Path, rows, bases, ranks, figures, grading=(), gaps=(), others=None, pscp=((), None),
                   warnings=()) -> Path:
    parts = ["# peftbench report", "", *[f"**Warning:** {w}" for w in warnings], "", LEGEND, ""]
    for task in sorted({r.task for r in rows}):
        parts += [f"## {_title(rows, task, bases, others)}", "", _markdown_table(rows, task), "",
                  f"**Verdict.** {verdict(rows, task)}", ""]
    for title, gap_rows in gaps:
        parts += [f"## {title[0].upper()}{title[1:]}", "", GAP_NOTE, "", "| " + " | ".join(GAP_COLUMNS) + " |",
                  "|" + "---|" * len(GAP_COLUMNS)] + ["| " + " | ".join(r) + " |" for r in gap_rows] + [""]
    if pscp[0]:
        from peftbench.report.pscp_table import PSCP_COLUMNS, pscp_note

        parts += ["## PSCP by method", "", pscp_note(pscp[1]), "", "| " + " | ".join(PSCP_COLUMNS) + " |",
                  "|" + "---|" * len(PSCP_COLUMNS)] + ["| " + " | ".join(r) + " |" for r in pscp[0]] + [""]
    parts += ["## Mean rank across tasks", "", "| method | mean rank |", "|---|---|"]
    parts += [f"| {m} | {r:.2f} |" for m, r in ranks.items()] + [""]
    geometry = geometry_rows(rows)
    if geometry:
        parts += ["## Stability vs plasticity", "", GEOMETRY_NOTE, "", "| " + " | ".join(GEOMETRY_COLUMNS) + " |",
                  "|" + "---|" * len(GEOMETRY_COLUMNS)]
        parts += ["| " + " | ".join(r) + " |" for r in geometry] + [""]
    if grading:
        parts += ["## Code grading", "", GRADING_NOTE, "", "| " + " | ".join(GRADING_COLUMNS) + " |",
                  "|" + "---|" * len(GRADING_COLUMNS)]
        parts += ["| " + " | ".join(r) + " |" for r in grading] + [""]
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name, caption, png in figures:
        (out / "plots" / name).write_bytes(png)
        parts += [f"![{caption}](plots/{name})", ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(parts))
    return path


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1f2933}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #cbd2d9;padding:4px 8px;font-size:13px}
th{background:#f0f4f8}td.num{text-align:right}tr.ns td{color:#7b8794}img{max-width:100%;margin:0.5em 0 1.5em}
figure{margin:0}figcaption{font-size:13px;color:#52606d}"""


def write_html(out: Path, rows, bases, ranks, figures, grading=(), gaps=(), others=None, pscp=((), None),
               warnings=()) -> Path:
    body = ["<h1>peftbench report</h1>", *[f"<p class='warning'><strong>Warning:</strong> {html.escape(w)}</p>"
                                          for w in warnings], f"<p>{html.escape(LEGEND)} Grey rows: (n.s.).</p>"]
    for task in sorted({r.task for r in rows}):
        columns, shown = _shown(rows, task)
        body.append(f"<h2>{html.escape(_title(rows, task, bases, others))}</h2><table><tr>"
                    + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr>")
        for row, values in zip((r for r in rows if r.task == task), shown):
            cells = "".join(f"<td{'' if i == 1 else ' class=num'}>{html.escape(v)}</td>" for i, v in enumerate(values))
            body.append(f"<tr class='method-row{' ns' if row.not_significant else ''}' data-method='{html.escape(row.method)}'>"
                        f"{cells}</tr>")
        body.append(f"</table><p class='verdict'><strong>Verdict.</strong> {html.escape(verdict(rows, task))}</p>")
    for title, gap_rows in gaps:
        body.append(f"<h2>{html.escape(title[0].upper() + title[1:])}</h2><p>{html.escape(GAP_NOTE)}</p><table><tr>"
                    + "".join(f"<th>{html.escape(c)}</th>" for c in GAP_COLUMNS) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td{' class=num' if i else ''}>{html.escape(v)}</td>"
                                               for i, v in enumerate(r)) + "</tr>" for r in gap_rows) + "</table>")
    if pscp[0]:
        from peftbench.report.pscp_table import PSCP_COLUMNS, pscp_note

        body.append(f"<h2>PSCP by method</h2><p>{html.escape(pscp_note(pscp[1]))}</p><table><tr>"
                    + "".join(f"<th>{html.escape(c)}</th>" for c in PSCP_COLUMNS) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td{' class=num' if i > 1 else ''}>{html.escape(v)}</td>"
                                               for i, v in enumerate(r)) + "</tr>" for r in pscp[0]) + "</table>")
    body.append("<h2>Mean rank across tasks</h2><table><tr><th>method</th><th>mean rank</th></tr>"
                + "".join(f"<tr><td>{html.escape(m)}</td><td class=num>{r:.2f}</td></tr>" for m, r in ranks.items())
                + "</table>")
    geometry = geometry_rows(rows)
    if geometry:
        body.append(f"<h2>Stability vs plasticity</h2><p>{html.escape(GEOMETRY_NOTE)}</p><table><tr>"
                    + "".join(f"<th>{html.escape(c)}</th>" for c in GEOMETRY_COLUMNS) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td{' class=num' if i > 1 else ''}>{html.escape(v)}</td>"
                                               for i, v in enumerate(r)) + "</tr>" for r in geometry)
                    + "</table>")
    if grading:
        body.append(f"<h2>Code grading</h2><p>{html.escape(GRADING_NOTE)}</p><table><tr>"
                    + "".join(f"<th>{html.escape(c)}</th>" for c in GRADING_COLUMNS) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td{' class=num' if i > 2 else ''}>{html.escape(v)}</td>"
                                               for i, v in enumerate(r)) + "</tr>" for r in grading)
                    + "</table>")
    for _name, caption, png in figures:
        data = base64.b64encode(png).decode()
        body.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>peftbench report</title><style>{_STYLE}</style>"
            f"</head><body>{''.join(body)}</body></html>")
    path = out / "report.html"
    atomic_write_text(path, page)
    return path


def pscp_section(results: list[dict], beta: Optional[float]) -> list[list[str]]:
    from peftbench.report.pscp_table import method_costs, pscp_rows

    return pscp_rows(method_costs(results), beta)


def pscp_table(rows: list[list[str]], beta: Optional[float]) -> Table:
    from peftbench.report.pscp_table import PSCP_COLUMNS, pscp_note

    table = Table(title="PSCP by method", caption=pscp_note(beta), caption_justify="left")
    for column in PSCP_COLUMNS:
        table.add_column(column, justify="left" if column in ("method", "tasks of") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def build_report(root: Path, out: Optional[Path] = None, run_ids: Optional[set] = None, pscp_beta=None):
    """Load the runs under `root` (only `run_ids` when given: a suite's current runs, not
    leftovers of an earlier version of it), write report.md and report.html to `out`
    (default: root)."""
    results = [r for r in load_runs(root) if run_ids is None or r.get("run_id") in run_ids]
    rows = summarise(results)
    if not rows:
        raise FileNotFoundError(f"no finished runs under {root}")
    bases = base_scores(results)
    ranks = mean_ranks(rows)
    out = Path(out or root)
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(rows, bases)
    grading, gaps, others = grading_rows(results), gap_sections(results), other_base_scores(results)
    pscp = (pscp_section(results, pscp_beta), pscp_beta)
    warnings = mixed_versions(results)
    return (terminal_tables(rows, bases, others) + gap_tables(results) + ([pscp_table(*pscp)] if pscp[0] else []),
            write_markdown(out, rows, bases, ranks, figures, grading, gaps, others, pscp, warnings),
            write_html(out, rows, bases, ranks, figures, grading, gaps, others, pscp, warnings))
