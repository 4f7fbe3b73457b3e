from peftbench.train.sft import TrainResult, train_sft

__all__ = ["TrainResult", "train_sft"]
