"""Face detection and square face crops (spec §2.1).

Detectors (`--detector`):
* `haar` (default): OpenCV's `haarcascade_frontalface_default.xml` from `cv2.data.haarcascades`, scaleFactor 1.1,
  minNeighbors 5, minimum size 10 % of the image's short side, the largest face kept [reconstructed]. Needs
  `opencv-python-headless>=4.10,<5` (OpenCV 5 ships neither the cascades nor `CascadeClassifier`).
* `lbp`: scikit-image's `feature.Cascade` with its bundled LBP frontal-face cascade (no OpenCV cascade needed);
  scale factor 1.2, step ratio 1, same minimum size, largest face.
* `boxes`: the box the data set ships for the frame (`Sample.box` / per-frame box files).
* `none`: the input already is a face crop; its box is the whole image.

Crop: a square of side k·max(w, h) centred on the box, resampled to `size`² with bilinear interpolation and
replicated borders where it leaves the image [reconstructed: replicated rather than black borders, so the crop
frame carries no artificial edge]. k is 1.3 at test time (CDCN's loaders); training draws k from [1.2, 1.5]
(see `data.augment`). With `none`, k = 1 and the box is the image.
"""

from __future__ import annotations

import importlib.metadata as md
from dataclasses import dataclass

import numpy as np

from wisecli.cli.errors import InputError

DETECTORS = ("haar", "lbp", "boxes", "none")
TEST_SCALE = 1.3
TRAIN_SCALE = (1.2, 1.5)


def opencv_status() -> dict:
    """What OpenCV offers: version, the Haar cascade path, and whether two cv2 wheels clash."""
    import cv2

    dists = []
    for name in ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                 "opencv-contrib-python-headless"):
        try:
            md.version(name)
            dists.append(name)
        except md.PackageNotFoundError:
            pass
    cascade = None
    data = getattr(cv2, "data", None)
    if data is not None and hasattr(cv2, "CascadeClassifier"):
        import os

        path = os.path.join(data.haarcascades, "haarcascade_frontalface_default.xml")
        cascade = path if os.path.exists(path) else None
    return {"version": cv2.__version__, "major": int(cv2.__version__.split(".")[0]), "cascade": cascade,
            "distributions": dists}


def check_opencv() -> None:
    """Refuse broken OpenCV installs before any work (exit 2)."""
    st = opencv_status()
    if len(st["distributions"]) > 1:
        raise InputError(f"several OpenCV wheels are installed ({', '.join(st['distributions'])}); they clash over cv2/",
                         'pip uninstall them all, then pip install "opencv-python-headless<5"')


@dataclass
class Detector:
    """A face detector returning the largest face box (x, y, w, h) or None."""

    name: str
    _impl: object = None

    def detect(self, rgb: np.ndarray, box=None):
        """The largest face (x, y, w, h), the given box for `boxes`, the whole image for `none`; None if absent."""
        if self.name == "none":
            h, w = rgb.shape[:2]
            return (0, 0, w, h)
        if self.name == "boxes":
            return tuple(int(v) for v in box) if box is not None else None
        boxes = self.detect_all(rgb)
        return max(boxes, key=lambda b: b[2] * b[3]) if boxes else None

    def detect_all(self, rgb: np.ndarray) -> list[tuple]:
        """Every face the cascade finds (haar, lbp), minimum size 10 % of the short side."""
        h, w = rgb.shape[:2]
        m = max(8, int(round(0.1 * min(h, w))))
        if self.name == "haar":
            import cv2

            grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
            found = self._impl.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
            return [tuple(int(v) for v in b) for b in found] if len(found) else []
        if self.name == "lbp":
            from skimage.color import rgb2gray

            grey = rgb2gray(rgb) if rgb.ndim == 3 else rgb.astype(np.float64) / 255
            found = self._impl.detect_multi_scale(grey, scale_factor=1.2, step_ratio=1, min_size=(m, m),
                                                  max_size=(h, w))
            return [(int(d["c"]), int(d["r"]), int(d["width"]), int(d["height"])) for d in found]
        raise ValueError(f"detector {self.name} does not search images")


def make_detector(name: str) -> Detector:
    """Build a detector, or explain why it cannot run (exit 2)."""
    if name not in DETECTORS:
        raise InputError(f"unknown detector {name!r}", f"use one of {', '.join(DETECTORS)}")
    if name == "haar":
        check_opencv()
        st = opencv_status()
        if st["major"] >= 5 or st["cascade"] is None:
            raise InputError(f"OpenCV {st['version']} has no Haar cascade (haarcascade_frontalface_default.xml)",
                             'pip install "opencv-python-headless<5", or use --detector lbp|none')
        import cv2

        return Detector("haar", cv2.CascadeClassifier(st["cascade"]))
    if name == "lbp":
        from skimage import data
        from skimage.feature import Cascade

        return Detector("lbp", Cascade(data.lbp_frontal_face_cascade_filename()))
    return Detector(name)


def crop_face(img: np.ndarray, box, scale: float, size: int) -> np.ndarray:
    """Square crop of side scale·max(w, h) centred on `box`, resampled to size² (replicated borders)."""
    import cv2

    x, y, w, h = (float(v) for v in box)
    side = scale * max(w, h)
    cx, cy = x + w / 2, y + h / 2
    a = size / side
    m = np.array([[a, 0, size / 2 - a * cx], [0, a, size / 2 - a * cy]], dtype=np.float64)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def box_extent(box, scale: float) -> tuple[float, float]:
    """Width and height of the face box as fractions of its square crop (the face ellipse's axes)."""
    w, h = float(box[2]), float(box[3])
    s = max(w, h)
    return w / (s * scale), h / (s * scale)


def iou(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def detectors_status() -> dict:
    """Which face detectors this installation offers (`info`): Haar (OpenCV version, cascade file, wheels), LBP
    (scikit-image's cascade), boxes and none."""
    from skimage import data as skdata

    try:
        cv = opencv_status()
    except Exception as exc:  # noqa: BLE001 - report, don't fail
        cv = {"error": str(exc)}
    return {"haar": {"opencv": cv.get("version"), "cascade": cv.get("cascade"),
                     "available": bool(cv.get("cascade")) and cv.get("major", 5) < 5,
                     "opencv_wheels": cv.get("distributions")},
            "lbp": {"cascade": skdata.lbp_frontal_face_cascade_filename(), "available": True},
            "boxes": {"available": True}, "none": {"available": True}}
