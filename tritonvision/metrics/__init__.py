from .segmentation import SegmentationMetrics, metrics_from_confusion_matrix  # noqa: F401
from .detection import MeanAveragePrecision  # noqa: F401  (detection mAP, COCO/VOC)
from .pr_curves import plot_pr_curves  # noqa: F401
