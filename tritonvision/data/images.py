"""Reading image and mask files into the sample format, with errors that name the file."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch import Tensor

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
PathLike = Union[str, Path]
EXIF_ORIENTATION = 0x0112


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path}: cannot read image ({e})") from e
    return img


def load_image(path: PathLike) -> Tensor:
    """An RGB image file -> float32 Tensor[3, H, W] in [0, 1], upright: an EXIF orientation
    (phone photos) is applied, as image viewers and annotation tools show the image."""
    from PIL import ImageOps

    img = ImageOps.exif_transpose(_open(Path(path))).convert("RGB")
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def image_size(path: PathLike) -> "tuple[int, int]":
    """(height, width) of an image file as :func:`load_image` gives it (EXIF orientation
    applied), reading only its header."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8):  # turned by 90 degrees
                w, h = h, w
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"{path}: cannot read image ({e})") from e
    return h, w


def load_index_mask(path: PathLike, palette: "np.ndarray | None" = None) -> Tensor:
    """A class-index PNG (mode P palette indices, or L/I grey values) -> int64 Tensor[H, W].

    RGB masks are accepted only when ``palette`` ([N, 3] uint8, colour of each index) is
    given; a colour not in the palette is an error naming the file.
    """
    path = Path(path)
    img = _open(path)
    if img.mode in ("P", "L", "I", "I;16", "1"):
        return torch.from_numpy(np.asarray(img).astype(np.int64))
    if img.mode in ("RGB", "RGBA") and palette is not None:
        rgb = np.asarray(img.convert("RGB"), dtype=np.int64)
        code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        pal = palette.astype(np.int64)
        pal_code = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
        lut = {int(c): i for i, c in enumerate(pal_code)}
        uniq, inverse = np.unique(code, return_inverse=True)
        missing = [int(u) for u in uniq if int(u) not in lut]
        if missing:
            c = missing[0]
            raise ValueError(f"{path}: colour ({c >> 16}, {(c >> 8) & 255}, {c & 255}) is not a "
                             f"class colour of the palette; save masks as palette (mode P) or "
                             f"greyscale class-index PNGs")
        values = np.array([lut[int(u)] for u in uniq], dtype=np.int64)
        return torch.from_numpy(values[inverse].reshape(code.shape))
    raise ValueError(f"{path}: mask has image mode {img.mode!r}; expected a class-index PNG "
                     f"(palette mode P or greyscale L) whose pixel values are class indices")


def check_mask(mask: Tensor, image: Tensor, path: PathLike, num_seg_classes: "int | None",
               void: int = 255) -> None:
    """The mask must match the image size and hold values in [0, num_seg_classes) or void."""
    if tuple(mask.shape) != tuple(image.shape[-2:]):
        raise ValueError(f"{path}: mask is {tuple(mask.shape)} (H, W) but its image is "
                         f"{tuple(image.shape[-2:])}")
    if num_seg_classes is not None:
        bad = (mask >= num_seg_classes) & (mask != void) | (mask < 0)
        if bool(bad.any()):
            value = int(mask[bad][0])
            raise ValueError(f"{path}: mask value {value} is not a class index in "
                             f"[0, {num_seg_classes}) nor the void value {void}")


def list_images(folder: Path) -> "list[Path]":
    """Image files directly in ``folder``, sorted by name."""
    if not folder.is_dir():
        raise FileNotFoundError(f"images folder not found: {folder}")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def find_image(folder: Path, stem: str) -> Path:
    """The image file ``folder/stem.<ext>`` for any known image extension."""
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"no image named {stem!r} (.jpg/.png/...) in {folder}")
