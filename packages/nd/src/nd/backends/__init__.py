"""``nd.backends``: backend flags scripts set even on CPU (torch.backends)."""
from . import cudnn

__all__ = ["cudnn"]
