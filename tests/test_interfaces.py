"""The interfaces users of the field expect: --version, env, flat CSV / JSON-lines results."""

import csv
import json

import pytest

from peftbench.cli import main


def write_run(root, run_id, **metrics):
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"run_id": run_id, "status": "done", **metrics}))


def test_version(capsys):
    from peftbench import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"peftbench {__version__}"


def test_env_names_versions_and_the_sandbox(capsys):
    assert main(["env"]) == 0
    printed = capsys.readouterr().out
    assert "transformers" in printed and "peft" in printed and "code sandbox" in printed


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_flat_results_round_trip(tmp_path, fmt):
    write_run(tmp_path / "runs", "lora-t-s0", task="t", method="lora", seed=0,
              eval={"score": 0.75, "primary_metric": "accuracy", "scoring": "loglik"},
              cost={"trainable_params": 1234, "peak_memory_bytes": 2e9}, transfer={"t2": {"score": 0.5}},
              versions={"transformers": "5.24.0"})
    write_run(tmp_path / "runs", "base-t", task="t", method="base", eval={"score": 0.5})
    out = tmp_path / f"results.{fmt}"
    assert main(["report", str(tmp_path / "runs"), "--format", fmt, "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open())) if fmt == "csv" else [json.loads(line) for line in out.open()]
    assert [r["run_id"] for r in rows] == ["base-t", "lora-t-s0"]
    lora = rows[1]
    assert float(lora["score"]) == 0.75 and int(lora["trainable_params"]) == 1234
    assert float(lora["peak_memory_gb"]) == 2.0 and json.loads(lora["transfer"]) == {"t2": 0.5}
    assert lora["transformers"] == "5.24.0"


def test_an_external_task_yaml_runs_through_include_path(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "my_tasks"
    folder.mkdir()
    (folder / "mine.yaml").write_text(
        'name: my-sst2\ndescription: "SST-2 from my own folder"\n'
        'source: {hub: nyu-mll/glue, config: sst2, splits: {train: train, test: validation}}\n'
        'prompt: "{{ sentence }}\\nSentiment:"\ntarget: " {{ pick([\'negative\', \'positive\'], label) }}"\n'
        'extractor: label\nmetrics: [accuracy]\n')
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"sentence": f"a {w} film", "label": y, "idx": i}) + "\n"
                            for i, (w, y) in enumerate([("fine", 1), ("dull", 0), ("great", 1), ("bad", 0)])))
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: ext\nmodel: {{name: tiny-random-llama, device: cpu}}\nmethods: [lora]\n"
                     f"tasks: [{{name: my-sst2, data_files: {{train: {data}, test: {data}}}}}]\n"
                     f"train: {{max_steps: 2, batch_size: 2}}\noutput_dir: {tmp_path / 'runs'}\n")
    result = subprocess.run([sys.executable, "-m", "peftbench", "run", str(suite), "--include-path", str(folder),
                             "--no-progress"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "my-sst2 (accuracy" in result.stdout
    unknown = subprocess.run([sys.executable, "-m", "peftbench", "run", str(suite), "--dry-run"],
                             capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2 and "unknown task 'my-sst2'" in unknown.stderr


def test_eval_scores_a_base_model_on_several_tasks_with_lm_eval_habits(tmp_path, capsys):
    out = tmp_path / "scores.json"
    assert main(["eval", "--model", "micro", "--tasks", "micro-sentiment,micro-nli", "--limit", "8",
                 "--num-fewshot", "1", "--no-progress", "--out", str(out)]) == 0
    scores = json.loads(out.read_text())
    assert set(scores) == {"micro-sentiment", "micro-nli"} and all(s["samples"] == 8 for s in scores.values())
    assert scores["micro-nli"]["records"][0]["prompt"].count("Answer:") == 2  # one solved example before it
    assert "micro-nli" in capsys.readouterr().out


def test_a_plugin_registers_its_task_through_the_entry_point_group(tmp_path):
    import subprocess
    import sys

    (tmp_path / "my_plugin.py").write_text(
        "from peftbench.tasks import Example, Task, register_task\n"
        "register_task(Task(name='plugin-task', description='from a plugin', "
        "load_split=lambda split: [Example(prompt='x', answer=' y')]))\n")
    dist = tmp_path / "my_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[peftbench.plugins]\nmine = my_plugin\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    listed = subprocess.run([sys.executable, "-m", "peftbench", "list", "tasks"], capture_output=True, text=True,
                            timeout=300, env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "plugin-task" in listed.stdout


def test_every_command_shows_examples_that_parse():
    import re
    import shlex

    from peftbench.cli import COMMAND_EXAMPLES, build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    assert set(COMMAND_EXAMPLES) == set(commands)
    for name, command in commands.items():
        assert "examples:" in command.format_help()
        for line in COMMAND_EXAMPLES[name]:
            inner = re.search(r"\$\((peftbench [^)]*)\)", line)
            words = shlex.split(inner.group(1) if inner else line)
            assert words[0] == "peftbench" and words[1] == name, line
            parser.parse_args(words[1:])  # exits (SystemExit) on an option that does not exist


def _complete(script: str, *words: str) -> list[str]:
    import shutil
    import subprocess

    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    line = " ".join(f"'{w}'" for w in words)
    program = f'{script}\nCOMP_WORDS=(peftbench {line}); COMP_CWORD={len(words)}; _peftbench; echo "${{COMPREPLY[@]}}"'
    return subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True).stdout.split()


def test_bash_completion_offers_commands_options_and_shipped_suites(capsys):
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert _complete(script, "ru") == ["run"]
    assert "quickstart" in _complete(script, "run", "") and "real-sentiment" in _complete(script, "run", "re")
    assert _complete(script, "merge", "--push") == ["--push-to-hub"]
    assert _complete(script, "list", "m") == ["methods"]
    assert main(["completion", "zsh"]) == 0 and "bashcompinit" in capsys.readouterr().out
