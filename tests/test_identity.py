"""A result is the result of its config, its tasks' specs and the results format: a fixed
template is a new run and a fresh base evaluation, never a stale score served again; and a
report that mixes versions says so."""

from peftbench.validate import validate_run_config
from peftbench.report.summary import mixed_versions
from peftbench.tasks import TASKS
from peftbench.tasks.spec import TaskSpec

SPEC = {"name": "tmp-sentiment", "description": "a test task", "source": {"hub": "x/y"},
        "prompt": "Review: {{ sentence }}\nSentiment:", "target": " {{ pick(['negative', 'positive'], label) }}",
        "extractor": "label", "metrics": ["accuracy"]}


def register(**changes):
    TASKS.register("tmp-sentiment", TaskSpec.model_validate({**SPEC, **changes}).to_task(), overwrite=True)


def test_a_changed_template_is_a_new_run_and_a_fresh_base_evaluation(tmp_path):
    from peftbench.run import base_eval_path, run_id

    raw = {"method": "lora", "task": {"name": "tmp-sentiment"}, "output_dir": str(tmp_path)}
    try:
        register()
        cfg = validate_run_config(raw)
        before = run_id(cfg), base_eval_path(str(tmp_path), "s", cfg.model, cfg.task, cfg.eval)
        register(prompt="Review: {{ sentence }}\nIs it positive or negative?")
        after = run_id(cfg), base_eval_path(str(tmp_path), "s", cfg.model, cfg.task, cfg.eval)
        assert before[0] != after[0] and before[1] != after[1]
        register(prompt="Review: {{ sentence }}\nIs it positive or negative?", version=2)
        assert run_id(cfg) != after[0]  # a version bump alone is a new identity too
        register(description="reworded, nothing scored differently", prompt="Review: {{ sentence }}\nIs it positive or negative?", version=2)
        assert run_id(cfg) == run_id(validate_run_config(raw))
        assert TASKS.get("tmp-sentiment").fingerprint["version"] == 2
    finally:
        TASKS.unregister("tmp-sentiment")


def test_every_catalog_task_has_a_version_and_a_spec_digest():
    from peftbench.tasks.catalog import CATALOG_DIR
    from peftbench.tasks.spec import load_spec_file

    specs = [spec for path in CATALOG_DIR.glob("*.yaml") for spec in load_spec_file(path)[0]]
    assert len(specs) > 60 and all(s.version >= 1 for s in specs)
    assert len({s.digest for s in specs}) == len(specs)  # each spec its own fingerprint
    assert "version: 1" in (CATALOG_DIR / "glue.yaml").read_text()


def test_the_report_warns_when_results_mix_versions():
    def result(transformers, digest="a"):
        return {"run_id": transformers + digest, "task": "t", "method": "lora", "status": "done",
                "versions": {"results_format": 2, "peftbench": "0.1.0", "transformers": transformers, "peft": "0.21.2",
                             "torch": "2.13.0", "tasks": {"t": {"version": 1, "digest": digest}}}}

    assert mixed_versions([result("5.24.0"), result("5.24.0")]) == []
    (warning,) = mixed_versions([result("5.23.0"), result("5.24.0")])
    assert "transformers 5.23.0 and 5.24.0" in warning
    (warning,) = mixed_versions([result("5.24.0", "a"), result("5.24.0", "b")])
    assert "task t under 2 different specs" in warning
    assert any("unrecorded" in w for w in mixed_versions([result("5.24.0"), {"run_id": "old", "task": "t"}]))
