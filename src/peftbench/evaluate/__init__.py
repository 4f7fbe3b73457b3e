from peftbench.evaluate.evaluator import evaluate_task

__all__ = ["evaluate_task"]
