"""The training loop behind ``tritonvision train`` and ``tritonvision eval``.

One function, :func:`train`, runs a whole job from a :class:`TrainConfig`: datasets and
loaders (a ``DistributedSampler`` whose order depends only on the seed and the epoch, so a
resumed run sees the same batches as an uninterrupted one), the model (fused ops and
channels-last on CUDA, optional ``torch.compile`` and bf16 autocast), AdamW with a
one-cycle schedule, per-epoch validation (mIoU / pixel accuracy, or COCO mAP), checkpoints
after every epoch, and a summary table. Under ``torchrun`` it wraps the model in
DistributedDataParallel; metrics are synced across ranks; only rank 0 prints and saves.
"""
from __future__ import annotations

import dataclasses
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .distributed import DistInfo, all_reduce_mean, cleanup_distributed, setup_distributed

SEG_MODELS = ("unet", "fcn8s", "fcn")
DET_MODELS = ("yolo",)
IGNORE_INDEX = 255
PROGRESS_EVERY = 20
"""Steps between progress-bar loss updates (each reads the loss back from the device: a sync)."""


@dataclass
class TrainConfig:
    """Everything a run needs; the defaults train U-Net on shapes in about two minutes on
    two CPU cores (mIoU >= 0.8 on the validation split)."""
    task: str = "seg"
    model: str = "unet"
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
    compile: Optional[bool] = None   # None: compile on CUDA, eager on CPU
    amp: bool = False
    fused: bool = True
    device: Optional[str] = None
    out: str = "runs/train"
    resume: Optional[str] = None
    seed: int = 0
    workers: int = 0
    val_split: str = "val"
    progress: bool = True

    def model_config(self) -> dict:
        return {k: getattr(self, k) for k in ("task", "model", "width", "depth", "stride",
                                              "image_size")}


# ----------------------------------------------------------------------------- building blocks
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def build_model(task: str, name: str, num_classes: int, width: int = 8, depth: int = 3,
                stride: int = 8, image_size: int = 64, fused: bool = True) -> nn.Module:
    """The model for ``task`` by CLI name; ``num_classes`` counts background for "seg"."""
    from tritonvision.models import FCN8s, SimpleFCN, UNet, YOLO

    if task == "seg":
        if name == "unet":
            return UNet(3, num_classes, width=width, depth=depth, batch_norm=True, fused=fused)
        if name == "fcn8s":
            return FCN8s(num_classes, width=width, depth=depth, fused=fused)
        if name == "fcn":
            return SimpleFCN(num_classes, width=width, depth=depth, fused=fused)
        raise ValueError(f"train: --model {name!r} is not a segmentation model; "
                         f"choose one of {', '.join(SEG_MODELS)}")
    if task == "det":
        if name == "yolo":
            if image_size % stride:
                raise ValueError(f"train: --image-size {image_size} must be a multiple of the "
                                 f"YOLO stride {stride}")
            return YOLO(num_classes, grid_size=image_size // stride, width=width, stride=stride,
                        fused=fused)
        raise ValueError(f"train: --model {name!r} is not a detection model; choose yolo")
    raise ValueError(f"train: --task must be 'seg' or 'det', got {task!r}")


class CachedDataset(Dataset):
    """Generate every sample once and keep it (synthetic shapes: fixed, cheap to hold)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.cache: dict[int, Any] = {}
        for name in ("num_classes", "num_seg_classes", "CLASSES", "classes"):
            if hasattr(dataset, name):
                setattr(self, name, getattr(dataset, name))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        if index not in self.cache:
            self.cache[index] = self.dataset[index]
        return self.cache[index]


def open_split(config: TrainConfig, split: str) -> Dataset:
    """The dataset for one split: cached shapes, or a folder read by ``open_dataset``."""
    from tritonvision.data import Resize, open_dataset

    if str(config.data).lower() == "shapes":
        count = config.num_train if split == "train" else config.num_val
        extra = {} if config.min_object_size is None else {"min_size": config.min_object_size}
        return CachedDataset(open_dataset("shapes", config.task, split, num_images=count,
                                          image_size=config.image_size, seed=config.seed,
                                          **extra))
    return open_dataset(config.data, config.task, split,
                        transforms=Resize((config.image_size, config.image_size)))


def dataset_classes(dataset: Dataset, task: str, override: Optional[int]) -> int:
    """Number of model outputs: object classes (det) or classes + background (seg)."""
    if override:
        return int(override)
    base = getattr(dataset, "num_classes", None)
    if base is None:
        names = getattr(dataset, "classes", None) or getattr(dataset, "CLASSES", None)
        base = len(names) if names else None
    if base is None:
        raise ValueError("train: cannot tell the number of classes of this dataset; pass "
                         "--num-classes")
    if task == "seg":
        return int(getattr(dataset, "num_seg_classes", base + 1))
    return int(base)


def _collate(task: str):
    from tritonvision.data import collate_detection, collate_segmentation
    return collate_segmentation if task == "seg" else collate_detection


def _match_target(logits: Tensor, target: Tensor) -> Tensor:
    """Centre-crop the mask to the logits' size (U-Net with valid padding)."""
    h, w = logits.shape[-2:]
    if target.shape[-2:] == (h, w):
        return target
    top, left = (target.shape[-2] - h) // 2, (target.shape[-1] - w) // 2
    return target[..., top:top + h, left:left + w]


def seg_loss_fn(kind: str = "dicece") -> nn.Module:
    """The segmentation loss, void (255) ignored: ``tritonvision.nn.DiceCELoss`` (softmax Dice +
    cross-entropy, MONAI conventions) or ``tritonvision.nn.CrossEntropy2d``."""
    from tritonvision.nn import CrossEntropy2d, DiceCELoss

    if kind == "dicece":
        return DiceCELoss(ignore_index=IGNORE_INDEX)
    if kind == "ce":
        return CrossEntropy2d(ignore_index=IGNORE_INDEX)
    raise ValueError(f"train: --loss must be 'dicece' or 'ce', got {kind!r}")


def training_step_fn(task: str, model: nn.Module, core: nn.Module, loss_fn: Optional[nn.Module]):
    """``step(images, targets) -> loss`` (forward + loss; the caller does backward)."""
    if task == "seg":
        def step(images: Tensor, masks: Tensor) -> Tensor:
            logits = model(images)
            return loss_fn(logits, _match_target(logits, masks))
    else:
        def step(images: Tensor, targets) -> Tensor:
            return core.loss(model(images), targets)
    return step


def _to_device(task: str, batch, device: torch.device, channels_last: bool):
    images, targets = batch
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    if task == "seg":
        targets = targets.to(device, non_blocking=True)
    else:  # padded on the host, then one asynchronous copy each (no per-image copies)
        from tritonvision.models import pad_targets
        targets = tuple(t.to(device, non_blocking=True) for t in pad_targets(targets))
    return images, targets


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, task: str, num_classes: int,
             device: torch.device, amp: bool = False, info: Optional[DistInfo] = None,
             channels_last: bool = False) -> dict:
    """Metrics of ``model`` on ``loader`` (this rank's share), synced across ranks.

    seg: ``SegmentationMetrics(num_classes, ignore_index=255).compute()`` (miou,
    pixel_accuracy, ...); det: ``MeanAveragePrecision("coco").compute()`` (map, map_50, ...).
    """
    from tritonvision.metrics import MeanAveragePrecision, SegmentationMetrics

    core = model.module if hasattr(model, "module") else model
    core = getattr(core, "_orig_mod", core)
    was_training = model.training
    model.eval()
    metric = (SegmentationMetrics(num_classes, ignore_index=IGNORE_INDEX, device=device) if task == "seg"
              else MeanAveragePrecision(style="coco"))
    for images, targets in loader:
        images = images.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            outputs = model(images)
        if task == "seg":
            logits = outputs.float()
            masks = _match_target(logits, targets.to(device))
            metric.update(logits.argmax(1), masks)
        else:
            boxes, scores, labels, counts = core.postprocess(outputs.float(), score_threshold=0.05)
            preds = []
            for i, count in enumerate(counts.tolist()):
                preds.append({"boxes": boxes[i, :count].cpu(), "scores": scores[i, :count].cpu(),
                              "labels": labels[i, :count].cpu()})
            metric.update(preds, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
    if info is not None and info.distributed:
        metric.sync()
    result = metric.compute()
    model.train(was_training)
    return {k: (float(v) if isinstance(v, (Tensor, float, int)) and
                (not isinstance(v, Tensor) or v.numel() == 1) else v)
            for k, v in result.items()}


def _shard(dataset: Dataset, info: DistInfo) -> Dataset:
    """This rank's strided share of an evaluation set (no padding, no duplicates)."""
    if not info.distributed:
        return dataset
    return Subset(dataset, list(range(info.rank, len(dataset), info.world_size)))


# ----------------------------------------------------------------------------- training
def summary_table(history: list[dict], task: str) -> str:
    """One row per epoch: loss, validation metrics, seconds."""
    keys = ["miou", "pixel_accuracy"] if task == "seg" else ["map", "map_50"]
    header = f"{'epoch':>5} {'train_loss':>10} " + " ".join(f"{k:>14}" for k in keys) + f" {'time_s':>8}"
    lines = [header, "-" * len(header)]
    for row in history:
        cells = " ".join(f"{row['val'].get(k, float('nan')):>14.4f}" for k in keys)
        lines.append(f"{row['epoch']:>5} {row['train_loss']:>10.4f} {cells} {row['time_s']:>8.1f}")
    return "\n".join(lines)


def train(config: TrainConfig, log=print) -> dict:
    """Run a training job; returns ``{"history", "final", "checkpoint", "model"}``.

    ``model`` is the trained, unwrapped module (on this rank's device).
    """
    info = setup_distributed(config.device)
    try:
        return _train(config, info, log if info.is_main else (lambda *a, **k: None))
    finally:
        cleanup_distributed(info)


def _train(config: TrainConfig, info: DistInfo, log) -> dict:
    device = info.device
    seed_everything(config.seed)
    if config.task == "seg" and config.model not in SEG_MODELS or \
            config.task == "det" and config.model not in DET_MODELS:
        build_model(config.task, config.model, 2)  # raises the clear error

    checkpoint = None
    resume_path = _resume_path(config)
    if resume_path is not None:
        checkpoint = load_checkpoint(resume_path)
        saved = checkpoint["config"]
        for key, value in config.model_config().items():  # the architecture comes from the file
            if saved.get(key) != value:
                log(f"resume: using {key}={saved.get(key)!r} from {resume_path} (not {value!r})")
                setattr(config, key, saved.get(key))

    train_set = open_split(config, "train")
    val_set = open_split(config, config.val_split)
    num_classes = dataset_classes(train_set, config.task, config.num_classes)
    collate = _collate(config.task)
    sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                                 shuffle=True, seed=config.seed, drop_last=True)
    per_rank_batch = max(1, config.batch_size // info.world_size)
    train_loader = DataLoader(train_set, per_rank_batch, sampler=sampler, collate_fn=collate,
                              num_workers=config.workers, drop_last=True)
    val_loader = DataLoader(_shard(val_set, info), per_rank_batch, shuffle=False,
                            collate_fn=collate, num_workers=config.workers)
    if len(train_loader) == 0:
        raise ValueError(f"train: the training split has {len(train_set)} samples, fewer than "
                         f"one batch of {per_rank_batch} per rank; lower --batch-size")

    core = build_model(config.task, config.model, num_classes, config.width, config.depth,
                       config.stride, config.image_size, fused=config.fused).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        core = core.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(core.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * len(train_loader), pct_start=0.2)
    history: list[dict] = []
    start_epoch = 0
    if checkpoint is not None:
        core.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        if int(checkpoint["config"].get("epochs", -1)) == config.epochs:
            scheduler.load_state_dict(checkpoint["scheduler"])
        else:  # a longer (or shorter) run: the one-cycle schedule of the new length
            for _ in range((int(checkpoint["epoch"]) + 1) * len(train_loader)):
                scheduler.step()
        history = list(checkpoint.get("history", []))
        start_epoch = int(checkpoint["epoch"]) + 1
        set_rng_state(checkpoint["rng"])
        log(f"resumed from {resume_path} at epoch {start_epoch + 1}")

    model: nn.Module = core
    if info.distributed:
        model = nn.parallel.DistributedDataParallel(
            core, device_ids=[device.index] if device.type == "cuda" else None)
    use_compile = config.compile if config.compile is not None else device.type == "cuda"
    # validation runs the bare module (no DDP collectives: ranks may hold unequal shards)
    eval_model: nn.Module = core
    if use_compile:
        model = torch.compile(model)
        eval_model = torch.compile(core) if info.distributed else model
    loss_fn = seg_loss_fn(config.loss).to(device) if config.task == "seg" else None
    step = training_step_fn(config.task, model, core, loss_fn)

    log(f"training {config.model} ({sum(p.numel() for p in core.parameters()):,} parameters) "
        f"on {config.data} [{len(train_set)} train / {len(val_set)} {config.val_split}], "
        f"{num_classes} classes, {config.image_size}px, device {device}"
        f"{f' x{info.world_size} ranks' if info.distributed else ''}"
        f"{', compiled' if use_compile else ''}{', bf16 autocast' if config.amp else ''}")
    out = Path(config.out)
    last_path = out / "last.pt"
    for epoch in range(start_epoch, config.epochs):
        started = time.perf_counter()
        sampler.set_epoch(epoch)
        model.train()
        total = torch.zeros((), dtype=torch.float64, device=device)   # summed on the device: no
        batches = 0                                                   # host read in a step
        bar = _progress(train_loader, epoch, config, info)
        for batch in bar:
            images, targets = _to_device(config.task, batch, device, channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
                loss = step(images, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.detach()
            batches += 1
            if hasattr(bar, "set_postfix") and batches % PROGRESS_EVERY == 0:
                bar.set_postfix(loss=f"{float(total) / batches:.4f}")   # reads the loss back: a sync
        train_loss = all_reduce_mean(float(total) / max(batches, 1), info)
        if info.distributed:  # BatchNorm statistics: every rank takes rank 0's (as DDP does)
            for buffer in core.buffers():
                torch.distributed.broadcast(buffer.data, src=0)
        val = evaluate(eval_model, val_loader, config.task, num_classes, device, config.amp, info,
                       channels_last)
        row = {"epoch": epoch + 1, "train_loss": train_loss,
               "val": {k: v for k, v in val.items() if isinstance(v, float)},
               "time_s": time.perf_counter() - started}
        history.append(row)
        if info.is_main:
            save_checkpoint(last_path, model=core.state_dict(), optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), epoch=epoch,
                            config=dataclasses.asdict(config), num_classes=num_classes,
                            history=history)
        log(_epoch_line(row, config.task))
    if info.distributed:
        torch.distributed.barrier()
    log("")
    log(summary_table(history, config.task))
    final = history[-1]["val"] if history else {}
    return {"history": history, "final": final, "checkpoint": last_path, "model": core,
            "num_classes": num_classes}


def _resume_path(config: TrainConfig) -> Optional[Path]:
    if not config.resume:
        return None
    if config.resume == "auto":
        path = Path(config.out) / "last.pt"
        return path if path.is_file() else None
    return Path(config.resume)


def _progress(loader: DataLoader, epoch: int, config: TrainConfig, info: DistInfo):
    if not (config.progress and info.is_main):
        return loader
    from tqdm.auto import tqdm
    return tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                file=sys.stderr, dynamic_ncols=True)


def _epoch_line(row: dict, task: str) -> str:
    keys = ["miou", "pixel_accuracy"] if task == "seg" else ["map", "map_50"]
    metrics = ", ".join(f"{k} {row['val'][k]:.4f}" for k in keys if k in row["val"])
    return (f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, {metrics} "
            f"({row['time_s']:.1f} s)")
