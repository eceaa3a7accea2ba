"""``TrainConfig``: every setting of a training run, saved in its checkpoints and args.yaml."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

TASK_ALIASES = {"segment": "seg", "detect": "det"}  # Ultralytics' task names
DEFAULT_MODEL = {"seg": "unet", "det": "yolo"}
AT_LEAST_ONE = ("epochs", "batch_size", "image_size", "width", "depth", "stride", "num_train",
                "num_val")


@dataclass
class TrainConfig:
    """Everything a run needs; the defaults train U-Net on shapes in about two minutes on
    two CPU cores (mIoU >= 0.8 on the validation split).

    ``task`` is "seg" or "det" ("segment" / "detect" are accepted); ``model`` defaults to
    unet (seg) or yolo (det). ``val_split``: the fraction of a dataset without a validation
    split of its own held out for validation. ``fliplr`` / ``scale``: augmentation of the
    training images (None: 0.5 / 0.25 on image folders, none on the synthetic shapes).
    The run's files go to ``project/name`` (default ``runs/<segment|detect>/train``, made
    unique unless ``exist_ok``); ``resume`` is a checkpoint path or "auto" (``name``'s
    last.pt, or the latest run's). ``reference`` runs every op as its plain-torch
    reference (:func:`tritonvision.ops.reference`).
    """
    task: str = "seg"
    model: Optional[str] = None
    data: str = "shapes"
    epochs: int = 12
    batch_size: int = 16
    lr: float = 5e-3
    weight_decay: float = 1e-4
    image_size: int = 32
    width: int = 16
    depth: int = 3
    stride: int = 8
    num_train: int = 2000
    num_val: int = 200
    min_object_size: Optional[int] = 10
    loss: str = "dicece"
    num_classes: Optional[int] = None
    val_split: Optional[float] = None
    fliplr: Optional[float] = None
    scale: Optional[float] = None
    compile: Optional[bool] = None   # None: compile on CUDA, eager on CPU
    amp: bool = False
    reference: bool = False
    device: Optional[str] = None
    project: Optional[str] = None
    name: Optional[str] = None
    exist_ok: bool = False
    resume: Optional[str] = None
    seed: int = 0
    workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.task = TASK_ALIASES.get(self.task, self.task)
        if self.task not in DEFAULT_MODEL:
            raise ValueError(f"task must be 'seg' (segment) or 'det' (detect), got {self.task!r}")
        self.model = self.model or DEFAULT_MODEL[self.task]
        for name in AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.val_split is not None and not 0.0 < self.val_split < 1.0:
            raise ValueError(f"val_split must be a fraction in (0, 1), got {self.val_split}")
        if self.fliplr is not None and not 0.0 <= self.fliplr <= 1.0:
            raise ValueError(f"fliplr (a probability) must be in [0, 1], got {self.fliplr}")
        if self.scale is not None and not 0.0 <= self.scale < 1.0:
            raise ValueError(f"scale must be in [0, 1), got {self.scale}")

    def model_config(self) -> dict:
        """The settings that decide the architecture (a resumed run keeps its file's)."""
        return {k: getattr(self, k) for k in ("task", "model", "width", "depth", "stride",
                                              "image_size")}
