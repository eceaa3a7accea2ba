from .deconv import DeconvConcat, DeconvSkip  # noqa: F401
from .losses import CrossEntropy2d, DiceCELoss, DiceLoss  # noqa: F401
