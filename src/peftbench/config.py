"""Typed configuration: YAML in, validated pydantic models out, clear errors for bad input.

Validation happens in two passes so every fault is reported at once, before any model
loads: pydantic checks the shape and types of the whole document, then each method's
own hyper-parameter model checks `method.*` and the task registry checks `task.name`.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from peftbench.errors import ConfigError, PeftbenchError, UnknownNameError

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


# ---------------------------------------------------------------- YAML and overrides


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as a float (YAML 1.1 wants `1.0e-4`) and refuses a key
    given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key]}): give each key once",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: where in the file, and what is wrong there."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"not valid YAML: {where}{' '.join(problem.split())}"


def parse_yaml_documents(text: str) -> list[Any]:
    """Every document of a multi-document YAML text, read as `parse_yaml` reads one."""
    return list(yaml.load_all(text, Loader=_Loader))


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError([("<file>", f"no such config file: {path}")])
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError([("<yaml>", yaml_problem(exc))], source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([("<file>", f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                            "is it the right file?")], source=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "the file must hold a mapping of fields")], source=str(path))
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (value parsed as YAML) to a copy of a raw config."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError([("--set", f"expected KEY=VALUE like train.lr=1e-4, got {item!r}")])
        node = raw
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if isinstance(child, str) and part in ("method", "task"):
                child = {"name": child}  # expand the shorthand so a field can be set
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError([(key, f"cannot set a field inside {part!r}, which is not a mapping")])
            node[part] = child
            node = child
        node[parts[-1]] = parse_yaml(value)
    return raw


# ---------------------------------------------------------------- validation


def _loc(loc: tuple[Any, ...], prefix: str = "") -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        parts.append(f"[{item}]" if isinstance(item, int) else str(item))
    return ".".join(parts).replace(".[", "[") or "<root>"


def _allowed_fields(model_cls: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Walk a model class along an error location to list the fields allowed there."""
    cls: Any = model_cls
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        field = getattr(cls, "model_fields", {}).get(item)
        if field is None:
            return []
        annotation = field.annotation
        for arg in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                cls = arg
                break
        else:
            return []
    return sorted(getattr(cls, "model_fields", {}))


def _problems(exc: ValidationError, model_cls: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_fields(model_cls, loc)
            message = "unknown field" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "value_error":  # our own validators' messages say what they got
            message = err["msg"].removeprefix("Value error, ")
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        problems.append((_loc(loc, prefix), message))
    return problems


def check_method(method: MethodConfig, prefix: str) -> tuple[MethodConfig | None, list[tuple[str, str]]]:
    from peftbench.methods import METHODS

    try:
        spec = METHODS.get(method.name)
    except UnknownNameError as exc:
        return None, [(f"{prefix}.name", str(exc))]
    try:
        params = spec.Params.model_validate(method.params)
    except ValidationError as exc:
        return None, _problems(exc, spec.Params, prefix)
    return MethodConfig(name=method.name, lr=method.lr, validation_fraction=method.validation_fraction,
                        **params.model_dump()), []


def _check_task(task: TaskConfig, prefix: str, trains: bool = True) -> list[tuple[str, str]]:
    from peftbench.tasks import TASKS

    try:
        spec = TASKS.get(task.name)
    except UnknownNameError as exc:
        return [(f"{prefix}.name", str(exc))]
    problems = []
    if spec.executes_code and not task.allow_code_execution:
        problems.append((f"{prefix}.allow_code_execution", f"task {task.name!r} grades by running model-generated code; "
                         "set allow_code_execution: true to run it in peftbench's sandbox (off by default)"))
    if task.data_files:
        if spec.using_files is None:
            problems.append((f"{prefix}.data_files", f"task {task.name!r} is generated ({spec.source}); it reads no files"))
        for split, path in task.data_files.items():
            if split not in spec.splits and split != "train":  # own training data for an eval-only task is fine
                problems.append((f"{prefix}.data_files.{split}", f"task {task.name!r} has no split {split!r}; "
                                 f"it has {', '.join(spec.splits)}"))
            elif not Path(path).is_file():
                problems.append((f"{prefix}.data_files.{split}", f"file not found: {path}"))
    if trains and "train" not in spec.splits and "train" not in (task.data_files or {}):
        problems.append((f"{prefix}.name", f"task {task.name!r} is evaluation-only (splits: {', '.join(spec.splits)}); "
                         "train on another task and evaluate this one, or give data_files.train"))
    if task.few_shot and spec.shots_from not in spec.splits and spec.shots_from not in (task.data_files or {}):
        problems.append((f"{prefix}.few_shot", f"task {task.name!r} has no {spec.shots_from!r} split to draw solved "
                         f"examples from (splits: {', '.join(spec.splits)}); give data_files.{spec.shots_from} "
                         "or leave few_shot out"))
    from peftbench.metrics import executes_code, is_known_metric

    problems += [(f"{prefix}.metrics", f"unknown metric {m!r}") for m in task.metrics or [] if not is_known_metric(m)]
    if task.metrics and any(executes_code(m) for m in task.metrics) and not spec.executes_code:
        problems.append((f"{prefix}.metrics", f"task {task.name!r} has no unit tests to run: pass@k needs a code task"))
    if task.primary and task.primary not in (task.metrics or spec.metrics):
        problems.append((f"{prefix}.primary", f"task {task.name!r} has no metric {task.primary!r}; it has "
                         f"{', '.join(spec.metrics)}"))
    if task.scoring and task.scoring not in spec.scorings:
        problems.append((f"{prefix}.scoring", f"task {task.name!r} cannot be scored by {task.scoring!r}: it has no "
                         f"candidate answers to compare; it allows {', '.join(spec.scorings)}"))
    for i, other in enumerate(task.transfer or []):
        if other.transfer:
            problems.append((f"{prefix}.transfer[{i}].transfer", "a transfer task is only scored; it has no "
                             "transfer tasks of its own"))
        problems += _check_task(other, f"{prefix}.transfer[{i}]", trains=False)
    if task.eval_split == "validation" and not _has_validation(spec, task):
        problems.append((f"{prefix}.eval_split", _NO_VALIDATION.format(name=task.name, splits=", ".join(spec.splits))))
    elif task.eval_split and task.eval_split != "validation" and task.eval_split not in spec.splits:
        problems.append((f"{prefix}.eval_split", f"task {task.name!r} has no split {task.eval_split!r}; "
                         f"it has {', '.join(spec.splits)}"))
    return problems


_NO_VALIDATION = ("task {name!r} has no validation split (splits: {splits}); set validation_fraction: 0.1 on the "
                  "task to hold out 10% of its training examples")


# `retention: {tasks: [default]}`: the micro world's general skills for the micro model,
# PEFT-Arena's general suite (BBH, IFEval, NQ) for any other model
DEFAULT_RETENTION = {"micro": ["micro-general"]}
DEFAULT_RETENTION_REAL = ["bbh", "ifeval", "nq"]


def _default_retention(tasks: list[TaskConfig], model_name: Optional[str]) -> list[TaskConfig]:
    out = []
    for task in tasks:
        if task.name != "default":
            out.append(task)
            continue
        names = DEFAULT_RETENTION.get(model_name or "", DEFAULT_RETENTION_REAL)
        out += [task.model_copy(update={"name": name}) for name in names]
    return out


def _check_retention(retention: Optional[RetentionConfig], model_name: Optional[str] = None):
    """Expand `default` and groups in the retention tasks and check each (they are only evaluated)."""
    if retention is None:
        return None, []
    tasks = expand_task_groups(_default_retention(retention.tasks, model_name))
    problems = [p for i, t in enumerate(tasks) for p in _check_task(t, f"retention.tasks[{i}]", trains=False)]
    return retention.model_copy(update={"tasks": tasks}), problems


def validate_retention(tasks: list[str], source: str = "--retention", model_name: Optional[str] = None) -> RetentionConfig:
    """A retention block from task or group names (command line), groups expanded and checked."""
    retention, problems = _check_retention(_validate(RetentionConfig, {"tasks": tasks}, source), model_name)
    if problems:
        raise ConfigError(problems, source=source)
    return retention


def _has_validation(spec, task: TaskConfig) -> bool:
    return bool(task.validation_fraction) or "validation" in spec.splits


def _without_validation(tasks: list[TaskConfig], field: Callable[[int], str]) -> list[tuple[str, str]]:
    """A problem at `field(i)` for each task with no validation split (select_best and
    tuning trials both need one)."""
    from peftbench.tasks import TASKS

    return [(field(i), _NO_VALIDATION.format(name=t.name, splits=", ".join(TASKS.get(t.name).splits)))
            for i, t in enumerate(tasks) if t.name in TASKS and not _has_validation(TASKS.get(t.name), t)]


def expand_task_groups(tasks: list[TaskConfig]) -> list[TaskConfig]:
    """A group name (e.g. `bbh`) stands for every member task, with the same settings."""
    from peftbench.tasks import TASK_GROUPS

    out = []
    for task in tasks:
        members = TASK_GROUPS.get(task.name)
        out += [task.model_copy(update={"name": m}) for m in members] if members else [task]
    return out


def _validate(model_cls: type[BaseModel], raw: Any, source: str | None) -> BaseModel:
    try:
        return model_cls.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, model_cls), source=source) from None


def validate_run_config(raw: dict[str, Any], source: str | None = None) -> RunConfig:
    """Validate a raw run config and fill every method default, or raise ConfigError."""
    cfg = _validate(RunConfig, raw, source)
    method, problems = check_method(cfg.method, "method")
    problems += _check_model(cfg.model)
    problems += _check_task(cfg.task, "task")
    if cfg.train.select_best:
        problems += _without_validation([cfg.task], lambda i: "train.select_best")
    retention, found = _check_retention(cfg.retention, cfg.model.name)
    problems += found
    if problems:
        raise ConfigError(problems, source=source)
    cfg = cfg.model_copy(update={"retention": retention})
    update = {"method": method.model_copy(update={"lr": None, "validation_fraction": None})}
    if method.lr:  # the method's own learning rate is the run's
        update["train"] = cfg.train.model_copy(update={"lr": method.lr})
    if method.validation_fraction:  # and its own hold-out
        update["task"] = cfg.task.model_copy(update={"validation_fraction": method.validation_fraction})
    return cfg.model_copy(update=update)


def validate_eval_request(raw: dict[str, Any], source: str | None = None) -> EvalRequest:
    cfg = _validate(EvalRequest, raw, source)
    problems = _check_task(cfg.task, "task", trains=False)
    if problems:
        raise ConfigError(problems, source=source)
    return cfg


def _check_modes(cfg: "SuiteConfig") -> list[tuple[str, str]]:
    """`modes` runs each mode with the suite's train block: it must suit every one of them."""
    problems = []
    for mode in cfg.modes or []:
        try:
            TrainConfig.model_validate({**cfg.train.model_dump(), "mode": mode})
        except ValidationError as exc:
            problems += [("modes", f"{mode}: {error['msg']}") for error in exc.errors()]
    if cfg.modes and cfg.tuning:
        problems.append(("modes", "tuning searches one training mode; drop modes or tuning"))
    return problems


def _repeated(items: list, field: str, what: str) -> list[tuple[str, str]]:
    """A problem for each item equal to an earlier one: it would run (and show) twice."""
    problems, first = [], {}
    for i, item in enumerate(items):
        key = json.dumps(item, sort_keys=True, default=str)
        if key in first:
            problems.append((f"{field}[{i}]", f"repeats {field}[{first[key]}] ({what}); list it once"))
        first.setdefault(key, i)
    return problems


def _check_model(model: ModelConfig) -> list[tuple[str, str]]:
    """A model name that can be nothing but a missing local path, or a hub id that cannot be
    fetched offline, is refused before anything loads."""
    from peftbench.models.names import model_name_problem

    problem = model_name_problem(model.name, model.gguf_file)
    return [("model.name", problem)] if problem else []


def validate_suite_config(raw: dict[str, Any], source: str | None = None) -> SuiteConfig:
    cfg = _validate(SuiteConfig, raw, source)
    problems: list[tuple[str, str]] = _check_model(cfg.model)
    methods = []
    for i, method in enumerate(cfg.methods):
        resolved, found = check_method(method, f"methods[{i}]")
        methods.append(resolved)
        problems += found
    problems += _repeated([m.model_dump() if m else i for i, m in enumerate(methods)], "methods",
                          "the same method with the same settings")
    tasks = expand_task_groups(cfg.tasks)
    problems += _repeated([t.model_dump() for t in tasks], "tasks", "the same task with the same settings")
    problems += _repeated(cfg.seeds, "seeds", "the same seed")
    for i, task in enumerate(tasks):
        problems += _check_task(task, f"tasks[{i}]")
    if cfg.train.select_best:
        problems += _without_validation(tasks, lambda i: "train.select_best")
    if cfg.tuning:  # trials are scored on validation, never on test
        problems += _without_validation(tasks, lambda i: f"tasks[{i}].validation_fraction")
    retention, found = _check_retention(cfg.retention, cfg.model.name)
    problems += found
    problems += _check_modes(cfg)
    if problems:
        raise ConfigError(problems, source=source)
    cfg = cfg.model_copy(update={"methods": methods, "tasks": tasks, "retention": retention})
    if cfg.tuning:
        from peftbench.sweep.tuning import check_spaces

        try:
            check_spaces(cfg)
        except ConfigError as exc:
            raise ConfigError(exc.problems, source=source) from None
    return cfg


def load_run_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    return validate_run_config(apply_overrides(load_yaml(path), list(overrides)), source=str(path))


def load_suite_config(path: str | Path, overrides: list[str] = ()) -> SuiteConfig:
    return validate_suite_config(apply_overrides(load_yaml(path), list(overrides)), source=str(path))


def to_plain(cfg: BaseModel) -> dict[str, Any]:
    """The fully resolved config as plain data, ready for YAML and hashing."""
    return cfg.model_dump(mode="json")
