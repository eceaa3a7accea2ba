"""Run a trained checkpoint on image files or a folder and save overlays as PNG.

``tritonvision detect`` draws the detected boxes with their class and score;
``tritonvision segment`` blends the predicted class colours over the image. Both commands
are this module (it reads ``args.command``); images are resized to the training size for
the network and the result is mapped back to the original size.
"""
from __future__ import annotations

import argparse
from pathlib import Path

PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
           (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a checkpoint written by `tritonvision train`")
    parser.add_argument("inputs", nargs="+", help="image files and/or folders of images")
    parser.add_argument("--out", default="runs/predict", help="folder for the PNG overlays")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    parser.add_argument("--score-threshold", type=float, default=0.25, help="detect only")
    parser.add_argument("--iou-threshold", type=float, default=0.5, help="detect only")
    parser.add_argument("--alpha", type=float, default=0.5, help="segment: overlay opacity")


def collect_images(inputs: list[str]) -> list[Path]:
    """Image files named directly, plus every image file in the named folders (sorted)."""
    from tritonvision.data.images import IMAGE_EXTENSIONS

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"input {path} does not exist")
    if not files:
        raise ValueError(f"no image files found in {', '.join(inputs)}")
    return files


def _colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.nn.functional as F
    from PIL import Image, ImageDraw

    from tritonvision.data import load_image
    from tritonvision.training.distributed import resolve_device

    from .evaluate import load_trained_model

    command = getattr(args, "command", "segment")
    try:
        device = resolve_device(args.device)
        model, config, num_classes = load_trained_model(args.checkpoint, device)
        want = "det" if command == "detect" else "seg"
        if config.task != want:
            raise ValueError(f"{args.checkpoint} holds a {config.task} model ({config.model}); "
                             f"use `tritonvision {'detect' if config.task == 'det' else 'segment'}`")
        files = collect_images(args.inputs)
    except (FileNotFoundError, ValueError) as error:
        print(f"tritonvision {command}: error: {error}")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = config.image_size
    names = _class_names(config, num_classes)
    for path in files:
        try:
            image = load_image(path)
        except (FileNotFoundError, ValueError, OSError) as error:
            print(f"tritonvision {command}: error: {error}")
            return 2
        h, w = image.shape[-2:]
        batch = F.interpolate(image[None], size=(size, size), mode="bilinear",
                              align_corners=False).to(device)
        canvas = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
        with torch.no_grad():
            outputs = model(batch)
            if command == "detect":
                boxes, scores, labels, counts = model.postprocess(
                    outputs.float(), args.score_threshold, args.iou_threshold)
                count = int(counts[0])
                scale = torch.tensor([w / size, h / size, w / size, h / size])
                draw = ImageDraw.Draw(canvas)
                for box, score, label in zip((boxes[0, :count].cpu() * scale).tolist(),
                                             scores[0, :count].tolist(), labels[0, :count].tolist()):
                    draw.rectangle(box, outline=_colour(label + 1), width=2)
                    draw.text((box[0] + 2, box[1] + 1), f"{names[label]} {score:.2f}",
                              fill=_colour(label + 1))
                summary = f"{count} detections"
            else:
                logits = F.interpolate(outputs.float(), size=(h, w), mode="bilinear",
                                       align_corners=False)
                pred = logits.argmax(1)[0].cpu()
                colours = torch.tensor([_colour(i) for i in range(num_classes)], dtype=torch.uint8)
                overlay = Image.fromarray(colours[pred].numpy())
                mask = Image.fromarray(((pred > 0).numpy() * int(255 * args.alpha)).astype("uint8"))
                canvas.paste(overlay, (0, 0), mask)
                summary = ", ".join(f"{names[c - 1] if c > 0 else 'background'} "
                                    f"{(pred == c).float().mean():.1%}"
                                    for c in range(num_classes) if (pred == c).any())
        target = out / f"{path.stem}.png"
        canvas.save(target)
        print(f"{path} -> {target} ({summary})")
    return 0


def _class_names(config, num_classes: int) -> list[str]:
    count = num_classes if config.task == "det" else num_classes - 1
    if str(config.data).lower() == "shapes":
        from tritonvision.data import SHAPES_CLASSES
        return list(SHAPES_CLASSES)[:count] + [f"class{i}" for i in range(3, count)]
    return [f"class{i}" for i in range(count)]
