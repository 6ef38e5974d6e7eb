"""Image decoding with Pillow into float tensors.

The official code opens every image with ``PIL.Image.open(path).convert("RGB")`` and lets
``torchvision.transforms.ToTensor`` scale it to ``[0, 1]``; :func:`load_image` does both steps
and returns the tensor the transforms of :mod:`sdcl_toolkit.data.transforms` work on.
"""

from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageDecodeError", "load_image"]

PathLike = Union[str, "os.PathLike[str]"]


class ImageDecodeError(OSError, ValueError):
    """An image file is missing, unreadable or not a decodable image.

    Subclasses both :class:`OSError` (it is an I/O failure) and :class:`ValueError` (the file's
    content is bad), so either ``except`` clause catches it. The message names the file and
    ``path`` holds it. Constructible from a message alone, so DataLoader worker processes can
    re-raise it with its own type.
    """

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.path = path

    def __reduce__(self):  # keep ``path`` when pickled across worker processes
        return (type(self), (str(self), self.path))


def _failure(path: str, reason: str) -> ImageDecodeError:
    return ImageDecodeError(f"cannot read image {path!r}: {reason}", path)


def load_image(path: PathLike, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Decode one image file into a float32 tensor ``[3, H, W]`` with values in ``[0, 1]``.

    Any format Pillow reads is accepted; grayscale, palette, RGBA and CMYK images are converted
    to RGB (``Image.convert("RGB")``, as the official ``Preprocessor`` does). Pixel values are
    ``uint8 / 255``, exactly what ``torchvision.transforms.ToTensor`` gives.

    Parameters
    ----------
    path:
        File name (``str`` or ``os.PathLike``).
    dtype:
        ``torch.float32`` (default: ``uint8 / 255``) or ``torch.uint8`` (the decoded bytes
        ``[3, H, W]``, without the float conversion; what the batched augmentation's workers
        use).

    Raises
    ------
    ImageDecodeError
        If the file does not exist, cannot be opened, is not an image, or is truncated or
        corrupt; the message names the file.
    TypeError
        If ``path`` is not a string or path-like object.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    if dtype not in (torch.float32, torch.uint8):
        raise ValueError(f"dtype must be torch.float32 or torch.uint8, got {dtype!r}")
    name = os.fspath(path)
    try:
        with Image.open(name) as image:
            rgb = image.convert("RGB")  # forces a full decode, so truncation is caught here
    except FileNotFoundError:
        raise _failure(name, "file not found") from None
    except IsADirectoryError:
        raise _failure(name, "is a directory, expected an image file") from None
    except UnidentifiedImageError:
        raise _failure(name, "not a recognised image format") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise _failure(name, f"corrupt or unreadable image ({error})") from error
    pixels = np.asarray(rgb, dtype=np.uint8)  # [H, W, 3]
    if pixels.ndim != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise _failure(name, f"decoded to an empty image of shape {pixels.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
    if dtype == torch.uint8:
        return tensor
    return tensor.to(torch.float32).div_(255.0)
