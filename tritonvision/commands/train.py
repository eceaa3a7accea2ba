"""``tritonvision train``: options -> :class:`TrainConfig` -> :func:`tritonvision.training.train`.

Every option defaults to None here, so the options given on the command line are known:
a resumed run takes every setting from its checkpoint and only those override it.
"""
from __future__ import annotations

import argparse
import dataclasses

from tritonvision.training.config import TrainConfig

from .arguments import add_device_options, add_output_options, positive_int, unit_interval

SUMMARY = "Train a segmentation (U-Net, FCN-8s, FCN) or detection (YOLO) model."
EXAMPLES = """\
  tritonvision train
      U-Net on the built-in synthetic shapes (about two minutes on two CPU cores);
      files go to runs/segment/train (then train2, train3, ...)
  tritonvision train --task detect --data data.yaml --epochs 50 --image-size 320
      YOLO on an Ultralytics dataset (data.yaml with train / val / names)
  tritonvision train --data instances.json --val-split 0.2
      one COCO annotation file: hold out 20% of its images for validation
  tritonvision train --resume runs/segment/train/weights/last.pt --epochs 20
      continue a run with its own settings, for more epochs
"""
DEFAULTS = TrainConfig()
SHAPES_ONLY = {"num_train": "--num-train", "num_val": "--num-val",
               "min_object_size": "--min-object-size"}


def _default(name: str) -> str:
    return f"(default {getattr(DEFAULTS, name)})"


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", metavar="DATA", default=None,
                       help="'shapes' (synthetic, built in), an Ultralytics data.yaml, a COCO "
                            "json or a dataset folder (VOC, COCO, YOLO, images/ + masks/) "
                            f"{_default('data')}")
    group.add_argument("--task", default=None, choices=("seg", "det", "segment", "detect"),
                       help="segmentation or detection (default seg)")
    group.add_argument("--val-split", type=unit_interval, default=None, metavar="FRACTION",
                       help="hold out this fraction of the images for validation, for data "
                            "without a validation split of its own (one annotation file)")
    group.add_argument("--image-size", metavar="PX", type=positive_int, default=None,
                       help=f"square input side in pixels; images are letterboxed to it {_default('image_size')}")
    group.add_argument("--fliplr", type=unit_interval, default=None, metavar="P",
                       help="probability of a left-right flip (default 0.5 on image folders, "
                            "0 on shapes)")
    group.add_argument("--scale", type=unit_interval, default=None, metavar="S",
                       help="random zoom by a factor in [1-S, 1+S], then a random crop back to "
                            "--image-size (default 0.25 on image folders, 0 on shapes)")
    group.add_argument("--num-classes", metavar="N", type=positive_int, default=None,
                       help="override the dataset's class count (segmentation: with background)")
    group.add_argument("--num-train", metavar="N", type=positive_int, default=None,
                       help=f"shapes: training images {_default('num_train')}")
    group.add_argument("--num-val", metavar="N", type=positive_int, default=None,
                       help=f"shapes: validation images {_default('num_val')}")
    group.add_argument("--min-object-size", metavar="PX", type=positive_int, default=None,
                       help=f"shapes: smallest object in pixels {_default('min_object_size')}")
    group.add_argument("--workers", metavar="N", type=int, default=None,
                       help=f"data loader worker processes {_default('workers')}")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", choices=("unet", "fcn8s", "fcn", "yolo"), default=None,
                       help="default: unet for segmentation, yolo for detection")
    group.add_argument("--width", metavar="N", type=positive_int, default=None,
                       help=f"channels of the first stage {_default('width')}")
    group.add_argument("--depth", metavar="N", type=positive_int, default=None,
                       help=f"segmentation: down-sampling stages {_default('depth')}")
    group.add_argument("--stride", metavar="N", type=positive_int, default=None,
                       help=f"YOLO: total stride; grid = image size / stride {_default('stride')}")
    group.add_argument("--loss", choices=("dicece", "ce"), default=None,
                       help="segmentation: Dice + cross-entropy or cross-entropy (default dicece)")


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", metavar="N", type=positive_int, default=None,
                       help=f"passes over the training set {_default('epochs')}")
    group.add_argument("--batch-size", metavar="N", type=positive_int, default=None,
                       help=f"global batch size, split across ranks {_default('batch_size')}")
    group.add_argument("--lr", type=float, default=None,
                       help=f"peak learning rate of the one-cycle schedule {_default('lr')}")
    group.add_argument("--weight-decay", metavar="WD", type=float, default=None,
                       help=f"AdamW weight decay {_default('weight_decay')}")
    group.add_argument("--seed", metavar="N", type=int, default=None,
                       help=f"seed of every random choice (data order, augmentation, initial "
                            f"weights) {_default('seed')}")
    group.add_argument("--amp", action="store_true", default=None, help="bf16 autocast")
    group.add_argument("--compile", dest="compile", action="store_true", default=None,
                       help="torch.compile the model (default: on CUDA only)")
    group.add_argument("--no-compile", dest="compile", action="store_false",
                       help="run eagerly even on CUDA")
    group.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                       help="continue a run from its last.pt with the run's own settings (options "
                            "given here override them); alone: the latest run (or --name's)")
    group.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                       help="no progress bar (there is none anyway when stderr is not a terminal)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_options(parser)
    _add_model_options(parser)
    _add_training_options(parser)
    add_device_options(parser)
    add_output_options(parser, "run", "train")


def given_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig settings given on the command line (argparse leaves the rest None)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in fields and v is not None}


def _check_applicable(config: TrainConfig, given: dict) -> None:
    """Options given for another task or dataset are errors, not silently ignored."""
    if str(config.data).lower() != "shapes":
        for name, flag in SHAPES_ONLY.items():
            if name in given:
                raise ValueError(f"{flag} applies to the synthetic shapes (--data shapes) only")
    if config.task == "det" and "loss" in given:
        raise ValueError("--loss applies to segmentation; YOLO has its own loss")
    if config.task == "det" and "depth" in given:
        raise ValueError("--depth applies to the segmentation models")
    if config.task == "seg" and "stride" in given:
        raise ValueError("--stride applies to YOLO (--task detect)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: the defaults, or with --resume the checkpoint's, overridden by
    the options given."""
    from tritonvision.training import load_checkpoint
    from tritonvision.training.loop import config_from_checkpoint, resume_checkpoint_path

    given = given_settings(args)
    config = TrainConfig(**given)
    if config.resume:
        path = resume_checkpoint_path(config)
        saved = config_from_checkpoint(load_checkpoint(path))
        config = dataclasses.replace(saved, **{**given, "resume": str(path)})
    _check_applicable(config, given)
    return config


def run(args: argparse.Namespace) -> int:
    from tritonvision.training import train

    train(config_from_args(args))
    return 0
