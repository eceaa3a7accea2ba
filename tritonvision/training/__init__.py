"""Training, evaluation, checkpointing and DDP setup behind the ``tritonvision`` CLI."""
from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import DistInfo, setup_distributed
from .loop import TrainConfig, build_model, evaluate, open_split, summary_table, train

__all__ = ["DistInfo", "TrainConfig", "build_model", "evaluate", "load_checkpoint", "open_split",
           "save_checkpoint", "setup_distributed", "summary_table", "train"]
