"""Evaluate a training checkpoint on a dataset split and print the metrics table."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint written by `tritonvision train` (last.pt)")
    parser.add_argument("--data", default=None,
                        help="'shapes' or a dataset folder (default: the one it was trained on)")
    parser.add_argument("--split", default="val", help="dataset split (default %(default)s)")
    parser.add_argument("--num-images", type=int, default=None,
                        help="shapes: images in the split (default: the training run's --num-val)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")


def load_trained_model(path: str, device):
    """(model in eval mode on ``device``, TrainConfig, num_classes) from a checkpoint."""
    import dataclasses

    from tritonvision.training import TrainConfig, build_model, load_checkpoint

    checkpoint = load_checkpoint(path)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in checkpoint["config"].items() if k in fields})
    num_classes = int(checkpoint["num_classes"])
    model = build_model(config.task, config.model, num_classes, config.width, config.depth,
                        config.stride, config.image_size, fused=config.fused)
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), config, num_classes


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from tritonvision.training.distributed import resolve_device
    from tritonvision.training.loop import _collate, evaluate, open_split

    try:
        device = resolve_device(args.device)
        model, config, num_classes = load_trained_model(args.checkpoint, device)
        if args.data is not None:
            config.data = args.data
        if args.num_images is not None:
            config.num_val = config.num_train = args.num_images
        dataset = open_split(config, args.split)
    except (FileNotFoundError, ValueError) as error:
        print(f"tritonvision eval: error: {error}")
        return 2
    loader = DataLoader(dataset, args.batch_size, shuffle=False, collate_fn=_collate(config.task))
    # detection calls model.postprocess on the module itself, so only seg models are wrapped
    runner = torch.compile(model) if args.compile and config.task == "seg" else model
    metrics = evaluate(runner, loader, config.task, num_classes, device, args.amp)
    print(f"{config.model} on {config.data} [{args.split}, {len(dataset)} images]")
    print(f"{'metric':<24} {'value':>10}")
    print("-" * 35)
    for name, value in metrics.items():
        if isinstance(value, float):
            print(f"{name:<24} {value:>10.4f}")
    return 0
