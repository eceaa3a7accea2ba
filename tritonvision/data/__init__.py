"""Datasets, folder readers, joint image/mask/box transforms and collate functions.

A sample is ``(image, target)``: image float32 Tensor[3, H, W] in [0, 1]; target a dict
with ``boxes`` float32 [K, 4] xyxy pixels, ``labels`` int64 [K] in [0, num_classes),
``mask`` int64 [H, W] (0 = background, 1 + label, 255 = void) and ``image_id`` int.
"""
from .collate import collate_detection, collate_segmentation
from .shapes import CLASSES as SHAPES_CLASSES
from .shapes import ShapesDataset
from .coco import CocoDetection
from .formats import open_dataset
from .images import load_image, load_index_mask
from .mask_folder import MaskFolder
from .transforms import (Compose, Normalize, RandomCrop, RandomHorizontalFlip, RandomScale,
                         Resize, resize_sample)
from .voc import VOC_CLASSES, VOCDetection, VOCSegmentation, voc_palette
from .yolo import YoloDetection
