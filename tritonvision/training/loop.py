"""The training loop behind ``tritonvision train`` and ``tritonvision eval``.

:func:`train` runs a whole job from a :class:`TrainConfig`: datasets and loaders (a
``DistributedSampler`` whose order depends only on the seed and the epoch, so a resumed run
sees the same batches as an uninterrupted one), the model (channels-last on CUDA, optional
``torch.compile`` and bf16 autocast), AdamW with a one-cycle schedule, per-epoch validation
(loss plus mIoU / pixel accuracy, or COCO mAP), ``weights/last.pt`` after every epoch and
``weights/best.pt`` when the validation metric improves, ``results.csv``, and at the end a
validation of best.pt with per-class results and plots, all in the run folder
(``runs/<segment|detect>/<name>``). Under ``torchrun`` it wraps the model in
DistributedDataParallel; metrics are synced across ranks; only rank 0 prints and saves.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from . import reports
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .config import TrainConfig
from .datasets import (check_validation_source, class_names, collate_fn, dataset_classes,
                       open_split)
from .distributed import DistInfo, all_reduce_mean, cleanup_distributed, setup_distributed
from .run_folder import default_project, latest_checkpoint, new_run_folder, run_folder_of

SEG_MODELS = ("unet", "fcn8s", "fcn")
DET_MODELS = ("yolo",)
IGNORE_INDEX = 255
PROGRESS_EVERY = 20
"""Steps between progress-bar loss updates (each reads the loss back from the device: a sync)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, after the last finished epoch's checkpoint is safe on disk;
    ``message`` says what was saved and how to continue."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# ----------------------------------------------------------------------------- building blocks
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def ops_mode(reference: bool):
    """``tritonvision.ops.reference()`` when asked for (plain-torch math), else nothing."""
    from tritonvision.ops import reference as reference_mode
    return reference_mode() if reference else contextlib.nullcontext()


def check_model_name(task: str, name: str) -> None:
    """A clear error when ``name`` is not a model of ``task``."""
    if task == "seg" and name not in SEG_MODELS:
        raise ValueError(f"--model {name!r} is not a segmentation model; "
                         f"choose one of {', '.join(SEG_MODELS)}")
    if task == "det" and name not in DET_MODELS:
        raise ValueError(f"--model {name!r} is not a detection model; choose yolo")


def build_model(task: str, name: str, num_classes: int, width: int = 8, depth: int = 3,
                stride: int = 8, image_size: int = 64) -> nn.Module:
    """The model for ``task`` by CLI name; ``num_classes`` counts background for "seg"."""
    from tritonvision.models import FCN8s, SimpleFCN, UNet, YOLO

    check_model_name(task, name)
    if name == "unet":
        return UNet(3, num_classes, width=width, depth=depth, batch_norm=True)
    if name == "fcn8s":
        return FCN8s(num_classes, width=width, depth=depth)
    if name == "fcn":
        return SimpleFCN(num_classes, width=width, depth=depth)
    if image_size % stride:
        raise ValueError(f"--image-size {image_size} must be a multiple of the YOLO stride {stride}")
    return YOLO(num_classes, grid_size=image_size // stride, width=width, stride=stride)


def model_from_checkpoint(checkpoint: dict) -> nn.Module:
    """The model a training checkpoint describes, with its weights (on the CPU)."""
    config = config_from_checkpoint(checkpoint)
    model = build_model(config.task, config.model, int(checkpoint["num_classes"]), config.width,
                        config.depth, config.stride, config.image_size)
    model.load_state_dict(checkpoint["model"])
    return model


def config_from_checkpoint(checkpoint: dict) -> TrainConfig:
    """The run's TrainConfig (settings this version no longer has are left out)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in checkpoint["config"].items() if k in known})


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
    raise ValueError(f"--loss must be 'dicece' or 'ce', got {kind!r}")


def loss_function(config: TrainConfig, core: nn.Module, device: torch.device
                  ) -> Callable[[Tensor, object], Tensor]:
    """``loss(outputs, targets)``: the seg loss on the centre-matched masks, or YOLO's loss."""
    if config.task == "seg":
        criterion = seg_loss_fn(config.loss).to(device)
        return lambda logits, masks: criterion(logits, _match_target(logits, masks))
    return lambda outputs, targets: core.loss(outputs, targets)


def _to_device(task: str, batch, device: torch.device, channels_last: bool):
    """Images (channels-last on CUDA) and targets on ``device``; detection targets padded."""
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


def _bare(model: nn.Module) -> nn.Module:
    """The module inside DDP and torch.compile wrappers."""
    core = model.module if hasattr(model, "module") else model
    return getattr(core, "_orig_mod", core)


# ----------------------------------------------------------------------------- evaluation
def _update_metric(metric, task: str, core: nn.Module, outputs: Tensor, targets, device) -> None:
    if task == "seg":
        logits = outputs.float()
        metric.update(logits.argmax(1), _match_target(logits, targets.to(device)))
        return
    boxes, scores, labels, counts = core.postprocess(outputs.float(), score_threshold=0.05)
    preds = [{"boxes": boxes[i, :n].cpu(), "scores": scores[i, :n].cpu(),
              "labels": labels[i, :n].cpu()} for i, n in enumerate(counts.tolist())]
    metric.update(preds, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])


def _as_numbers(result: dict) -> dict:
    """Scalar tensors as floats; per-class tensors as numpy arrays."""
    return {k: (float(v) if v.numel() == 1 else v.cpu().numpy()) if isinstance(v, Tensor) else v
            for k, v in result.items()}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, task: str, num_classes: int,
             device: torch.device, amp: bool = False, info: Optional[DistInfo] = None,
             channels_last: bool = False, loss_fn: Optional[Callable] = None) -> dict:
    """Metrics of ``model`` on ``loader`` (this rank's share), synced across ranks.

    seg: ``SegmentationMetrics(num_classes, ignore_index=255).compute()`` (miou,
    pixel_accuracy, per-class iou, ...) plus ``confusion_matrix``; det:
    ``MeanAveragePrecision("coco").compute()`` (map, map_50, map_per_class, ...). With
    ``loss_fn(outputs, targets)``: also ``loss``, the mean over batches (and ranks).
    """
    from tritonvision.metrics import MeanAveragePrecision, SegmentationMetrics

    core = _bare(model)
    was_training = model.training
    model.eval()
    metric = (SegmentationMetrics(num_classes, ignore_index=IGNORE_INDEX, device=device) if task == "seg"
              else MeanAveragePrecision(style="coco", class_metrics=True))
    total_loss, batches = torch.zeros((), dtype=torch.float64, device=device), 0
    for images, targets in loader:
        inputs, loss_targets = _to_device(task, (images, targets), device, channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            outputs = model(inputs)
            if loss_fn is not None:
                total_loss += loss_fn(outputs, loss_targets).detach()
                batches += 1
        _update_metric(metric, task, core, outputs, targets, device)
    result = _as_numbers(metric.compute())  # sums / gathers over the ranks under torch.distributed
    if loss_fn is not None:
        result["loss"] = all_reduce_mean(float(total_loss) / max(batches, 1), info or DistInfo())
    model.train(was_training)
    return result


def _shard(dataset: Dataset, info: DistInfo) -> Dataset:
    """This rank's strided share of an evaluation set (no padding, no duplicates)."""
    if not info.distributed:
        return dataset
    return Subset(dataset, list(range(info.rank, len(dataset), info.world_size)))


# ----------------------------------------------------------------------------- a run
@dataclass
class _Run:
    """A training run in progress: its settings, data, model, optimiser and history."""
    config: TrainConfig
    info: DistInfo
    log: Callable
    folder: Path = None
    train_set: Dataset = None
    val_set: Dataset = None
    sampler: DistributedSampler = None
    train_loader: DataLoader = None
    val_loader: DataLoader = None
    num_classes: int = 0
    names: list = field(default_factory=list)
    core: nn.Module = None
    model: nn.Module = None
    eval_model: nn.Module = None
    optimizer: torch.optim.Optimizer = None
    scheduler: torch.optim.lr_scheduler.LRScheduler = None
    loss: Callable = None
    history: list = field(default_factory=list)
    start_epoch: int = 0

    @property
    def device(self) -> torch.device:
        return self.info.device

    @property
    def channels_last(self) -> bool:
        return self.info.device.type == "cuda"

    @property
    def weights(self) -> Path:
        return self.folder / "weights"


def train(config: TrainConfig, log=print) -> dict:
    """Run a training job; returns ``{"history", "final", "checkpoint", "best", "folder",
    "model", "num_classes"}`` (``model``: the trained, unwrapped module on this rank's
    device; ``checkpoint`` / ``best``: the paths of last.pt / best.pt).

    Ctrl-C raises :class:`TrainingInterrupted` once the last finished epoch is on disk.
    """
    info = setup_distributed(config.device)
    try:
        with ops_mode(config.reference):
            return _train(config, info, log if info.is_main else (lambda *a, **k: None))
    finally:
        cleanup_distributed(info)


def _train(config: TrainConfig, info: DistInfo, log) -> dict:
    seed_everything(config.seed)
    check_model_name(config.task, config.model)
    checkpoint, resume_path = _resume_checkpoint(config, log)
    run = _Run(config, info, log)
    _open_data(run)  # before the folder is made: a run that cannot start leaves none
    run.folder = _run_folder(config, info, resume_path)
    _build_training(run, checkpoint)
    if checkpoint is not None:
        log(f"resumed from {resume_path} at epoch {run.start_epoch + 1}")
    log(_start_line(run))
    if info.is_main:
        reports.write_args_yaml(run.folder / "args.yaml", config)
    _fit(run)
    return _finish(run)


def resume_checkpoint_path(config: TrainConfig) -> Path:
    """The checkpoint ``config.resume`` names: a path, or "auto" (``config.name``'s
    last.pt, or the latest run's under the project folder)."""
    if config.resume == "auto":
        return latest_checkpoint(config.project or default_project(config.task), config.name)
    return Path(config.resume)


def _resume_checkpoint(config: TrainConfig, log) -> tuple[Optional[dict], Optional[Path]]:
    """The checkpoint to resume from (None, None for a fresh run); the architecture
    settings of ``config`` are set to the checkpoint's."""
    if not config.resume:
        return None, None
    path = resume_checkpoint_path(config)
    checkpoint = load_checkpoint(path)
    saved = checkpoint["config"]
    for key, value in config.model_config().items():
        if saved.get(key) != value:
            log(f"resume: using {key}={saved.get(key)!r} from {path} (not {value!r})")
            setattr(config, key, saved.get(key))
    done = int(checkpoint["epoch"]) + 1
    if done >= config.epochs:
        raise ValueError(f"{path} finished {done} of {config.epochs} epochs: nothing to resume; "
                         f"pass --epochs N with N > {done} to train longer")
    return checkpoint, path


def _run_folder(config: TrainConfig, info: DistInfo, resume_path: Optional[Path]) -> Path:
    """The checkpoint's run folder when resuming, else a new unique one (rank 0 decides)."""
    folder = [None]
    if info.is_main:
        folder[0] = (run_folder_of(resume_path) if resume_path is not None else new_run_folder(
            config.project or default_project(config.task), config.name or "train", config.exist_ok))
    if info.distributed:
        torch.distributed.broadcast_object_list(folder, src=0)
    return Path(folder[0])


def _open_data(run: _Run) -> None:
    """Datasets, class count and names, the sampler and the loaders."""
    config, info = run.config, run.info
    check_validation_source(config)
    run.train_set = open_split(config, "train", augment=True)
    run.val_set = open_split(config, "val")
    run.num_classes = dataset_classes(run.train_set, config.task, config.num_classes)
    run.names = class_names(run.train_set, config.task, run.num_classes)
    collate = collate_fn(config.task)
    run.sampler = DistributedSampler(run.train_set, num_replicas=info.world_size, rank=info.rank,
                                     shuffle=True, seed=config.seed, drop_last=True)
    per_rank_batch = max(1, config.batch_size // info.world_size)
    run.train_loader = DataLoader(run.train_set, per_rank_batch, sampler=run.sampler,
                                  collate_fn=collate, num_workers=config.workers, drop_last=True)
    run.val_loader = DataLoader(_shard(run.val_set, info), per_rank_batch, shuffle=False,
                                collate_fn=collate, num_workers=config.workers)
    if len(run.train_loader) == 0:
        raise ValueError(f"the training split has {len(run.train_set)} samples, fewer than one "
                         f"batch of {per_rank_batch} per rank; lower --batch-size")


def _one_cycle(optimizer, config: TrainConfig, total_steps: int, steps_done: int = 0):
    """The one-cycle schedule of ``total_steps``, positioned after ``steps_done`` steps
    (constructed there, so no scheduler step runs before an optimizer step)."""
    if steps_done:
        for group in optimizer.param_groups:  # the peak of this run's --lr
            group.update(max_lr=config.lr, initial_lr=config.lr / 25, min_lr=config.lr / 25e4)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.2,
        last_epoch=steps_done - 1)


def _build_training(run: _Run, checkpoint: Optional[dict]) -> None:
    """Model, optimiser, schedule and loss; the checkpoint's states when resuming."""
    config, device = run.config, run.device
    core = build_model(config.task, config.model, run.num_classes, config.width, config.depth,
                       config.stride, config.image_size).to(device)
    if run.channels_last:
        core = core.to(memory_format=torch.channels_last)
    run.core = core
    run.optimizer = torch.optim.AdamW(core.parameters(), lr=config.lr,
                                      weight_decay=config.weight_decay)
    run.scheduler = _one_cycle(run.optimizer, config, config.epochs * len(run.train_loader))
    if checkpoint is not None:
        _restore(run, checkpoint)
    _wrap_model(run)
    run.loss = loss_function(config, core, device)


def _restore(run: _Run, checkpoint: dict) -> None:
    """Weights, optimiser, schedule, history and RNG states of a resumed run (after the
    fresh schedule is built: building one overwrites the optimiser's learning rates)."""
    run.core.load_state_dict(checkpoint["model"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    saved = checkpoint["config"]
    run.start_epoch = int(checkpoint["epoch"]) + 1
    if int(saved.get("epochs", -1)) == run.config.epochs and saved.get("lr") == run.config.lr:
        run.scheduler.load_state_dict(checkpoint["scheduler"])
    else:  # a longer (or shorter) run, or another peak: the new schedule at this step
        steps_per_epoch = len(run.train_loader)
        run.scheduler = _one_cycle(run.optimizer, run.config, run.config.epochs * steps_per_epoch,
                                   run.start_epoch * steps_per_epoch)
    run.history = list(checkpoint.get("history", []))
    set_rng_state(checkpoint["rng"])


def _wrap_model(run: _Run) -> None:
    """DDP and torch.compile around the module; validation runs the bare module (no DDP
    collectives: ranks may hold unequal shards)."""
    config, info = run.config, run.info
    run.model = run.eval_model = run.core
    if info.distributed:
        run.model = nn.parallel.DistributedDataParallel(
            run.core, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    if _use_compile(run):
        run.model = torch.compile(run.model)
        run.eval_model = torch.compile(run.core) if info.distributed else run.model


def _use_compile(run: _Run) -> bool:
    return run.config.compile if run.config.compile is not None else run.device.type == "cuda"


def _start_line(run: _Run) -> str:
    config, info = run.config, run.info
    parameters = sum(p.numel() for p in run.core.parameters())
    return (f"training {config.model} ({parameters:,} parameters) on {config.data} "
            f"[{len(run.train_set)} train / {len(run.val_set)} val], {run.num_classes} classes, "
            f"{config.image_size}px, device {run.device}"
            f"{f' x{info.world_size} ranks' if info.distributed else ''}"
            f"{', compiled' if _use_compile(run) else ''}{', bf16 autocast' if config.amp else ''}"
            f"{', reference ops' if config.reference else ''}")


# ----------------------------------------------------------------------------- epochs
def _fit(run: _Run) -> None:
    """Every remaining epoch: train, validate, save; Ctrl-C -> TrainingInterrupted."""
    epoch = run.start_epoch
    try:
        for epoch in range(run.start_epoch, run.config.epochs):
            started = time.perf_counter()
            train_loss = _train_one_epoch(run, epoch)
            row = _validate(run, epoch, train_loss, started)
            run.history.append(row)
            if run.info.is_main:
                _save(run, epoch)
            run.log(reports.epoch_line(row, run.config.task))
    except KeyboardInterrupt:
        raise TrainingInterrupted(_interrupted_message(run, epoch)) from None


def _interrupted_message(run: _Run, epoch: int) -> str:
    last = run.weights / "last.pt"
    where = f"interrupted in epoch {epoch + 1}/{run.config.epochs}"
    if not run.history:
        return f"{where}, before any epoch finished: nothing saved"
    return (f"{where}; {last} holds epoch {run.history[-1]['epoch']} "
            f"(continue with: tritonvision train --resume {last})")


def _progress(run: _Run, epoch: int):
    """A tqdm bar on a terminal (none when stderr is a file or a pipe), rank 0 only."""
    if not (run.config.progress and run.info.is_main):
        return run.train_loader
    from tqdm.auto import tqdm
    return tqdm(run.train_loader, desc=f"epoch {epoch + 1}/{run.config.epochs}", leave=False,
                file=sys.stderr, dynamic_ncols=True, disable=None, mininterval=0.5)


def _train_one_epoch(run: _Run, epoch: int) -> float:
    """One pass over this rank's share of the training set; the mean loss over all ranks."""
    config = run.config
    run.sampler.set_epoch(epoch)
    run.model.train()
    total = torch.zeros((), dtype=torch.float64, device=run.device)   # summed on the device: no
    batches = 0                                                       # host read in a step
    bar = _progress(run, epoch)
    for batch in bar:
        images, targets = _to_device(config.task, batch, run.device, run.channels_last)
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=config.amp):
            loss = run.loss(run.model(images), targets)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        total += loss.detach()
        batches += 1
        if hasattr(bar, "set_postfix") and batches % PROGRESS_EVERY == 0:
            bar.set_postfix(loss=f"{float(total) / batches:.4f}")   # reads the loss back: a sync
    if run.info.distributed:  # BatchNorm statistics: every rank takes rank 0's (as DDP does)
        for buffer in run.core.buffers():
            torch.distributed.broadcast(buffer.data, src=0)
    return all_reduce_mean(float(total) / max(batches, 1), run.info)


def _validate(run: _Run, epoch: int, train_loss: float, started: float) -> dict:
    """The epoch's row of results.csv: losses, validation metrics, learning rate, seconds."""
    result = evaluate(run.eval_model, run.val_loader, run.config.task, run.num_classes,
                      run.device, run.config.amp, run.info, run.channels_last, run.loss)
    return {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": result["loss"],
            "val": reports.scalar_metrics(result), "lr": run.scheduler.get_last_lr()[0],
            "time_s": time.perf_counter() - started}


def _best_row(history: list[dict], task: str) -> dict:
    """The first epoch with the best validation metric (NaN counts as the worst)."""
    def key(row: dict) -> float:
        value = reports.fitness(row, task)
        return -math.inf if math.isnan(value) else value
    return max(history, key=key)


def _save(run: _Run, epoch: int) -> None:
    """last.pt (every epoch), best.pt (when the metric improved), results.csv."""
    payload = dict(model=run.core.state_dict(), optimizer=run.optimizer.state_dict(),
                   scheduler=run.scheduler.state_dict(), epoch=epoch,
                   config=dataclasses.asdict(run.config), num_classes=run.num_classes,
                   class_names=run.names, history=run.history)
    save_checkpoint(run.weights / "last.pt", **payload)
    if _best_row(run.history, run.config.task) is run.history[-1]:
        save_checkpoint(run.weights / "best.pt", **payload)
    reports.write_results_csv(run.folder / "results.csv", run.history)


# ----------------------------------------------------------------------------- the end
def _final_validation(run: _Run) -> dict:
    """best.pt evaluated on the validation split (per-class results included)."""
    best = load_checkpoint(run.weights / "best.pt")
    model = model_from_checkpoint(best).to(run.device)
    return evaluate(model, run.val_loader, run.config.task, run.num_classes, run.device,
                    run.config.amp, run.info)


def _save_plots(run: _Run, result: dict) -> list[str]:
    """results.png and the confusion matrix / PR curves; a note when matplotlib is missing."""
    if not reports.have_matplotlib():
        run.log(reports.PLOT_EXTRA_NOTE)
        return []
    reports.plot_results(run.folder / "results.png", run.history)
    plot = reports.save_evaluation_plots(run.folder, result, run.config.task, run.names)
    return ["results.png", plot.name]


def _finish(run: _Run) -> dict:
    """Summary table, best.pt's per-class results and plots, and where everything is."""
    if run.info.distributed:
        torch.distributed.barrier()  # best.pt is written by rank 0
    log, task = run.log, run.config.task
    best_epoch = _best_row(run.history, task)
    log("")
    log(reports.summary_table(run.history, task))
    result = _final_validation(run)
    log(f"\nbest.pt (epoch {best_epoch['epoch']}) on the validation split:")
    log(reports.per_class_table(result, task, run.names))
    plots = _save_plots(run, result) if run.info.is_main else []
    files = ["weights/best.pt", "weights/last.pt", "results.csv", *plots, "args.yaml"]
    log(f"\nresults saved to {run.folder}")
    log("  " + "  ".join(files))
    final = run.history[-1]["val"]
    return {"history": run.history, "final": final, "checkpoint": run.weights / "last.pt",
            "best": run.weights / "best.pt", "folder": run.folder, "model": run.core,
            "num_classes": run.num_classes, "class_names": run.names}
