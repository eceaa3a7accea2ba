"""tritonvision: Triton kernels for CNN object detection and semantic segmentation."""
from . import ops

__all__ = ["ops"]
__version__ = "0.1.0"
