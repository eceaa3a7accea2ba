"""Training, evaluation, checkpointing, run folders and DDP setup behind the ``tritonvision`` CLI."""
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .datasets import open_split
from .distributed import DistInfo, setup_distributed
from .loop import TrainingInterrupted, build_model, evaluate, train
from .reports import summary_table

__all__ = ["DistInfo", "TrainConfig", "TrainingInterrupted", "build_model", "evaluate",
           "load_checkpoint", "open_split", "save_checkpoint", "setup_distributed",
           "summary_table", "train"]
