"""findings.md and findings.html: per claim the verdict, the numbers, the test and the
paper's own figure; the target-vs-retention plane and the rank x lr heatmap beside them."""

from __future__ import annotations

import base64
import html
from datetime import date
from pathlib import Path

from peftbench.findings.claims import CLAIMS, Verdict
from peftbench.io import atomic_write_text

MARKS = {"holds": "holds", "does not hold": "does not hold", "inconclusive": "inconclusive"}


def _figures(experiments: dict[str, list[dict]]) -> list[tuple[str, str, bytes]]:
    from peftbench.report import plots
    from peftbench.report.summary import base_scores, summarise

    figures = []
    methods = experiments.get("methods") or []
    if methods:
        rows, bases = summarise(methods), base_scores(methods)
        plane = plots.target_vs_retention(rows, bases)
        if plane:
            figures.append(("findings-plane.png", "claims 7-10: target score vs retained general ability", plane))
    grid = experiments.get("rank-lr") or []
    if grid:
        rows = summarise(grid)
        for task in sorted({r.task for r in rows}):
            png = plots.rank_lr_heatmap(rows, task)
            if png:
                figures.append((f"findings-rank-lr-{task}.png", f"claim 6: LoRA rank x learning rate on {task}", png))
    return figures


def table_rows(verdicts: list[Verdict]) -> list[list[str]]:
    return [[str(v.claim), CLAIMS.get(str(v.claim)).study, CLAIMS.get(str(v.claim)).text, MARKS[v.verdict], v.reason]
            for v in verdicts]


def write_findings(out: Path, verdicts: list[Verdict], experiments: dict[str, list[dict]], model: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(experiments)
    head = f"Model: {model}. Computed on {date.today().isoformat()} by `peftbench findings` from the runs under {out}."
    md = ["# Findings", "", head, "", "| claim | study | claim | verdict | why |", "|---|---|---|---|---|"]
    md += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in table_rows(verdicts)] + [""]
    for v in verdicts:
        claim = CLAIMS.get(str(v.claim))
        md += [f"## {v.claim}. {claim.text}", "", f"**{MARKS[v.verdict]}**: {v.reason}", "",
               f"Paper: {claim.paper}. Test: {v.test or '-'}.", ""]
        md += [f"- {label}: {figure}" for label, figure in v.numbers.items()] + [""]
    (out / "plots").mkdir(exist_ok=True)
    for name, caption, png in figures:
        (out / "plots" / name).write_bytes(png)
        md += [f"![{caption}](plots/{name})", ""]
    markdown = atomic_write_text(out / "findings.md", "\n".join(md))
    from dataclasses import asdict

    from peftbench.io import atomic_write_json

    atomic_write_json(out / "findings.json", {"model": model, "date": date.today().isoformat(),
                                              "verdicts": [asdict(v) for v in verdicts]})
    body = [f"<h1>Findings</h1><p>{html.escape(head)}</p><table><tr><th>claim</th><th>study</th><th>claim</th>"
            "<th>verdict</th><th>why</th></tr>"]
    body += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table_rows(verdicts)]
    body.append("</table>")
    for v in verdicts:
        claim = CLAIMS.get(str(v.claim))
        items = "".join(f"<li>{html.escape(k)}: {html.escape(f)}</li>" for k, f in v.numbers.items())
        body.append(f"<h2>{v.claim}. {html.escape(claim.text)}</h2><p><strong>{MARKS[v.verdict]}</strong>: "
                    f"{html.escape(v.reason)}</p><p>Paper: {html.escape(claim.paper)}. Test: "
                    f"{html.escape(v.test or '-')}.</p><ul>{items}</ul>")
    for _, caption, png in figures:
        body.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,"
                    f"{base64.b64encode(png).decode()}'><figcaption>{html.escape(caption)}</figcaption></figure>")
    style = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px}td,th{border:1px solid #ccc;padding:4px}"
    page = atomic_write_text(out / "findings.html", f"<!doctype html><html><head><meta charset='utf-8'><title>findings"
                             f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>")
    return markdown, page
