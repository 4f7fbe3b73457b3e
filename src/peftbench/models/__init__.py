from peftbench.models.builtin import BUILTIN_MODELS, builtin_model_path
from peftbench.models.loading import load_model, load_model_and_tokenizer, load_tokenizer, resolve_device

__all__ = [
    "BUILTIN_MODELS",
    "builtin_model_path",
    "load_model",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "resolve_device",
]
