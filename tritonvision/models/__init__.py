"""Models built from the fused ops: FCN, FCN-8s, U-Net and YOLO (v1, with YOLOv2 options)."""
from .fcn import FCN8s, SimpleFCN
from .unet import UNet
from .yolo import YOLO, YOLOInference
from .yolo_loss import pad_targets, yolo_loss

__all__ = ["FCN8s", "SimpleFCN", "UNet", "YOLO", "YOLOInference", "pad_targets", "yolo_loss"]
