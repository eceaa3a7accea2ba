"""What ``tritonvision detect`` and ``tritonvision segment`` share: the checkpoint and the
input images, the run folder, letterboxing an image to the training size and mapping the
network's output back to the image's own pixels, and the overlay colours."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .arguments import add_device_options, add_output_options

PALETTE = [(0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
           (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60)]
TASK_COMMANDS = {"det": "detect", "seg": "segment"}


def add_inputs(parser: argparse.ArgumentParser) -> None:
    """The checkpoint and the images."""
    parser.add_argument("checkpoint", help="a checkpoint written by tritonvision train "
                                           "(weights/best.pt or weights/last.pt)")
    parser.add_argument("inputs", nargs="+", help="image files and/or folders of images")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Device and output folder options."""
    add_device_options(parser)
    add_output_options(parser, "output", "predict")


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def collect_images(inputs: list[str]) -> list[Path]:
    """Image files named directly, plus every image file in the named folders (sorted);
    a file named twice is read once."""
    from tritonvision.data.images import list_images

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(list_images(path))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"input {path} does not exist")
    if not files:
        raise ValueError(f"no image files found in {', '.join(inputs)}")
    unique = {f.resolve(): f for f in files}
    return list(unique.values())


@dataclass
class Session:
    """A loaded model and the images to run it on, with their output names (relative,
    no suffix) in the run folder."""
    model: torch.nn.Module
    config: object
    names: list
    device: torch.device
    folder: Path
    files: list
    outputs: list

    def output(self, name: Path, suffix: str, subfolder: str = "") -> Path:
        """``folder/subfolder/name.suffix``, its parent folders created."""
        path = self.folder / subfolder / name.with_suffix(suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def open_session(args: argparse.Namespace, task: str) -> Session:
    """Load the checkpoint (it must hold a ``task`` model), list the inputs, make the folder."""
    from tritonvision.training.distributed import resolve_device
    from tritonvision.training.run_folder import (default_project, new_run_folder,
                                                  unique_output_names)

    from .evaluate import load_trained_model

    device = resolve_device(args.device)
    model, config, names = load_trained_model(args.checkpoint, device)
    if config.task != task:
        raise ValueError(f"{args.checkpoint} holds a {TASK_COMMANDS[config.task]} model "
                         f"({config.model}); use tritonvision {TASK_COMMANDS[config.task]}")
    files = collect_images(args.inputs)
    folder = new_run_folder(args.project or default_project(task), args.name or "predict",
                            bool(args.exist_ok))
    return Session(model, config, names, device, folder, files, unique_output_names(files))


def letterboxed(image: Tensor, size: int) -> tuple[Tensor, tuple]:
    """``(batch [1, 3, size, size], geometry)``: the image fitted with its aspect ratio kept
    (see ``tritonvision.data.letterbox_geometry``)."""
    from tritonvision.data import Letterbox, letterbox_geometry

    geometry = letterbox_geometry(*image.shape[-2:], (size, size))
    padded, _ = Letterbox(size)(image, {})
    return padded[None], geometry


def boxes_to_image(boxes: Tensor, geometry: tuple, height: int, width: int) -> Tensor:
    """Boxes [K, 4] xyxy of the letterboxed input -> pixels of the original image (clipped)."""
    new_h, new_w, top, left = geometry
    shift = torch.tensor([left, top, left, top], dtype=boxes.dtype, device=boxes.device)
    scale = torch.tensor([new_w / width, new_h / height] * 2, dtype=boxes.dtype, device=boxes.device)
    boxes = (boxes - shift) / scale
    limit = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    return boxes.clamp(min=torch.zeros_like(limit), max=limit)


def logits_to_image(logits: Tensor, geometry: tuple, height: int, width: int) -> Tensor:
    """Logits [1, K, S, S] of the letterboxed input -> [1, K, height, width] of the original
    (the padding cut off, the rest resized bilinearly)."""
    import torch.nn.functional as F

    new_h, new_w, top, left = geometry
    logits = logits[..., top:top + new_h, left:left + new_w]
    return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)


def canvas_of(image: Tensor):
    """A PIL RGB image of a float [3, H, W] tensor in [0, 1]."""
    from PIL import Image
    return Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
