"""PSCP, PEFT-Bench's "PEFT Soft Score Penalties": one number folding cost into the score.

    PSCP = P * (1 + M_p/C_p)^(-b_p) * (1 + M_f/C_f)^(-b_f) * (1 + M_m/C_m)^(-b_m)

P: task score (0-100); M_p: trainable parameters; M_f: *extra* inference TFLOPs over
the base model for one forward pass of a 1 x 512-token batch; M_m: peak training memory
in GB. Defaults are the paper's constants.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PscpConstants:
    c_params: float = 5e8
    c_flops_tflops: float = 10.0
    c_memory_gb: float = 94.0
    b_params: float = 1.0
    b_flops: float = 1.0
    b_memory: float = 1.0


def pscp(score: float, trainable_params: float, extra_tflops: float, memory_gb: float,
         constants: PscpConstants = PscpConstants()) -> float:
    for name, value in (("trainable_params", trainable_params), ("extra_tflops", extra_tflops), ("memory_gb", memory_gb)):
        if value < 0:
            raise ValueError(f"PSCP: {name} must be >= 0, got {value}")
    c = constants
    return (
        score
        * (1 + trainable_params / c.c_params) ** -c.b_params
        * (1 + extra_tflops / c.c_flops_tflops) ** -c.b_flops
        * (1 + memory_gb / c.c_memory_gb) ** -c.b_memory
    )
