"""Images and video: RGB order, lossless PNG round trip, atomic writes, frame stride, bad input -> exit 2."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wisecli.cli.errors import InputError
from wisecli.runtime.io.images import iter_video_frames, read_image, write_image


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)


def test_png_round_trip_is_exact_and_rgb(tmp_path, rgb):
    out = write_image(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(read_image(out), rgb)
    # OpenCV itself sees BGR: channel order was converted on the way in
    np.testing.assert_array_equal(cv2.imread(str(out))[..., ::-1], rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_gray_read_matches_opencv_luma(tmp_path, rgb):
    out = write_image(tmp_path / "a.png", rgb)
    gray = read_image(out, gray=True)
    assert gray.shape == rgb.shape[:2] and gray.dtype == np.uint8
    want = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(int)
    assert np.abs(gray.astype(int) - want).max() <= 1


def test_gray_and_16bit_png(tmp_path):
    g = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "g.png", g), gray=True), g)
    w = (np.arange(12, dtype=np.uint16) * 5000).reshape(3, 4)
    np.testing.assert_array_equal(cv2.imread(str(write_image(tmp_path / "w.png", w)), cv2.IMREAD_UNCHANGED), w)


def test_jpeg_by_extension_close_to_input(tmp_path):
    smooth = np.zeros((16, 16, 3), np.uint8)
    smooth[..., 0] = 200
    smooth[..., 1] = np.arange(16)[None, :] * 8
    out = write_image(tmp_path / "a.jpg", smooth)
    assert out.read_bytes()[:2] == b"\xff\xd8"  # JPEG magic
    assert np.abs(read_image(out).astype(int) - smooth).mean() < 3


def test_write_refuses_unknown_extension_and_bad_arrays(tmp_path, rgb):
    with pytest.raises(InputError):
        write_image(tmp_path / "a.gif2", rgb)
    with pytest.raises(ValueError):
        write_image(tmp_path / "a.png", rgb.astype(np.float32))


def test_unreadable_images_are_input_errors(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for p in (tmp_path / "bad.png", tmp_path / "empty.jpg", tmp_path / "missing.png", tmp_path):
        with pytest.raises(InputError) as err:
            read_image(p)
        assert err.value.exit_code == 2


def _video(path, n=7, h=16, w=24):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    assert writer.isOpened()
    frames = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[..., 0] = 30 * i          # red grows with the frame index (RGB)
        f[..., 2] = 200             # constant blue
        frames.append(f)
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return frames


def test_video_frames_rgb_with_stride_and_max(tmp_path):
    frames = _video(tmp_path / "v.avi")
    got = list(iter_video_frames(tmp_path / "v.avi"))
    assert [i for i, _ in got] == list(range(7))
    for (i, f), want in zip(got, frames):
        assert f.shape == want.shape and f.dtype == np.uint8
        assert np.abs(f.astype(int) - want).mean() < 4  # MJPG is lossy
    got = list(iter_video_frames(tmp_path / "v.avi", stride=3))
    assert [i for i, _ in got] == [0, 3, 6]
    assert abs(float(got[1][1][..., 0].mean()) - 90) < 4  # frame 3 really is frame 3
    got = list(iter_video_frames(tmp_path / "v.avi", stride=2, max_frames=2))
    assert [i for i, _ in got] == [0, 2]


def test_unreadable_video_is_input_error(tmp_path):
    (tmp_path / "bad.avi").write_bytes(b"RIFF....AVI garbage" * 10)
    for p in (tmp_path / "bad.avi", tmp_path / "missing.mp4"):
        with pytest.raises(InputError) as err:
            list(iter_video_frames(p))
        assert err.value.exit_code == 2
