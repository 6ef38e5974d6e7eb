"""Data: dataset readers (SYSU-MM01, RegDB), samplers, transforms and a generated miniature dataset."""

from .records import IR, RGB, ImageRecord

__all__ = ["ImageRecord", "RGB", "IR"]
