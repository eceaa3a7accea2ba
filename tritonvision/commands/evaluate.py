"""``tritonvision eval``: a checkpoint on a dataset split; the metrics, a per-class table,
and the files (metrics.json, confusion matrix or PR curves) in ``runs/<task>/val``."""
from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import add_device_options, add_output_options, positive_int

SUMMARY = "Evaluate a trained checkpoint on a dataset split: metrics and a per-class table."
EXAMPLES = """\
  tritonvision eval runs/segment/train/weights/best.pt
      the validation split the run was trained with
  tritonvision eval runs/detect/train/weights/best.pt --data data.yaml --split test --json test.json
      another dataset's test split; the results also as JSON
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint written by tritonvision train "
                                           "(weights/best.pt or weights/last.pt)")
    group = parser.add_argument_group("data")
    group.add_argument("--data", metavar="DATA", default=None,
                       help="'shapes', a data.yaml, a COCO json or a dataset folder "
                            "(default: the one it was trained on)")
    group.add_argument("--split", default="val", help="dataset split (default %(default)s)")
    group.add_argument("--num-images", metavar="N", type=positive_int, default=None,
                       help="shapes: images in the split (default: the run's --num-val)")
    group.add_argument("--batch-size", metavar="N", type=positive_int, default=32,
                       help="default %(default)s")
    group = parser.add_argument_group("speed")
    group.add_argument("--amp", action="store_true", help="bf16 autocast")
    group.add_argument("--compile", action="store_true", help="torch.compile the model")
    add_device_options(parser)
    output = add_output_options(parser, "evaluation", "val")
    output.add_argument("--json", default=None, metavar="PATH",
                        help="also write the results (metrics, per class) to this JSON file")


def load_trained_model(path: str, device):
    """(model in eval mode on ``device``, TrainConfig, class names) from a checkpoint."""
    from tritonvision.training import load_checkpoint
    from tritonvision.training.loop import config_from_checkpoint, model_from_checkpoint

    checkpoint = load_checkpoint(path)
    config = config_from_checkpoint(checkpoint)
    count = int(checkpoint["num_classes"]) - (1 if config.task == "seg" else 0)
    names = list(checkpoint.get("class_names") or [f"class{i}" for i in range(count)])
    return model_from_checkpoint(checkpoint).to(device).eval(), config, names


def _num_outputs(task: str, names: list[str]) -> int:
    """The model's class count: object classes, plus background for segmentation."""
    return len(names) + 1 if task == "seg" else len(names)


def _dataset_config(config, args: argparse.Namespace):
    """The run's data settings with this command's --data / --num-images applied."""
    from tritonvision.training.datasets import is_shapes

    if args.data is not None:
        config.data, config.val_split = args.data, None  # all of another dataset's split
    if args.num_images is not None:
        if not is_shapes(config):
            raise ValueError("--num-images applies to the synthetic shapes (--data shapes) only")
        config.num_val = config.num_train = args.num_images
    return config


def _save(args: argparse.Namespace, config, result: dict, names: list[str]) -> list[Path]:
    """metrics.json and the plot in a new run folder; --json's copy."""
    from tritonvision.training import reports
    from tritonvision.training.run_folder import default_project, new_run_folder

    folder = new_run_folder(args.project or default_project(config.task), args.name or "val",
                            bool(args.exist_ok))
    data = reports.metrics_json(result, config.task, names, checkpoint=str(args.checkpoint),
                                data=str(config.data), split=args.split)
    saved = [reports.write_json(folder / "metrics.json", data)]
    if reports.have_matplotlib():
        saved.append(reports.save_evaluation_plots(folder, result, config.task, names))
    else:
        print(reports.PLOT_EXTRA_NOTE)
    if args.json:
        saved.append(reports.write_json(args.json, data))
    return saved


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import DataLoader

    from tritonvision.training import evaluate, open_split, reports
    from tritonvision.training.datasets import collate_fn
    from tritonvision.training.distributed import resolve_device
    from tritonvision.training.loop import ops_mode

    device = resolve_device(args.device)
    model, config, names = load_trained_model(args.checkpoint, device)
    config = _dataset_config(config, args)
    dataset = open_split(config, args.split)
    loader = DataLoader(dataset, args.batch_size, shuffle=False, collate_fn=collate_fn(config.task))
    # detection calls model.postprocess on the module itself, so only seg models are wrapped
    runner = torch.compile(model) if args.compile and config.task == "seg" else model
    with ops_mode(bool(args.reference)):
        result = evaluate(runner, loader, config.task, _num_outputs(config.task, names), device,
                          args.amp)
    print(f"{config.model} on {config.data} [{args.split}, {len(dataset)} images]")
    print(f"{'metric':<24} {'value':>10}")
    print("-" * 35)
    for name, value in reports.scalar_metrics(result).items():
        print(f"{name:<24} {value:>10.4f}")
    print()
    print(reports.per_class_table(result, config.task, names))
    saved = _save(args, config, result, names)
    print(f"\nresults saved to {saved[0].parent}: " + ", ".join(p.name for p in saved[:2])
          + (f"; JSON also at {saved[-1]}" if args.json else ""))
    return 0
