"""Training causal LMs on text: ``Trainer`` + ``TrainingArguments`` (HF-style), token
datasets, checkpoints that survive crashes, metrics and plots; ``genesis train`` is a thin
command-line shell over them."""
from .arguments import TrainingArguments
from .data import TokenDataset
from .run_dir import CheckpointSaveError, TrainingError
from .trainer import ProgressCallback, Trainer, TrainerCallback, TrainerState, TrainOutput

__all__ = ["Trainer", "TrainingArguments", "TrainerCallback", "TrainerState", "TrainOutput",
           "ProgressCallback", "TokenDataset", "TrainingError", "CheckpointSaveError"]
