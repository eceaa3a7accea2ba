"""``tritonvision segment``: per-pixel classes for image files as data (class-index PNG
masks the size of each input) and as pictures (overlays), in ``runs/segment/predict``."""
from __future__ import annotations

import argparse

import torch

from . import predict
from .arguments import unit_interval

SUMMARY = "Segment images with a trained FCN / FCN-8s / U-Net checkpoint."
EXAMPLES = """\
  tritonvision segment runs/segment/train/weights/best.pt photos/
      overlays (.png) and class-index masks (masks/*.png, 0 = background, 1 + class index)
      in runs/segment/predict, each the size of its input
  tritonvision segment best.pt a/scene.png b/scene.png --name scenes
      same-named inputs keep apart: runs/segment/scenes/a/scene.png and b/scene.png
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    predict.add_inputs(parser)
    group = parser.add_argument_group("overlay")
    group.add_argument("--alpha", type=unit_interval, default=0.5, metavar="A",
                       help="opacity of the class colours over the image (default %(default)s)")
    predict.add_run_options(parser)


@torch.no_grad()
def _segment(session: predict.Session, image: torch.Tensor) -> torch.Tensor:
    """Class indices [H, W] (int64, 0 = background) at the image's own size."""
    batch, geometry = predict.letterboxed(image, session.config.image_size)
    logits = session.model(batch.to(session.device)).float()
    logits = predict.logits_to_image(logits, geometry, *image.shape[-2:])
    return logits.argmax(1)[0].cpu()


def _mask_png(classes: torch.Tensor):
    """A greyscale PNG image whose pixel values are the class indices (16-bit past 255)."""
    from PIL import Image

    array = classes.numpy()
    return Image.fromarray(array.astype("uint8" if array.max(initial=0) < 256 else "uint16"))


def _overlay(image: torch.Tensor, classes: torch.Tensor, num_classes: int, alpha: float):
    from PIL import Image

    canvas = predict.canvas_of(image)
    colours = torch.tensor([predict.colour(i) for i in range(num_classes)], dtype=torch.uint8)
    opacity = ((classes > 0).numpy() * int(255 * alpha)).astype("uint8")
    canvas.paste(Image.fromarray(colours[classes].numpy()), (0, 0), Image.fromarray(opacity))
    return canvas


def _summary(classes: torch.Tensor, names: list[str]) -> str:
    """The share of the pixels of each class present, e.g. 'background 80.1%, circle 19.9%'."""
    labels = ["background", *names]
    return ", ".join(f"{labels[c]} {(classes == c).float().mean():.1%}"
                     for c in classes.unique().tolist())


def run(args: argparse.Namespace) -> int:
    from tritonvision.data import load_image
    from tritonvision.training.loop import ops_mode

    session = predict.open_session(args, "seg")
    with ops_mode(bool(args.reference)):
        for path, name in zip(session.files, session.outputs):
            image = load_image(path)
            classes = _segment(session, image)
            _mask_png(classes).save(session.output(name, ".png", "masks"))
            target = session.output(name, ".png")
            _overlay(image, classes, len(session.names) + 1, args.alpha).save(target)
            print(f"{path} -> {target} ({_summary(classes, session.names)})")
    print(f"\nresults saved to {session.folder}: {len(session.files)} overlays (.png), "
          f"masks/ (class-index PNGs: 0 = background, 1 + class index)")
    return 0
