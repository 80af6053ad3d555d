"""Images and video through OpenCV, always RGB on our side (OpenCV's BGR stays inside this module).

Choices: files are read through `np.fromfile` + `cv2.imdecode`, so paths with any characters work;
images come back as uint8 (16-bit files are scaled to 8 bit by OpenCV, an alpha channel is dropped);
JPEG is written at quality 95; video frames are skipped with `grab()` (no decoding) between strides.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from wisecli.cli.errors import InputError
from wisecli.runtime.io.atomic import write_bytes

IMAGE_HINT = "give a PNG, JPEG, BMP or TIFF image"
WRITE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def read_image(path: Path | str, *, gray: bool = False) -> np.ndarray:
    """An image as RGB uint8 (H, W, 3), or (H, W) with `gray`; unreadable -> InputError (exit 2)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image not found: {path}", hint=IMAGE_HINT)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"cannot read image {path}: not a decodable image", hint=IMAGE_HINT)
    return image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image(path: Path | str, array) -> Path:
    """Write an RGB (H, W, 3) or gray (H, W) uint8 array (uint16 for PNG/TIFF) atomically; the format
    follows the extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise InputError(f"cannot write image {path}: unknown extension {suffix or '(none)'}",
                         hint="use one of " + ", ".join(WRITE_SUFFIXES))
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype not in (np.uint8, np.uint16) or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"write_image wants (H, W) or (H, W, 3) uint8, got {array.shape} {array.dtype}")
    bgr = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, bgr, params)
    if not ok:
        raise InputError(f"cannot encode {path.name} as {suffix}", hint="use .png for 16-bit images")
    return write_bytes(path, buf.tobytes())


def iter_video_frames(path: Path | str, *, max_frames: int | None = None,
                      stride: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame index, RGB uint8 frame) for every `stride`-th frame, at most `max_frames` of them.

    A missing file, a file OpenCV cannot open or a video without a single frame is an InputError.
    """
    path = Path(path)
    if stride < 1:
        raise ValueError("stride must be >= 1")
    if not path.is_file():
        raise InputError(f"video not found: {path}", hint="give a video file (.mp4, .avi, ...)")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"cannot open video {path}", hint="the file is corrupt or its codec is not supported by OpenCV")
        index = yielded = 0
        while max_frames is None or yielded < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            yielded += 1
            for _ in range(stride - 1):
                if not cap.grab():
                    return
            index += stride
        if yielded == 0 and max_frames != 0:
            raise InputError(f"cannot read any frame of video {path}",
                             hint="the file is corrupt or its codec is not supported by OpenCV")
    finally:
        cap.release()
