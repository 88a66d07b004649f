"""Run configuration: YAML files validated by pydantic, with ``--set key.path=value`` overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eef.errors import UserError, first_problem
from eef.storage import read_text

# The settings of every stage live here, below the code that takes them, so that reading and checking a
# config imports no model code (no torch).

SPEC_PREFIX = "openai:"  # an expert named openai:MODEL[@TAG] is a chat model (experts/llm.py)


class LoraSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    # PEFT's "all-linear": every linear layer of the blocks (attention and MLP), not the output head.
    target_modules: list[str] | str = "all-linear"


class SFTSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(default=3.0, gt=0)
    # Fine-tuning a pretrained model; the tiny model, trained from scratch, wants ~1e-3.
    learning_rate: float = Field(default=2e-5, gt=0)
    batch_size: int = Field(default=8, ge=1)  # sequences per device and step
    gradient_accumulation: int = Field(default=1, ge=1)
    max_length: int = Field(default=2048, ge=1)
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    lr_scheduler: str = "cosine"
    max_grad_norm: float = Field(default=1.0, gt=0)
    seed: int = 0
    bf16: bool | None = None  # None: bf16 mixed precision where the GPU supports it
    lora: LoraSettings | None = None  # None: full fine-tuning
    logging_steps: int = Field(default=10, ge=1)
    # Batches of similar lengths waste less compute on padding (false: random batches).
    group_by_length: bool = True
    # Where the Trainer logs besides metrics.jsonl: "tensorboard" (in <output_dir>.trainer/), "wandb"
    # (when installed and asked for), "none", or several joined by commas.
    report_to: str = "tensorboard"


class DPOSettings(BaseModel):
    """How ETO's DPO trains (``eef.training.dpo``); the beta of each iteration is the method's (MethodConfig).
    The defaults are ETO's on Llama-2-7B-Chat (``run_eto.sh``): learning rate 1e-6, 3 epochs, 10% warmup,
    then a constant rate; ETO's batch is 32 pairs, these take 4 a step. A model trained from scratch
    (tiny) wants a far larger rate: the default run config sets it."""

    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(default=3.0, gt=0)
    learning_rate: float = Field(default=1e-6, gt=0)
    batch_size: int = Field(default=4, ge=1)  # pairs per device and step (two sequences each)
    gradient_accumulation: int = Field(default=1, ge=1)
    max_length: int = Field(default=2048, ge=1)  # tokens of one conversation (prompt + chosen, or + rejected)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)
    lr_scheduler: str = "constant_with_warmup"
    max_grad_norm: float = Field(default=1.0, gt=0)
    seed: int = 0
    bf16: bool | None = None  # None: bf16 mixed precision where the GPU supports it
    logging_steps: int = Field(default=10, ge=1)
    report_to: str = "tensorboard"  # as SFTSettings.report_to


class LLMExpertSettings(BaseModel):
    """How to reach and sample the model (``eef collect`` options, or a run config's ``llm_experts``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="the model name the server knows")
    base_url: str | None = None  # None: OpenAI's API (or $OPENAI_BASE_URL)
    # The environment variable that holds the key (the key itself is never in settings or files).
    api_key_env: str = Field(default="OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    concurrency: int = Field(default=8, ge=1, description="episodes (so requests) in flight at once")
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, description="longest turn, in tokens")
    # OpenAI's reasoning models (o1, o3, o4-mini, gpt-5, ...) refuse max_tokens and any temperature or
    # top_p but the default: they get max_completion_tokens (which their hidden reasoning counts against).
    reasoning_model: bool = False
    max_retries: int = Field(default=6, ge=0, description="retries of a failing request before its episode fails")
    backoff_s: float = Field(default=1.0, ge=0.0, description="first retry's delay; doubles each retry")
    max_backoff_s: float = Field(default=60.0, ge=0.0)
    timeout_s: float = Field(default=120.0, gt=0.0, description="one request's time limit")
    price_input: float | None = Field(default=None, ge=0.0, description="USD per million prompt tokens")
    price_cached_input: float | None = Field(
        default=None, ge=0.0, description="USD per million prompt tokens from the server's prompt cache"
    )  # None: price_input
    price_output: float | None = Field(default=None, ge=0.0, description="USD per million generated tokens")

    def cost_usd(self, prompt_tokens: int, completion_tokens: int, cached_prompt_tokens: int = 0) -> float | None:
        """What the tokens cost; ``cached_prompt_tokens`` (of ``prompt_tokens``) at the cached-input price."""
        if self.price_input is None and self.price_output is None and self.price_cached_input is None:
            return None
        fresh_price = self.price_input or 0.0
        cached_price = self.price_cached_input if self.price_cached_input is not None else fresh_price
        input_cost = fresh_price * (prompt_tokens - cached_prompt_tokens) + cached_price * cached_prompt_tokens
        return (input_cost + (self.price_output or 0.0) * completion_tokens) / 1e6


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvConfig(Strict):
    name: str = "shop"
    options: dict[str, Any] = Field(default_factory=dict)
    train_tasks: int | None = Field(default=300, ge=1)  # the first N tasks of each split (None: all)
    # RFT and EEF explore the first N training tasks (None: all of train_tasks); the expert runs on all.
    explore_tasks: int | None = Field(default=None, ge=1)
    dev_tasks: int | None = Field(default=100, ge=1)
    test_tasks: int | None = Field(default=200, ge=1)


class ModelConfig(Strict):
    name: str = "tiny"  # tiny | smollm2-135m | a local Hugging Face folder or model id
    dtype: str = "auto"


class SamplingConfig(Strict):
    """How an agent turn is sampled (exploration, evaluation): what the generators take. ``temperature`` 0: greedy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(default=1.0, ge=0.0)  # 0: greedy
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(default=48, ge=1)


class RolloutConfig(Strict):
    explore: SamplingConfig = Field(default_factory=SamplingConfig)
    evaluate: SamplingConfig = Field(default_factory=lambda: SamplingConfig(temperature=0.0))
    batch_size: int = Field(default=64, ge=1)
    # Keep each episode's keys and values between turns and share the recorded prefix of restarts
    # (identical greedy results; false: re-encode every prompt, as the naive engine does).
    prefix_reuse: bool = True
    # With prefix_reuse: where a generation call serves at most draft_rows episodes (a rollout's last
    # turns), each pass also feeds up to draft_tokens tokens copied from each conversation and keeps
    # those the model would have chosen itself (the same turns in fewer passes; 0 turns it off).
    draft_tokens: int = Field(default=3, ge=0)
    draft_rows: int = Field(default=16, ge=0)
    # hf: the in-house engines on transformers (any device). vllm: vLLM on a CUDA GPU when installed
    # (untested on this project's machines: docs/performance.md); it caches prefixes itself.
    engine: Literal["hf", "vllm"] = "hf"
    # Where environment steps wait on other processes (ScienceWorld's JVMs): generate for half of the
    # episodes while the other half step (greedy results are the same either way). auto: on a GPU,
    # where generation leaves the CPU cores to the environments; on a CPU they compete for the same cores.
    overlap_steps: bool | Literal["auto"] = "auto"
    vllm_gpu_memory: float = Field(default=0.5, gt=0, lt=1)  # share of GPU memory vLLM may take
    max_context_tokens: int = Field(default=2048, ge=1)
    max_invalid_actions: int = Field(default=3, ge=1)


class ClusterConfig(Strict):
    """Where rollouts and training run (docs/scale-out.md). ``workers`` 0, the default: rollouts in this
    process, without Ray. Otherwise that many Ray actors, each with its own environments and a replica of
    the policy, take the exploration's and evaluation's chunks; the data are the same whatever the number
    of workers. ``train_processes``: SFT and DPO in that many processes on this machine (torchrun, DDP),
    each with its share of every batch, so the effective batch and the steps stay the settings' own."""

    # local: a Ray instance this run starts on this machine; auto: the cluster `ray start` started here;
    # HOST:PORT: a cluster's head node. None: local, where workers > 0.
    address: str | None = None
    workers: int = Field(default=0, ge=0)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    gpus_per_worker: float = Field(default=0.0, ge=0)
    # A worker that dies is replaced, and the chunk it held rerun, this many times before the run stops.
    worker_restarts: int = Field(default=3, ge=0)
    train_processes: int = Field(default=1, ge=1)

    @field_validator("address")
    @classmethod
    def _check_address(cls, address: str | None) -> str | None:
        if address is None or address in ("local", "auto"):
            return address
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{address!r} is not local, auto or HOST:PORT (a Ray head node, e.g. 10.0.0.1:6379)")
        return address

    @model_validator(mode="after")
    def _check_workers(self) -> ClusterConfig:
        if self.address is not None and self.workers == 0:
            raise ValueError(f"address is {self.address} but workers is 0: set cluster.workers to the Ray workers")
        return self


class MethodConfig(Strict):
    """One method of the comparison. ``kind``: sft (behaviour cloning only), rft, eef or eto (docs/runs.md)."""

    name: str
    kind: Literal["sft", "rft", "eef", "eto"]
    k: int = Field(default=1, ge=1, description="rollouts per training subtask from its initial state")
    # The exploration's sampling temperature (None: rollout.explore's); ETO explores greedily (0).
    temperature: float | None = Field(default=None, ge=0.0)
    m: int = Field(default=5, ge=0, description="EEF restart points per failed expert trajectory")
    experts: list[str] | None = None  # expert sources whose failures EEF explores (default: the first)
    selection: Literal["shortest", "random"] = "shortest"
    recovery_states: bool = True
    mask_harmful: bool = True
    retrain_from_base: bool = True  # rft and eef: each iteration's SFT starts from the base model
    # eto: DPO's beta in the first iteration and in the later ones (ETO's 0.1 and 0.5).
    beta: float = Field(default=0.1, gt=0)
    later_beta: float = Field(default=0.5, gt=0)


class RunConfig(Strict):
    name: str = "default"
    seed: int = Field(default=0, ge=0, lt=2**32)  # numpy's seeds are 32-bit
    iterations: int = Field(default=2, ge=0)
    env: EnvConfig = Field(default_factory=EnvConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    experts: list[str] = Field(default_factory=lambda: ["scripted"], min_length=1)
    # Chat-model experts by name (each name also listed in ``experts``); ``openai:MODEL`` in ``experts``
    # is one with default settings. See docs/experts.md.
    llm_experts: dict[str, LLMExpertSettings] = Field(default_factory=dict)
    sft: SFTSettings = Field(default_factory=SFTSettings)  # its seed is replaced by the run's
    # How RFT/EEF iterations that continue from the previous model train (methods with
    # retrain_from_base: false); None: as ``sft``. Retraining from the base always uses ``sft``.
    iteration_sft: SFTSettings | None = None
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    dpo: DPOSettings = Field(default_factory=DPOSettings)  # eto methods' training; its seed is the run's
    methods: list[MethodConfig] = Field(default_factory=list)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)  # rollouts on Ray workers (docs/scale-out.md)

    @model_validator(mode="after")
    def _check_methods(self) -> RunConfig:
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"method names must be unique, got {names}")
        for name in self.llm_experts:
            if name not in self.experts:
                raise ValueError(f"llm_experts names {name!r}, which is not in experts {self.experts}")
        for name in self.experts:
            if "/" in name:  # an expert's name is part of its data's file names
                model = name.removeprefix(SPEC_PREFIX)
                raise ValueError(
                    f"expert {name!r}: name it (e.g. experts: [my-model], llm_experts: {{my-model: "
                    f"{{model: {model}}}}}); a run's expert names become file names"
                )
        for method in self.methods:
            for expert in method.experts or []:
                if expert not in self.experts:
                    raise ValueError(f"method {method.name!r} uses expert {expert!r}, not in experts {self.experts}")
        self._check_batches_split()
        return self

    def _check_batches_split(self) -> None:
        """Every training's batch splits evenly over cluster.train_processes (each process takes its share)."""
        processes = self.cluster.train_processes
        trainings: dict[str, SFTSettings | DPOSettings | None] = {"sft": self.sft, "iteration_sft": self.iteration_sft}
        if any(method.kind == "eto" for method in self.methods):
            trainings["dpo"] = self.dpo
        for key, settings in trainings.items():
            if settings is not None and settings.batch_size % processes:
                raise ValueError(
                    f"{key}.batch_size {settings.batch_size} does not split over cluster.train_processes "
                    f"{processes}: make it a multiple of {processes}"
                )


def _set(data: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    node: Any = data
    for depth, key in enumerate(keys[:-1]):
        node = _list_item(node, key, dotted) if isinstance(node, list) else node.setdefault(key, {})
        if not isinstance(node, dict | list):
            within = ".".join(keys[: depth + 1])
            raise UserError(f"--set {dotted}: {within} is a single value ({node!r}), not a group of settings")
    last = keys[-1]
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise UserError(f"--set {dotted}={raw}: not a YAML value ({str(err).splitlines()[0]}); quote it") from None
    if isinstance(node, list):
        node[_index(node, last, dotted)] = value
    else:
        node[last] = value


def _index(node: list, key: str, dotted: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise UserError(f"--set {dotted}: {key!r} is not an index of a list of {len(node)}")
    return int(key)


def _list_item(node: list, key: str, dotted: str) -> Any:
    # Lists of named items (methods) can be addressed by name: methods.eef.m=3
    for item in node:
        if isinstance(item, dict) and item.get("name") == key:
            return item
    return node[_index(node, key, dotted)]


def load_config(path: Path | None, overrides: list[str], defaults: dict[str, Any] | None = None) -> RunConfig:
    """The config in ``path`` (or ``defaults``), with ``key.path=value`` overrides applied.
    Any problem is a UserError that names the file and the key."""
    source = str(path) if path else "the default config"
    if path is not None:
        if not path.is_file():
            raise UserError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(read_text(path)) or {}
        except (yaml.YAMLError, RecursionError) as err:
            raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: a config is a YAML mapping of keys to values")
    else:
        data = dict(defaults or {})
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise UserError(f"--set {override!r}: write key.path=value, e.g. --set iterations=3")
        _set(data, key, raw)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        where, problem = first_problem(err, "config")
        # The value came from the last --set of that key (or of a key holding it) where there is one.
        setting = next((o for o in reversed(overrides) if f"{where}.".startswith(f"{o.partition('=')[0]}.")), None)
        raise UserError(f"{f'--set {setting}' if setting else source}: {where}: {problem}") from None


def default_config_path() -> Path:
    """The embedded default: the shop environment, the tiny model, the scripted experts, every method."""
    return Path(__file__).parent / "configs" / "default.yaml"


def load_run_config(directory: Path) -> RunConfig:
    """The config of the run in ``directory`` (its config.yaml), to resume it."""
    path = Path(directory) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{directory}: not a run directory (no config.yaml); start one with `eef run`")
    return load_config(path, [])
