from .deconv import DeconvConcat, DeconvSkip  # noqa: F401
