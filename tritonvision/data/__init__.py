"""Datasets, folder readers, joint image/mask/box transforms and collate functions.

A sample is ``(image, target)``: image float32 Tensor[3, H, W] in [0, 1]; target a dict
with ``boxes`` float32 [K, 4] xyxy pixels, ``labels`` int64 [K] in [0, num_classes)
(object classes, no background), ``mask`` int64 [H, W] (0 = background, 1 + label,
255 = void/ignore) and ``image_id`` int. Readers without masks give no ``mask``; readers
without boxes give neither ``boxes`` nor ``labels``. Some readers add per-object flags
(``difficult`` for VOC, ``iscrowd`` for COCO) that transforms filter with the boxes.

Train/val on the synthetic shapes: ``ShapesDataset.split(num_train, num_val, seed)`` or
``open_dataset("shapes", task, split)``: the splits are disjoint random streams of one seed.
"""
from .coco import CocoDetection
from .collate import collate_detection, collate_segmentation
from .formats import open_dataset, split_is_shared
from .images import load_image, load_index_mask
from .mask_folder import MaskFolder
from .shapes import CLASSES as SHAPES_CLASSES
from .shapes import ShapesDataset
from .transforms import (Compose, Letterbox, Normalize, RandomCrop, RandomHorizontalFlip,
                         RandomScale, Resize, letterbox_geometry, resize_sample)
from .voc import VOC_CLASSES, VOCDetection, VOCSegmentation, voc_palette
from .yolo import YoloDetection

__all__ = [
    "ShapesDataset", "SHAPES_CLASSES", "CocoDetection", "VOCDetection", "VOCSegmentation",
    "VOC_CLASSES", "voc_palette", "YoloDetection", "MaskFolder", "open_dataset", "split_is_shared",
    "collate_detection", "collate_segmentation", "Compose", "RandomHorizontalFlip",
    "RandomScale", "RandomCrop", "Resize", "Letterbox", "letterbox_geometry", "Normalize",
    "resize_sample", "load_image",
    "load_index_mask",
]
