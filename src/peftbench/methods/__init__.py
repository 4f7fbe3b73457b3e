"""The PEFT method registry. Importing this package registers every built-in method."""

from peftbench.methods.base import (
    METHODS, InjectedMethod, Method, MethodContext, MethodParams, MethodUnavailableError, NotMergeableError,
    PeftMethod, register_method,
)
from peftbench.methods import (  # noqa: F401  (each module registers its methods)
    additive, bitfit, bottleneck, full, hybrid, lntuning, lora, orthogonal, passthrough, soft_prompt, svft,
)

__all__ = [
    "METHODS", "InjectedMethod", "Method", "MethodContext", "MethodParams", "MethodUnavailableError",
    "NotMergeableError", "PeftMethod", "register_method",
]
