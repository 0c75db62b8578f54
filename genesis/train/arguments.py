"""TrainingArguments: every option of a training run, validated when it is built."""
import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Optional

from ..models.transformers.configuration_moe import check_real

__all__ = ["TrainingArguments"]


@dataclass
class TrainingArguments:
    """The options of a ``Trainer`` run, named as in HuggingFace's ``TrainingArguments``.

    Optimiser: AdamW (``weight_decay`` on matrices only, betas ``adam_beta1``/``adam_beta2``)
    with HF's linear-warmup + cosine schedule decaying to ``min_lr_ratio * learning_rate``.
    ``eval_steps``/``save_steps`` of 0 mean never / at the end only. Fields marked
    ``run_defining`` must match the checkpoint for a run to be resumed.
    """

    output_dir: str = field(default="runs/genesis-moe", metadata={"help": "run folder"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "replace an earlier run in output_dir"})
    max_steps: int = field(default=800, metadata={"help": "optimizer steps of the run"})
    per_device_train_batch_size: int = field(default=16, metadata={
        "help": "windows per batch", "run_defining": True})
    per_device_eval_batch_size: Optional[int] = field(default=None, metadata={
        "help": "windows per evaluation batch (default: the training batch size)"})
    learning_rate: float = field(default=3e-3, metadata={
        "help": "peak learning rate", "run_defining": True})
    min_lr_ratio: float = field(default=0.1, metadata={
        "help": "final learning rate as a fraction of the peak (cosine)", "run_defining": True})
    warmup_steps: Optional[int] = field(default=None, metadata={
        "help": "linear warmup steps (default: 5% of max_steps, at least 1)",
        "run_defining": True})
    weight_decay: float = field(default=0.1, metadata={
        "help": "AdamW weight decay of matrices", "run_defining": True})
    adam_beta1: float = field(default=0.9, metadata={"run_defining": True})
    adam_beta2: float = field(default=0.95, metadata={"run_defining": True})
    adam_epsilon: float = field(default=1e-8, metadata={"run_defining": True})
    max_grad_norm: float = field(default=1.0, metadata={
        "help": "gradient clipping norm (0 disables)", "run_defining": True})
    eval_steps: int = field(default=100, metadata={"help": "validation interval (0: never)"})
    eval_windows: int = field(default=32, metadata={
        "help": "validation windows, evenly spaced over eval_dataset"})
    save_steps: int = field(default=100, metadata={"help": "checkpoint interval (0: end only)"})
    seed: int = field(default=0, metadata={"help": "seed of init, sampling and dropout",
                                           "run_defining": True})
    bf16: bool = field(default=False, metadata={
        "help": "forward under bfloat16 autocast (weights, optimizer state and losses stay "
                "float32)", "run_defining": True})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda[:N]"})
    disable_tqdm: bool = field(default=False, metadata={"help": "no progress bar"})
    save_on_interrupt: bool = field(default=True, metadata={
        "help": "SIGINT/SIGTERM save a checkpoint at the end of the step and stop"})

    def __post_init__(self):
        _int(self, "max_steps", 1)
        _int(self, "per_device_train_batch_size", 1)
        if self.per_device_eval_batch_size is not None:
            _int(self, "per_device_eval_batch_size", 1)
        for name in ("eval_steps", "save_steps"):
            _int(self, name, 0)
        _int(self, "eval_windows", 1)
        if self.warmup_steps is not None:
            _int(self, "warmup_steps", 0)
        _int(self, "seed", 0)
        if not isinstance(self.bf16, bool):
            raise ValueError(f"TrainingArguments: bf16 must be a bool, got {self.bf16!r}")
        for name in ("learning_rate", "weight_decay", "max_grad_norm"):
            _real(self, name, 0.0, None)
        _real(self, "adam_epsilon", 0.0, None, low_open=True)
        for name in ("min_lr_ratio", "adam_beta1", "adam_beta2"):
            _real(self, name, 0.0, 1.0)
        if not isinstance(self.output_dir, str) or not self.output_dir:
            raise ValueError(f"TrainingArguments: output_dir must be a non-empty path, got "
                             f"{self.output_dir!r}")

    @property
    def resolved_warmup_steps(self):
        """``warmup_steps``, or 5% of ``max_steps`` (at least 1) when it is None."""
        return self.warmup_steps if self.warmup_steps is not None else \
            max(1, self.max_steps // 20)

    @property
    def eval_batch_size(self):
        """Windows per evaluation batch."""
        return self.per_device_eval_batch_size or self.per_device_train_batch_size

    def run_defining(self):
        """``{field: value}`` of the options that make a run what it is (warmup resolved)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.metadata.get("run_defining")}
        out["warmup_steps"] = self.resolved_warmup_steps
        return out

    def to_dict(self):
        """Every field, JSON-ready."""
        return dataclasses.asdict(self)


def _int(args, name, low):
    value = getattr(args, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"TrainingArguments: {name} must be an int >= {low}, got {value!r}")


def _real(args, name, low, high, low_open=False):
    check_real(args, name, low, high, low_open, owner="TrainingArguments")
