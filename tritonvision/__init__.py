"""tritonvision: Triton kernels for CNN object detection and semantic segmentation."""
from . import masks, ops

__all__ = ["masks", "ops"]
__version__ = "0.1.0"
