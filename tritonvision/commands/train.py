"""Train a segmentation (FCN, FCN-8s, U-Net) or detection (YOLO) model; validate every epoch.

With no arguments: U-Net on the synthetic shapes, about two minutes on two CPU cores,
mIoU >= 0.8 on the validation split. Runs under ``torchrun --nproc_per_node N`` with
DistributedDataParallel (gloo on CPU, NCCL on GPU). Checkpoints go to ``--out``/last.pt
after every epoch; ``--resume`` continues from there (or from the file given).
"""
from __future__ import annotations

import argparse

from tritonvision.training.loop import TrainConfig

DEFAULTS = TrainConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    parser.add_argument("--task", choices=("seg", "det"), default=d.task,
                        help="segmentation or detection (default %(default)s)")
    parser.add_argument("--model", choices=("unet", "fcn8s", "fcn", "yolo"), default=None,
                        help="default: unet for seg, yolo for det")
    parser.add_argument("--data", default=d.data,
                        help="'shapes' (synthetic, built in) or a dataset folder / COCO json "
                             "(default %(default)s)")
    parser.add_argument("--epochs", type=int, default=d.epochs, help="default %(default)s")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help="global batch size, split across ranks (default %(default)s)")
    parser.add_argument("--lr", type=float, default=d.lr,
                        help="peak learning rate of the one-cycle schedule (default %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--image-size", type=int, default=d.image_size,
                        help="square input side in pixels (default %(default)s)")
    parser.add_argument("--width", type=int, default=d.width,
                        help="channels of the first stage (default %(default)s)")
    parser.add_argument("--depth", type=int, default=d.depth,
                        help="down-sampling stages of FCN / U-Net (default %(default)s)")
    parser.add_argument("--stride", type=int, default=d.stride,
                        help="YOLO total stride; grid = image-size / stride (default %(default)s)")
    parser.add_argument("--num-train", type=int, default=d.num_train,
                        help="shapes: training images (default %(default)s)")
    parser.add_argument("--num-val", type=int, default=d.num_val,
                        help="shapes: validation images (default %(default)s)")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="override the dataset's class count (seg: including background)")
    parser.add_argument("--loss", choices=("dicece", "ce"), default=d.loss,
                        help="seg loss: Dice + cross-entropy or cross-entropy (default %(default)s)")
    parser.add_argument("--min-object-size", type=int, default=d.min_object_size,
                        help="shapes: smallest object size in pixels (default %(default)s)")
    parser.add_argument("--compile", dest="compile", action="store_true", default=None,
                        help="torch.compile the model (default: on CUDA only)")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="run eagerly even on CUDA")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--no-fused", dest="fused", action="store_false",
                        help="plain torch layers instead of the fused tritonvision ops")
    parser.add_argument("--device", default=None,
                        help="cuda or cpu (default: cuda if available, else cpu)")
    parser.add_argument("--out", default=d.out, help="output folder (default %(default)s)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT",
                        help="resume from CHECKPOINT, or from --out/last.pt when given alone")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--workers", type=int, default=d.workers, help="data loader workers")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no tqdm progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    model = args.model or ("unet" if args.task == "seg" else "yolo")
    return TrainConfig(
        task=args.task, model=model, data=args.data, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        image_size=args.image_size, width=args.width, depth=args.depth, stride=args.stride,
        num_train=args.num_train, num_val=args.num_val, num_classes=args.num_classes,
        loss=args.loss, min_object_size=args.min_object_size,
        compile=args.compile, amp=args.amp, fused=args.fused, device=args.device, out=args.out,
        resume=args.resume, seed=args.seed, workers=args.workers, progress=args.progress)


def run(args: argparse.Namespace) -> int:
    from tritonvision.training import train

    try:
        train(config_from_args(args))
    except (FileNotFoundError, ValueError) as error:
        print(f"tritonvision train: error: {error}")
        return 2
    return 0
