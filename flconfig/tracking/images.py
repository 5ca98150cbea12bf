"""Images as record values: an array or tensor (CHW, HWC or HW) made an 8-bit image and
encoded as a PNG on the sending site (numpy and Pillow are imported when used)."""

from __future__ import annotations

import base64
from typing import Any

from .logged_values import as_array
from .records import MAX_IMAGE_SIDE


def image_to_hwc(tag: str, img_tensor: Any, dataformats: str) -> Any:
    """An image as a ``uint8`` array of shape (H, W, C), C in 1, 3, 4 (torch's rules).

    ``dataformats`` is ``"CHW"`` (default), ``"HWC"`` or ``"HW"``. Float
    images are in [0, 1] and scaled by 255; integer images are clipped to
    [0, 255].
    """
    import numpy as np

    if not isinstance(dataformats, str) or dataformats.upper() not in ("CHW", "HWC", "HW"):
        raise ValueError(
            f"dataformats of {tag!r} must be 'CHW', 'HWC' or 'HW', got {dataformats!r}"
        )
    fmt = dataformats.upper()
    arr = as_array(tag, "img_tensor", img_tensor)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"img_tensor of {tag!r} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim != len(fmt):
        raise ValueError(
            f"img_tensor of {tag!r} has shape {arr.shape}, which does not match dataformats {fmt!r}"
        )
    if fmt == "HW":
        arr = arr[:, :, None]
    elif fmt == "CHW":
        arr = arr.transpose(1, 2, 0)
    height, width, channels = arr.shape
    if channels not in (1, 3, 4):
        raise ValueError(f"img_tensor of {tag!r} has {channels} channels; use 1, 3 or 4")
    if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
        raise ValueError(f"img_tensor of {tag!r} has size {height}x{width}")
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype.kind == "f":
        out = np.clip(np.nan_to_num(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    else:
        out = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def encode_image(hwc: Any) -> dict[str, Any]:
    """The record value of an image: a base64 PNG with its size."""
    import io

    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - tensorboard setups have Pillow
        raise ImportError("add_image needs Pillow: pip install pillow") from exc

    height, width, channels = hwc.shape
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    image = Image.fromarray(hwc[:, :, 0] if channels == 1 else hwc, mode=mode)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return {
        "format": "png",
        "height": int(height),
        "width": int(width),
        "channels": int(channels),
        "data": base64.b64encode(buf.getvalue()).decode("ascii"),
    }
