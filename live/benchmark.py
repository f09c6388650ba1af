"""``make benchmark-serve``: frames/s and latency of the live server over its WebSocket.

The server runs as it does under ``make serve`` (uvicorn, the app, the loaded models), on a free
loopback port in this process; one client sends the frames of OpenFace's sample webcam clips
(``tests/fixtures/openface/video``: ``default_30.avi``, one face, and ``multi_face_20.avi``, three
faces; 640x480), JPEG-encoded beforehand at quality 80 as a browser sends them, in a loop for
``seconds`` per clip. The client waits for each answer before sending the next frame (one frame
in flight, as the page does), so frames/s is what one camera gets and latency runs from sending
a frame to receiving its JSON. The split is the median of the server's own ``timings_ms`` per
stage; "network + client" is the latency minus the server's time.

:func:`compare_detectors` first measures the face detectors on the same clips and on the five
webcam frames of ``video/frames`` (faces found per frame, ms per frame): YuNet at the size the
server uses, YuNet at full size, and the Haar cascade (the fallback).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np

from live.engine import LiveEngine

CLIPS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "openface" / "video"
CASES = (("1 face", "default_30.avi", 1), ("3 faces", "multi_face_20.avi", 3))
JPEG_QUALITY = 80
STAGES = ("decode", "detect", "crop", "au_estimator", "au_model", "cnn", "encode")


def clip_frames(path: Path) -> list[bytes]:
    """Every frame of a clip as JPEG bytes (quality ``JPEG_QUALITY``).

    Raises:
        FileNotFoundError: the clip is missing or holds no frame.
    """
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes())
    capture.release()
    if not frames:
        raise FileNotFoundError(f"{path}: no frame (the benchmark reads the vendored sample clips)")
    return frames


def run_clip(url: str, frames: list[bytes], seconds: float) -> dict:
    """Send ``frames`` in a loop over one WebSocket for ``seconds``, one in flight; return
    ``frames``, ``fps``, ``latency_ms`` (median, p95), ``faces`` (median per answer), ``errors``
    and the server's median ``split_ms`` per stage."""
    from websockets.sync.client import connect

    latencies, faces, errors = [], [], 0
    split: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "server")}
    with connect(url.replace("http://", "ws://") + "/ws", max_size=None) as socket:
        socket.send(frames[0])  # warm-up: the first answer of a connection is not counted
        socket.recv()
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            sent = time.perf_counter()
            socket.send(frames[i % len(frames)])
            answer = json.loads(socket.recv())
            latencies.append((time.perf_counter() - sent) * 1000)
            i += 1
            if "error" in answer:
                errors += 1
                continue
            faces.append(len(answer["faces"]))
            for stage in split:
                split[stage].append(answer["timings_ms"].get(stage, 0.0))
        elapsed = time.perf_counter() - start
    return {
        "frames": len(latencies),
        "fps": len(latencies) / elapsed,
        "latency_ms": (statistics.median(latencies), float(np.percentile(latencies, 95))),
        "faces": statistics.median(faces) if faces else 0,
        "errors": errors,
        "split_ms": {k: statistics.median(v) if v else 0.0 for k, v in split.items()},
    }


def compare_detectors() -> list[dict]:
    """Per detector and input: frames, faces per frame (mean, min, max) and median ms a frame."""
    import cv2

    from live import detector as detectors

    inputs = {clip: [] for _, clip, _ in CASES}
    for clip in inputs:
        capture = cv2.VideoCapture(str(CLIPS / clip))
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            inputs[clip].append(frame)
        capture.release()
    inputs["frames/*.jpg"] = [cv2.imread(str(p)) for p in sorted((CLIPS / "frames").glob("*.jpg"))]
    candidates = {
        f"YuNet {detectors.DETECT_SIDE} px": detectors.YuNet(),
        "YuNet full size": detectors.YuNet(side=None),
        "Haar cascade": detectors.Haar(),
    }
    rows = []
    for name, detector in candidates.items():
        for source, frames in inputs.items():
            detector.detect(frames[0])  # warm-up
            counts, times = [], []
            for frame in frames:
                start = time.perf_counter()
                counts.append(len(detector.detect(frame)))
                times.append((time.perf_counter() - start) * 1000)
            rows.append({"detector": name, "input": source, "frames": len(frames), "mean": np.mean(counts),
                         "min": min(counts), "max": max(counts), "ms": statistics.median(times)})  # fmt: skip
    return rows


def benchmark(engine: LiveEngine, seconds: float) -> int:
    """Run both clips against a server around ``engine``; print the figures; return 0."""
    import os
    import tempfile

    from live.app import AppSettings
    from live.server import start_in_thread

    print(f"live server benchmark: {os.cpu_count()} CPU cores, detector {engine.detector.name}")
    print(f"AU source {engine.au_source}; AU model {engine.loaded.path.name}; CNN {engine.cnn.name}")
    print("\nface detectors (640x480; the clips show 1 and 3 faces, the frames 1):")
    print(f"{'detector':<18} {'input':<18} {'frames':>6} {'faces/frame':>12} {'min-max':>8} {'ms/frame':>9}")
    for r in compare_detectors():
        print(f"{r['detector']:<18} {r['input']:<18} {r['frames']:>6} {r['mean']:>12.2f} "
              f"{str(r['min']) + '-' + str(r['max']):>8} {r['ms']:>9.1f}")  # fmt: skip
    print()
    with tempfile.TemporaryDirectory() as out:
        running = start_in_thread(engine, AppSettings(out=Path(out)))
        try:
            results = [
                (label, expected, run_clip(running.url, clip_frames(CLIPS / clip), seconds))
                for label, clip, expected in CASES
            ]
        finally:
            running.stop()
    header = f"{'640x480':<9} {'frames':>7} {'frames/s':>9} {'median ms':>10} {'p95 ms':>8} {'faces':>6}"
    print(header + "".join(f" {stage:>12}" for stage in (*STAGES, "net+client")))
    for label, expected, r in results:
        split = r["split_ms"]
        network = r["latency_ms"][0] - split["server"]
        print(
            f"{label:<9} {r['frames']:>7} {r['fps']:>9.1f} {r['latency_ms'][0]:>10.1f} "
            f"{r['latency_ms'][1]:>8.1f} {r['faces']:>6g}"
            + "".join(f" {split[stage]:>12.2f}" for stage in STAGES)
            + f" {network:>12.2f}"
        )
        if r["errors"] or r["faces"] != expected:
            print(
                f"  note: {r['errors']} error answer(s); median faces {r['faces']:g}, "
                f"the clip shows {expected}"
            )
    print("split: the server's median ms per stage; net+client: median latency minus the server's time")
    return 0
