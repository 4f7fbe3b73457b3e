"""Catalog metrics and extractors against hand-worked examples."""

import pytest

from peftbench.metrics import get_metric
from peftbench.tasks import EXTRACTORS


def m(name, predictions, references):
    return get_metric(name)(predictions, references)


def test_macro_and_binary_f1_precision_recall():
    assert m("macro_f1", ["yes", "no", "yes", "no"], ["yes", "yes", "no", "no"]) == pytest.approx(0.5)
    assert m("f1:yes", ["yes", "yes", "no"], ["yes", "no", "no"]) == pytest.approx(2 / 3)
    # class a: P 2/3, R 1; class b: P 1, R 1/2
    assert m("macro_precision", ["a", "a", "a", "b"], ["a", "b", "a", "b"]) == pytest.approx(5 / 6)
    assert m("macro_recall", ["a", "a", "a", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.75)
    assert m("macro_f1", ["Yes", "no"], ["yes", "No"]) == 1.0  # labels compared case-insensitively


def test_matthews_correlation():
    # TP 1, FP 1, TN 2, FN 0 -> (1*2 - 1*0) / sqrt(2*1*3*2)
    assert m("mcc", ["1", "1", "0", "0"], ["1", "0", "0", "0"]) == pytest.approx(2 / 12 ** 0.5)
    assert m("mcc", ["1", "1"], ["1", "0"]) == 0.0  # a constant prediction carries no information


def test_pearson_and_spearman_with_ties():
    assert m("pearson", ["1", "2", "3"], ["2", "4", "7"]) == pytest.approx(5 / (2 ** 0.5 * (38 / 3) ** 0.5))
    # ranks of [1, 2, 2, 3] are [1, 2.5, 2.5, 4]
    assert m("spearman", ["1", "2", "2", "3"], ["10", "20", "30", "40"]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)


def test_text_overlap_metrics():
    assert m("token_f1", ["the cat sat"], ["a cat sat down"]) == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert m("token_f1", ["Canberra"], [["Sydney", "Canberra, ACT"]]) == pytest.approx(2 / 3)
    assert m("token_jaccard", ["the cat sat"], ["cat sat down"]) == pytest.approx(0.5)
    assert m("exact_match", ["Canberra"], [["Sydney", "canberra."]]) == 1.0
    assert m("exact_match_ci", [" (a) "], ["(A)"]) == 1.0 and m("exact_match_ci", [""], [") ]"]) == 0.0
    assert m("bleu", ["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert m("bleu", ["dogs bark loudly"], ["the cat sat on the mat"]) == 0.0


def test_math_exact_match_is_symbolic():
    assert m("math_em", ["\\frac{1}{2}"], ["0.5"]) == 1.0
    assert m("math_em", ["so the answer is $\\boxed{4}$"], ["4"]) == 1.0
    assert m("math_em", ["72"], ["Natalia sold 48/2 = 24 clips.\n#### 72"]) == 1.0
    assert m("math_em", ["1,234"], ["1234"]) == 1.0
    assert m("math_em", ["73"], ["72"]) == 0.0
    assert m("math_em", ["\\boxed{\\frac{1}{3}}"], ["0.5"]) == 0.0


def test_extractors():
    assert EXTRACTORS.get("final_number")("3 + 4 = 7 apples.\n#### 7") == "7"
    assert EXTRACTORS.get("final_number")("The total is 1,234.") == "1234"
    assert EXTRACTORS.get("choice_letter")("(B) because it conducts") == "B"
    assert EXTRACTORS.get("choice_letter")("Answer: C.") == "C"
    assert EXTRACTORS.get("label")(" Positive.\nmore text") == "positive"
    assert EXTRACTORS.get("code")("Here:\n```python\ndef f():\n    return 1\n```\nDone") == "def f():\n    return 1"
    assert EXTRACTORS.get("code")("    return x\n") == "    return x"


def test_pass_at_k_over_samples_matches_the_closed_form():
    tests = "assert f(2) == 4"
    right, wrong = "def f(x): return 2 * x", "def f(x): return x"
    samples = [[right, wrong, wrong, wrong, wrong]]
    assert m("pass@1", samples, [tests]) == pytest.approx(1 / 5)  # 1 - C(4,1)/C(5,1)
    assert m("pass@5", samples, [tests]) == 1.0
    with pytest.raises(ValueError, match="num_samples"):
        m("pass@10", samples, [tests])


def test_codebleu_identical_code_scores_one_and_different_code_less():
    code = "def add(a, b):\n    total = a + b\n    return total"
    assert m("codebleu", [code], [code]) == pytest.approx(1.0)
    assert m("codebleu", ["def g(y):\n    return y * 2"], [code]) < 0.6


def test_peft_bench_scores_an_invalid_answer_as_wrong_where_sklearn_makes_it_a_class_of_its_own():
    from peftbench.metrics import get_metric
    from peftbench.metrics.classification import invalid_as_wrong

    references = [" positive", " negative", " negative", " positive"]
    predictions = ["positive", "The review is negative", "negative", "maybe"]
    fixed, replaced = invalid_as_wrong(predictions, references, ["negative", "positive"])
    assert replaced == 2 and fixed == ["positive", "positive", "negative", "negative"]
    f1 = get_metric("f1:positive")
    # own class: tp 1, fp 0, fn 1 -> P 1, R 0.5, F1 2/3; as wrong: tp 1, fp 1, fn 1 -> F1 1/2
    assert f1(predictions, references) == pytest.approx(2 / 3)
    assert f1(fixed, references) == pytest.approx(0.5)
    assert get_metric("precision:positive")(fixed, references) == pytest.approx(0.5)
    assert get_metric("recall:positive")(fixed, references) == pytest.approx(0.5)
    # of more labels: the first one that is not the reference
    assert invalid_as_wrong(["?", "?"], ["a", "b"], ["a", "b", "c"])[0] == ["b", "a"]


def test_several_samples_are_scored_avg_at_n_and_pass_at_k_sees_them_all():
    from peftbench.evaluate.evaluator import grade

    references = ["a", "a", "b"]
    samples = [["a", "b"], ["a", "a"], ["c", "b"]]  # sample 0: 2 of 3 right, sample 1: 2 of 3
    score = grade("accuracy", samples, references)
    assert float(score) == pytest.approx(2 / 3) and score.details["avg_of"] == 2
    assert score.details["per_item"] == [0.5, 1.0, 0.5]
    assert float(grade("accuracy", [["a", "b"], ["b", "b"], ["b", "b"]], references)) == pytest.approx(0.5)
