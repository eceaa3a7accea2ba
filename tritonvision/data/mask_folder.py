"""Segmentation from two folders: images and same-stem PNG class-index masks."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from torch.utils.data import Dataset

from .images import PathLike, check_mask, list_images, load_image, load_index_mask

VOID = 255


class MaskFolder(Dataset):
    """``images_dir/<stem>.<ext>`` + ``masks_dir/<stem>.png`` class-index masks.

    Args:
        images_dir: folder of images; every image is a sample, sorted by name.
        masks_dir: folder of PNG masks (palette mode P or greyscale L/I) whose pixel values
            are the segmentation classes: 0 = background, ``1 + label`` for object class
            ``label``, 255 = void (kept as 255).
        num_seg_classes: number of mask classes including background; a mask value
            >= num_seg_classes other than 255 is an error naming the file. Default: from
            ``classes``; else from a ``classes.txt`` (one object class name per line) in
            masks_dir or its parent; else 1 + the largest non-void value over all masks
            (reads every mask once at construction).
        classes: optional object class names (``num_seg_classes = len(classes) + 1``).
        transforms: optional ``transforms(image, target) -> (image, target)``.

    Every image must have its mask (missing masks fail at construction, naming the files).
    Target: ``mask`` int64 [H, W], ``image_id`` (the index); no boxes/labels.
    """

    def __init__(self, images_dir: PathLike, masks_dir: PathLike,
                 num_seg_classes: Optional[int] = None, classes: Optional[Sequence[str]] = None,
                 transforms: Optional[Callable] = None):
        self.images_dir, self.masks_dir = Path(images_dir), Path(masks_dir)
        if not self.masks_dir.is_dir():
            raise FileNotFoundError(f"MaskFolder: masks folder not found: {self.masks_dir}")
        self.files = list_images(self.images_dir)
        self.mask_files = [self.masks_dir / f"{p.stem}.png" for p in self.files]
        missing = [str(m) for m in self.mask_files if not m.is_file()]
        if missing:
            raise FileNotFoundError(f"MaskFolder: {len(missing)} image(s) have no mask, e.g. "
                                    f"{missing[0]} (for {self.files[self.mask_files.index(Path(missing[0]))]})")
        if classes is None and num_seg_classes is None:
            for candidate in (self.masks_dir / "classes.txt", self.masks_dir.parent / "classes.txt"):
                if candidate.is_file():
                    classes = [l.strip() for l in candidate.read_text().splitlines() if l.strip()]
                    break
        self.classes = tuple(classes) if classes is not None else None
        if num_seg_classes is None and self.classes is not None:
            num_seg_classes = len(self.classes) + 1
        if num_seg_classes is None:
            largest = 0
            for m in self.mask_files:
                values = load_index_mask(m)
                values = values[values != VOID]
                if values.numel():
                    largest = max(largest, int(values.max()))
            num_seg_classes = largest + 1
        if self.classes is not None and num_seg_classes != len(self.classes) + 1:
            raise ValueError(f"MaskFolder: num_seg_classes={num_seg_classes} does not match "
                             f"{len(self.classes)} classes + background")
        self.num_seg_classes = num_seg_classes
        self.num_classes = num_seg_classes - 1
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        image = load_image(self.files[index])
        mask = load_index_mask(self.mask_files[index])
        check_mask(mask, image, self.mask_files[index], self.num_seg_classes, VOID)
        target = {"mask": mask, "image_id": int(index) % max(len(self), 1)}
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def __repr__(self) -> str:
        return (f"MaskFolder({str(self.images_dir)!r}, {str(self.masks_dir)!r}: {len(self)} images, "
                f"num_seg_classes={self.num_seg_classes})")
