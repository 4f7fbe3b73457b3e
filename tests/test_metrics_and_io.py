import pytest

from peftbench.io import atomic_write_dir, atomic_write_json, read_json
from peftbench.metrics import METRICS, accuracy, exact_match, normalize_text


def test_accuracy_hand_example():
    assert accuracy([" positive", "negative", "positive"], ["positive", "negative", "negative"]) == pytest.approx(2 / 3)


def test_exact_match_normalises_case_punctuation_space():
    assert normalize_text("  The  Answer, is: 42! ") == "the answer is 42"
    assert exact_match(["Paris.", "london"], ["paris", "Berlin"]) == 0.5


def test_metric_length_mismatch_raises():
    with pytest.raises(ValueError):
        METRICS.get("accuracy")(["a"], ["a", "b"])


def test_atomic_json_replaces_whole(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"a": 2})
    assert read_json(path) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temp files left


def test_atomic_dir_keeps_old_on_failure(tmp_path):
    target = tmp_path / "adapter"
    atomic_write_dir(target, lambda d: (d / "w.bin").write_text("old"))

    def broken(d):
        (d / "w.bin").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write_dir(target, broken)
    assert (target / "w.bin").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path):
    """mkstemp creates 0600 files: a report.html nobody else could read when served."""
    import stat

    from peftbench.io import atomic_write_text

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = atomic_write_text(tmp_path / "report.html", "<html></html>")
    assert stat.S_IMODE(written.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
