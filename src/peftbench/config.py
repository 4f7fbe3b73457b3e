"""Typed configuration: YAML in, validated pydantic models out, clear errors for bad input.

Validation happens in two passes so every fault is reported at once, before any model
loads: pydantic checks the shape and types of the whole document, then each method's
own hyper-parameter model checks `method.*` and the task registry checks `task.name`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from peftbench.errors import PeftbenchError

DEFAULT_MODEL = "tiny-random-llama"


class _Strict(BaseModel):
    # inf and nan pass `gt=0` (lr: 1e400 reads as inf) and diverge only after the model loaded
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# suite and run names become folder names under output_dir: no path separators, no '.' or '..'
NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
NAME_RULE = "letters, digits, '_', '-' and '.', not starting with '.' (it names a folder under output_dir)"


def _folder_name(value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise ValueError(f"got {value!r}; use {NAME_RULE}")
    return value


def _output_folder(value: str) -> str:
    if Path(value).exists() and not Path(value).is_dir():
        raise ValueError(f"{value!r} is a file; give a folder for the runs (it is created if missing)")
    return value


class ModelConfig(_Strict):
    """Which base model: a built-in name, a hub id, a local folder, or a GGUF file in either."""

    name: str = Field(DEFAULT_MODEL, min_length=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    device: str = "auto"
    revision: Optional[str] = None
    trust_remote_code: bool = False
    gguf_file: Optional[str] = Field(
        None, description="a .gguf file inside `name` (a folder or hub repo): loaded through transformers' GGUF "
        "support and dequantised to float32 (needs the gguf package)")
    system_prompt: Optional[str] = Field(
        None, description="a system message before every prompt (training and scoring): its own turn in the chat "
        "template, or the prompt's first paragraph without one")
    chat_template: bool = Field(
        True, description="wrap every prompt (training and scoring) in the tokenizer's chat template when it has "
        "one; false: plain text, as lm-evaluation-harness scores by default (and a third of the tokens of a short "
        "example on SmolLM2-Instruct, whose template adds a system prompt)")

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"got {value!r}; allowed: auto, cpu, mps, cuda, cuda:N")
        return value


class MethodConfig(BaseModel):
    """A PEFT method by name; every other key is one of that method's hyper-parameters."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    name: str = Field(min_length=1)
    # Methods differ in the learning rate they need (full fine-tuning ~1e-4, LoRA ~1e-3,
    # soft prompts ~1e-2, as in PEFT-Bench's protocol): a method entry may set its own.
    lr: Optional[float] = Field(None, gt=0, description="this method's learning rate (overrides train.lr)")
    validation_fraction: Optional[float] = Field(
        None, gt=0, le=0.5, description="this method's validation hold-out (overrides the tasks'; PEFT-Bench holds "
        "out 20% for prefix tuning, 10% for the others)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskConfig(_Strict):
    """A task by name, with caps on how many examples to use and the seed that picks them."""

    name: str = Field(min_length=1)
    max_train: Optional[int] = Field(None, gt=0)
    max_eval: Optional[int] = Field(None, gt=0)
    sample_seed: int = 0
    allow_code_execution: bool = Field(False, description="run model-generated code (in the sandbox) to grade it")
    data_files: Optional[dict[str, str]] = Field(
        None, description="split -> local file in the real dataset's schema (.jsonl/.json/.csv/.parquet), instead of the hub")
    validation_fraction: Optional[float] = Field(
        None, gt=0, le=0.5, description="hold out this fraction of train as the validation split (PEFT-Bench: 0.1); "
        "default: the task's own validation split")
    eval_split: Optional[str] = Field(None, description="split to score on (default: the task's test split); "
                                      "hyper-parameter trials score on 'validation'")
    max_new_tokens: Optional[int] = Field(None, gt=0, description="generation budget for this task (default: "
                                          "eval.max_new_tokens): short-answer tasks beside long code tasks")
    few_shot: Optional[int] = Field(
        None, ge=0, description="k solved training examples (a fixed seeded draw) in front of every prompt scored; "
        "training prompts carry none. Default: the task's own (zero-shot for all built-in tasks)")
    metrics: Optional[list[str]] = Field(None, min_length=1, description="the metrics to report instead of the "
                                         "task's own (a protocol's: pass@1 and pass@5 for HumanEval); the first "
                                         "ranks unless `primary` says otherwise")
    primary: Optional[str] = Field(None, description="the metric the leaderboard ranks by, one of the task's "
                                   "metrics (default: the task's own primary)")
    scoring: Optional[Literal["loglik", "generate"]] = Field(
        None, description="how answers are scored: loglik picks the most likely of the task's candidate answers "
        "(lm-evaluation-harness's way for classification), generate decodes and extracts an answer (PEFT-Bench's "
        "way); default: the task's own")
    transfer: Optional[list["TaskConfig"]] = Field(
        None, description="other tasks the trained model is also scored on, each with its own templates and "
        "data (train on SST-2, test on IMDB); each is a leaderboard task of its own, 'this -> that', against "
        "the base model on it, with the gap to this task's score")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


TaskConfig.model_rebuild()


class GrpoConfig(_Strict):
    """RL with verifiable rewards (train.mode: grpo), through TRL's GRPOTrainer."""

    num_generations: int = Field(4, ge=2, description="group size: completions sampled per prompt (the advantage "
                                 "is each one's reward against its group's mean)")
    beta: float = Field(0.04, ge=0, description="KL coefficient towards the base model (DeepSeekMath's 0.04; "
                        "0 drops the reference model)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the rollouts")
    max_completion_length: int = Field(32, ge=1, description="tokens generated per completion")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field("dapo", description="TRL's loss aggregation")
    epsilon: float = Field(0.2, gt=0, description="PPO-style clipping of the probability ratio")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="divide advantages by the reward "
                                                             "std of the group, the batch, or not at all")
    sft_warmup_steps: int = Field(0, ge=0, description="supervised steps before RL (a cold start, as DeepSeek-R1 "
                                  "does): a base model that never produces the answer format earns no reward to "
                                  "learn from; compare with an SFT run of the same total steps")
    rl_steps: Optional[int] = Field(None, gt=0, description="RL optimiser steps after the warm-up (default: "
                                    "train.max_steps, or the epochs' steps): with max_steps = sft_warmup_steps + "
                                    "rl_steps, the SFT and the GRPO run of one config take the same total steps")
    lr: Optional[float] = Field(None, gt=0, description="learning rate of the RL phase (default: train.lr, which "
                                "the warm-up keeps); RL on a supervised policy usually wants a smaller one")


class TrainConfig(_Strict):
    mode: Literal["sft", "grpo"] = Field("sft", description="sft: supervised on the answers; grpo: RL with the "
                                         "task's grader as reward (batch_size then counts prompts per step)")
    grpo: GrpoConfig = GrpoConfig()
    epochs: int = Field(1, ge=1)
    max_steps: Optional[int] = Field(None, gt=0, description="overrides epochs when set")
    lr: float = Field(2e-4, gt=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(0, ge=0, description="used when > 0, else warmup_ratio")
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8)
    seed: int = 0
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: Optional[float] = Field(1.0, gt=0)
    logging_steps: int = Field(10, ge=1)
    select_best: bool = Field(False, description="keep the epoch with the lowest validation loss (PEFT-Bench's best "
                              "checkpoint); the validation split comes from the task or task.validation_fraction")
    loss_on_prompt: bool = Field(False, description="also train on prompt tokens (language-model pretraining)")
    report_to: list[str] = Field(default_factory=list, description="experiment trackers that receive the training "
                                 "log: tensorboard, mlflow, wandb (each needs its package installed)")
    checkpoint_every: Optional[int] = Field(None, gt=0, description="score target and retention every N optimiser "
                                            "steps: the training trajectory on the target-vs-retention plane")
    group_by_length: bool = Field(False, description="batch examples of similar length together (less padding, "
                                  "faster; the order is still seeded and shuffled)")
    batching: Literal["auto", "packed", "padded"] = Field(
        "auto", description="packed: each batch's examples end to end in as few rows as fit, position ids "
        "restarting per example so none attends to another (no padding work, same loss); padded: one example "
        "per row; auto: packed unless the method prepends virtual tokens (soft prompts), which need a row each")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bf16: mixed precision (bf16 autocast over float32 weights), on CUDA and on CPUs with "
        "native bf16 (AVX512-BF16/AMX); auto: bf16 on CUDA devices that support it, fp32 elsewhere")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass: "
                                         "less memory for longer sequences or bigger batches, ~30% slower")
    compile: bool = Field(False, description="torch.compile the model for training (dynamic shapes); pays a "
                          "compile time up front, worth it for long runs")
    attention: str = Field("auto", description="attention kernel for training: eager, sdpa, flash_attention_2 "
                           "(with its package) or any name transformers registers; auto: eager for bf16 on CPU "
                           "(torch's CPU SDPA backward with the packed block-diagonal mask is ~5x slower there), "
                           "else the model's own. Evaluation always runs the model's own")
    liger: bool = Field(False, description="Liger's Triton kernels (fused RMSNorm, SwiGLU/GeGLU MLP) for the "
                        "training loop, on CUDA with the liger-kernel package installed; evaluation runs the plain "
                        "model")

    @model_validator(mode="after")
    def _grpo_fits(self) -> "TrainConfig":
        if self.mode == "grpo" and self.select_best:
            raise ValueError("select_best picks the epoch with the lowest validation loss, which GRPO does not "
                             "optimise; set select_best: false with mode: grpo")
        if self.liger and self.compile:
            raise ValueError("train.liger with train.compile: Liger's Triton kernels fail under torch.compile "
                             "(liger-kernel 0.8.5, torch 2.11, on an H100); set one of them to false")
        if self.mode == "grpo" and self.liger:
            raise ValueError("train.liger speeds up the SFT loop; GRPO trains through TRL's trainer: set "
                             "liger: false with mode: grpo")
        if self.mode == "grpo" and self.loss_on_prompt:
            raise ValueError("loss_on_prompt is an SFT setting; GRPO has no answer to put a loss on")
        return self

    @field_validator("attention")
    @classmethod
    def _known_attention(cls, value: str) -> str:
        from transformers import AttentionInterface

        known = ["auto", "eager", *AttentionInterface._global_mapping]
        if value not in known:
            raise ValueError(f"unknown attention {value!r}; known: {', '.join(known)}")
        return value

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, value: list[str]) -> list[str]:
        from peftbench.train.tracking import TRACKERS

        unknown = [name for name in value if name not in TRACKERS]
        if unknown:
            raise ValueError(f"unknown tracker(s) {unknown}; known: {', '.join(TRACKERS.names())}")
        return value


class EvalConfig(_Strict):
    batch_size: int | Literal["auto"] = Field(16, description="rows per batch, or auto: as many as a memory "
                                              "budget holds (KV cache of the widest prompt of each batch)")
    max_new_tokens: int = Field(32, ge=1)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    num_samples: int = Field(1, ge=1, description="completions per prompt (pass@k needs >= k, with do_sample)")
    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="what generates: transformers (peftbench's batched decoding), or vllm (needs "
        "the vllm package; a LoRA adapter is served through vLLM's LoRA support). Log-likelihood tasks always use "
        "transformers")
    invalid_answers: Literal["own_class", "wrong"] = Field(
        "own_class", description="a classification answer outside the task's labels: its own class (sklearn's "
        "way; counted), or replaced by a wrong label before scoring (PEFT-Bench's way: the other label of two; "
        "the first label that is not the answer, of more)")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: score under bf16 autocast (about 3x faster on CPUs with AMX or AVX512-BF16 and "
        "on GPUs; answers can differ from fp32's where two candidates are nearly tied)")
    vllm_args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for vllm.LLM over "
                                      "peftbench's defaults (gpu_memory_utilization, tensor_parallel_size, "
                                      "enforce_eager, max_model_len, ...); with backend: vllm")

    @field_validator("batch_size")
    @classmethod
    def _positive(cls, value):
        if value != "auto" and value < 1:
            raise ValueError("must be a positive number of rows, or auto")
        return value

    @model_validator(mode="after")
    def _sampling_for_many(self) -> "EvalConfig":
        if self.num_samples > 1 and not self.do_sample:
            raise ValueError("num_samples > 1 needs do_sample: true (greedy decoding repeats one answer)")
        if self.vllm_args and self.backend != "vllm":
            raise ValueError("vllm_args apply to backend: vllm only; set backend: vllm or leave vllm_args out")
        return self


class RetentionConfig(_Strict):
    """General-ability suites scored before and after tuning (forgetting)."""

    tasks: list[TaskConfig] = Field(min_length=1, description="task names or groups (micro-general, bbh, ...); "
                                    "default: micro-general for the micro model, bbh + ifeval + nq otherwise")
    max_eval: Optional[int] = Field(100, gt=0, description="examples per retention task, where the task sets no cap")


class RunConfig(_Strict):
    """One training run: one model, one method, one task, one seed."""

    suite: str = "default"
    model: ModelConfig = ModelConfig()
    method: MethodConfig
    task: TaskConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    retention: Optional[RetentionConfig] = None
    output_dir: str = "runs"

    _suite_name = field_validator("suite")(classmethod(lambda cls, v: _folder_name(v)))
    _output_dir = field_validator("output_dir")(classmethod(lambda cls, v: _output_folder(v)))


class EvalRequest(_Strict):
    """Evaluate a base model on a task (no method, no training)."""

    model: ModelConfig = ModelConfig()
    task: TaskConfig
    eval: EvalConfig = EvalConfig()


class TuningConfig(_Strict):
    """Equal tuning budget: every method gets the same number of trials, each trial a
    point of its search space trained on train and scored on validation (seed: the
    suite's first); the best point of each (method, task) then runs every seed on test."""

    trials: int = Field(ge=1, description="trials per method and task (the same for every method)")
    sampler: Literal["grid", "random"] = Field(
        "random", description="grid: the whole space, which must hold exactly `trials` points; "
        "random: a seeded sample of `trials` points of it")
    space: dict[str, list[Any]] = Field(default_factory=dict, description="hyper-parameter -> values, for every "
                                        "method ('lr' or one of the method's own parameters)")
    methods: dict[str, dict[str, list[Any]]] = Field(
        default_factory=dict, description="method name -> its own space (added to, and overriding, `space`)")
    seed: int = 0


class AnalysisConfig(_Strict):
    """Geometry analyses run on every finished run of a suite whose method merges into
    the weights (soft prompts are skipped): `peftbench analyze` without the typing."""

    spectral: bool = Field(False, description="spectral retention/adaptation profile of each update")
    interpolate: Optional[str] = Field(None, description="alphas of the base-to-tuned path to score, e.g. 0:1:0.25 "
                                       "(target and the suite's retention block at each)")
    tradeoff: str = Field("balanced", description="how the best alpha is chosen: balanced or target")

    @field_validator("tradeoff")
    @classmethod
    def _known_tradeoff(cls, value: str) -> str:
        from peftbench.analysis.tradeoff import TRADEOFFS

        if value not in TRADEOFFS:
            raise ValueError(f"unknown trade-off {value!r}; known: {', '.join(TRADEOFFS.names())}")
        return value

    @field_validator("interpolate")
    @classmethod
    def _alphas(cls, value: Optional[str]) -> Optional[str]:
        if value is not None:
            from peftbench.analysis.interpolate import parse_alphas

            try:
                parse_alphas(value)
            except PeftbenchError as exc:
                raise ValueError(str(exc).replace("--alphas ", "alphas ")) from None
        return value


class SuiteConfig(_Strict):
    """A grid of runs: methods x tasks x seeds under one protocol."""

    name: str = "default"
    model: ModelConfig = ModelConfig()
    methods: list[MethodConfig] = Field(min_length=1)
    tasks: list[TaskConfig] = Field(min_length=1)
    seeds: list[int] = Field([0], min_length=1)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    output_dir: str = "runs"
    tuning: Optional[TuningConfig] = None
    retention: Optional[RetentionConfig] = None
    analysis: Optional[AnalysisConfig] = None
    modes: Optional[list[Literal["sft", "grpo"]]] = Field(
        None, min_length=1, description="train every method in each of these modes (SFT vs RL: PEFT-Arena's "
        "question); default: train.mode only")

    _suite_name = field_validator("name")(classmethod(lambda cls, v: _folder_name(v)))
    _output_dir = field_validator("output_dir")(classmethod(lambda cls, v: _output_folder(v)))

    def run_for(self, method: MethodConfig, task: TaskConfig, seed: int, suite: Optional[str] = None,
                mode: Optional[str] = None) -> RunConfig:
        return RunConfig(
            suite=suite or self.name,
            model=self.model,
            method=method.model_copy(update={"lr": None, "validation_fraction": None}),
            task=task.model_copy(update={"validation_fraction": method.validation_fraction})
            if method.validation_fraction else task,
            train=self.train.model_copy(update={"seed": seed, "lr": method.lr or self.train.lr,
                                                "mode": mode or self.train.mode}),
            eval=self.eval,
            retention=self.retention,
            output_dir=self.output_dir,
        )

    def expand(self) -> list[RunConfig]:
        return [self.run_for(method, task, seed, mode=mode)
                for mode in self.modes or [self.train.mode]
                for method in self.methods for task in self.tasks for seed in self.seeds]


def to_plain(cfg: BaseModel) -> dict[str, Any]:
    """The fully resolved config as plain data, ready for YAML and hashing."""
    return cfg.model_dump(mode="json")
