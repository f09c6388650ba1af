"""The live page in real headless Chromium with a fake camera fed from OpenFace's sample webcam clips.

The camera is Chromium's fake capture device reading a ``.y4m`` file that the test writes from a
vendored clip (``tests/fixtures/openface/video/``, decoded by OpenCV: no ffmpeg needed). The page
streams the frames to a real server (uvicorn on a free loopback port, real models); the test
asserts that per-face answers arrive, that boxes are drawn on the overlay and cards beside it,
for the one-face and the three-face clip.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.browser import needs_chromium

pytest.importorskip("fastapi", reason="the live extra: pip install -e '.[cnn,live]'")
pytest.importorskip("tensorflow", reason="the cnn extra (the live mode runs the CNN stage's models)")

VIDEOS = Path(__file__).parent / "fixtures" / "openface" / "video"
pytestmark = [pytest.mark.browser, needs_chromium]


def write_y4m(video: Path, out: Path, frames: int = 30) -> Path:
    """The first ``frames`` frames of ``video`` as a YUV4MPEG2 file (4:2:0, the clip's size), the
    format Chromium's ``--use-file-for-fake-video-capture`` reads."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    fps = max(1, int(round(capture.get(cv2.CAP_PROP_FPS) or 15)))
    planes = []
    while len(planes) < frames:
        ok, frame = capture.read()
        if not ok:
            break
        planes.append(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420))
    capture.release()
    height, width = (planes[0].shape[0] * 2 // 3, planes[0].shape[1]) if planes else (0, 0)
    with open(out, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for plane in planes:
            handle.write(b"FRAME\n")
            handle.write(np.ascontiguousarray(plane).tobytes())
    return out


def open_page(url: str, camera: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1400,1100",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.get(url)
    return driver


@pytest.mark.parametrize(("clip", "faces"), [("default_30.avi", 1), ("multi_face_20.avi", 3)])
def test_camera_faces_are_answered_and_drawn(live_server, tmp_path, clip, faces):
    camera = write_y4m(VIDEOS / clip, tmp_path / "camera.y4m")
    driver = open_page(live_server.url + "/", camera)
    try:
        deadline = time.monotonic() + 15
        while not driver.execute_script("return window.__live && window.__live.ready === true"):
            assert time.monotonic() < deadline, "the page did not load"
            time.sleep(0.1)
        driver.find_element("id", "start").click()
        live = {}
        while time.monotonic() < deadline:
            live = driver.execute_script("return window.__live")
            if live["withFaces"] >= 5 and live["maxFaces"] >= faces:
                break
            time.sleep(0.2)
        driver.find_element("id", "stop").click()  # no more answers: the page holds still
        time.sleep(0.5)
        live = driver.execute_script("return window.__live")
        assert not live["errors"], live["errors"]
        assert live["withFaces"] >= 5, live
        assert live["maxFaces"] == faces  # every face of the clip, no phantom ones
        answer = live["last"]
        keys = {"id", "box", "probabilities", "cnn_probabilities", "aus", "contributions", "au_source"}
        assert len(answer["faces"]) == faces and keys <= set(answer["faces"][0])
        # drawn: the overlay has painted pixels, and one card per face beside the video
        painted = driver.execute_script(
            "const c = document.getElementById('overlay');"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;"
        )
        assert painted > 500
        cards = driver.execute_script(
            "return [...document.querySelectorAll('#faces .face-card')].map((c) => c.innerText)"
        )
        assert len(cards) == faces
        assert all("→" in text and "AU model" in text and "CNN" in text for text in cards), cards
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
        driver.save_screenshot(str(tmp_path / f"live-{clip}.png"))  # to check by eye (--basetemp)
    finally:
        driver.quit()
