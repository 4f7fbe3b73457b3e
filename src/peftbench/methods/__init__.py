"""The PEFT method registry. Importing this package registers every built-in method."""

from peftbench.methods.base import METHODS, Method, MethodParams, PeftMethod, register_method
from peftbench.methods import lora  # noqa: F401  (registers "lora")

__all__ = ["METHODS", "Method", "MethodParams", "PeftMethod", "register_method"]
