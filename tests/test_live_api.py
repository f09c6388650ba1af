"""The live server's JSON API and WebSocket, as a real server (uvicorn on a free loopback port)
with the real models: YuNet, the AU estimator, the seed AU logit, mini-XCEPTION.

Frames are OpenFace's sample webcam clips (``tests/fixtures/openface/video``: one face, three
faces; 640x480) as JPEG. Bad inputs are table-driven: each gets a clear JSON error and the
connection (or the server) stays up, checked by a good frame answered afterwards.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the live extra: pip install -e '.[cnn,live]'")
pytest.importorskip("tensorflow", reason="the cnn extra (the live mode runs the CNN stage's models)")

from analysis.au_table import AU_R_COLUMNS  # noqa: E402
from analysis.labels import EMOTIONS  # noqa: E402

VIDEOS = Path(__file__).parent / "fixtures" / "openface" / "video"


def _frames(clip: str, n: int = 10) -> list[bytes]:
    from live.benchmark import clip_frames

    return clip_frames(VIDEOS / clip)[:n]


def _jpeg(image: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".jpg", image)[1].tobytes()


def _get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body or b"{}")
        except ValueError:  # Starlette's own plain-text refusals (a wrong Host)
            return error.code, {"text": body.decode(errors="replace")}


def _post_file(url: str, name: str, data: bytes) -> tuple[int, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _connect(server, **kwargs):
    from websockets.sync.client import connect

    return connect(server.url.replace("http://", "ws://") + "/ws", max_size=None, **kwargs)


def _check_face(face: dict) -> None:
    """One face of an answer: the API's keys, six probabilities summing to 1 for both models,
    the 17 AU intensities in 0-5, and contributions that sum to the explained log-odds."""
    assert {"id", "box", "probabilities", "cnn_probabilities", "aus", "contributions", "au_source"} <= set(
        face
    )
    assert len(face["box"]) == 4 and face["box"][2] > 0 and face["box"][3] > 0
    for key in ("probabilities", "cnn_probabilities"):
        assert list(face[key]) == list(EMOTIONS)
        assert abs(sum(face[key].values()) - 1) < 1e-3
    assert list(face["aus"]) == list(AU_R_COLUMNS)
    assert all(0 <= v <= 5 for v in face["aus"].values())
    assert abs(sum(face["contributions"].values()) - face["log_odds"]) < 2e-3  # 4-digit rounding


def test_health_says_what_runs_and_the_limits(live_server):
    status, health = _get(live_server.url + "/health")
    assert status == 200 and health["status"] == "ok"
    assert health["emotions"] == list(EMOTIONS) and list(health["aus"]) == list(AU_R_COLUMNS)
    assert health["aus"]["AU12_r"] == "lip corner puller"
    assert "au_estimator.keras (sha256" in health["au_source"] and health["detector"].startswith("YuNet")
    assert health["limits"]["frame_bytes"] == 2 * 1024 * 1024 and health["limits"]["clients"] == 8


def test_openapi_page_works_offline(live_server):
    """``/docs`` loads Swagger UI from this server (no CDN), ``/openapi.json`` lists the routes."""
    with urllib.request.urlopen(live_server.url + "/docs", timeout=30) as response:
        page = response.read().decode()
    assert "/docs-assets/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    with urllib.request.urlopen(
        live_server.url + "/docs-assets/swagger-ui-bundle.js", timeout=30
    ) as response:
        assert len(response.read()) > 100_000
    status, spec = _get(live_server.url + "/openapi.json")
    assert status == 200 and {"/health", "/api/explain"} <= set(spec["paths"])


def test_websocket_answers_every_frame_in_order_with_a_steady_face_id(live_server):
    frames = _frames("default_30.avi")
    with _connect(live_server) as socket:
        answers = []
        for frame in frames:
            socket.send(frame)
            answers.append(json.loads(socket.recv()))
    assert [a["frame"] for a in answers] == list(range(1, len(frames) + 1))
    assert all(a["dropped"] == 0 and len(a["faces"]) == 1 for a in answers), answers[0]
    assert {a["faces"][0]["id"] for a in answers} == {1}  # one person, one id while in view
    for answer in answers:
        _check_face(answer["faces"][0])
        assert (answer["width"], answer["height"]) == (640, 480)
        assert {"decode", "detect", "au_estimator", "au_model", "cnn", "encode"} <= set(answer["timings_ms"])


def test_three_faces_keep_three_ids(live_server):
    with _connect(live_server) as socket:
        ids = []
        for frame in _frames("multi_face_20.avi"):
            socket.send(frame)
            answer = json.loads(socket.recv())
            ids.append(sorted(face["id"] for face in answer["faces"]))
            for face in answer["faces"]:
                _check_face(face)
    assert all(len(i) == 3 for i in ids) and len({tuple(i) for i in ids}) == 1, ids


def test_frames_sent_while_busy_are_dropped_not_queued(live_server):
    """40 frames sent at once: most are dropped (one frame per connection waits for the models,
    never a queue); the answers stay in order, and each says how many were dropped since the one
    before, so that answers + dropped = frames sent (the last drops are told by the answer to
    the frame sent after them)."""
    frames = _frames("default_30.avi", 20) * 2
    answers = []
    with _connect(live_server) as socket:
        for frame in frames:
            socket.send(frame)
        try:
            while True:
                answers.append(json.loads(socket.recv(timeout=5)))
        except TimeoutError:  # quiet: every frame was answered or dropped
            pass
        socket.send(frames[0])
        answers.append(json.loads(socket.recv(timeout=60)))
    numbers = [a["frame"] for a in answers]
    assert numbers == sorted(numbers) and numbers[0] == 1 and numbers[-1] == len(frames) + 1
    assert len(answers) + sum(a["dropped"] for a in answers) == len(frames) + 1
    assert len(answers) < len(frames) // 2, numbers


def _one_by_10000() -> bytes:
    return _jpeg(np.full((10_000, 1, 3), 128, np.uint8))


BAD_FRAMES = {
    "empty message": (b"", "empty message"),
    "text instead of binary": ("hello", "send frames as binary JPEG messages"),
    "not an image": (b"\xff\xd8\xff" + b"not a jpeg at all" * 10 + b"\xff\xd9", "not an image"),
    "not a JPEG": (b"GIF89a" + bytes(100), "not a JPEG image"),
    "truncated JPEG": ("truncated", "truncated JPEG"),
    "1x10,000 image": ("tall", "over the limit of 4096 px"),
    "3 MB frame": (b"\xff\xd8\xff" + bytes(3 * 1024 * 1024), "over the limit of 2.0 MB"),
    "50 MB message": (b"\xff\xd8\xff" + bytes(50 * 1024 * 1024), "over the limit of 2.0 MB"),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_bad_frames_get_a_clear_error_and_the_connection_stays_up(live_server, case):
    message, expected = BAD_FRAMES[case]
    good = _frames("default_30.avi", 1)[0]
    if message == "truncated":
        message = good[: len(good) // 2]
    elif message == "tall":
        message = _one_by_10000()
    with _connect(live_server) as socket:
        socket.send(message)
        answer = json.loads(socket.recv(timeout=60))
        assert expected in answer["error"], answer
        socket.send(good)  # the same connection still works
        assert len(json.loads(socket.recv(timeout=60))["faces"]) == 1


def test_a_message_over_the_transport_limit_closes_only_that_connection(live_engine, tmp_path):
    """Over ``transport_bytes`` the server does not read the message: it closes the connection
    (code 1009, message too big); the server and other clients go on."""
    from websockets.exceptions import ConnectionClosed

    from live.app import AppSettings
    from live.frames import Limits
    from live.server import start_in_thread

    running = start_in_thread(live_engine, AppSettings(out=tmp_path, limits=Limits(transport_bytes=4 << 20)))
    try:
        with _connect(running) as socket:
            socket.send(bytes(5 << 20))
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=30)
            assert closed.value.rcvd.code == 1009
        with _connect(running) as socket:
            socket.send(_frames("default_30.avi", 1)[0])
            assert len(json.loads(socket.recv(timeout=60))["faces"]) == 1
    finally:
        running.stop()


def test_client_limit_and_frame_rate_limit(live_engine, tmp_path):
    from websockets.exceptions import ConnectionClosed

    from live.app import AppSettings
    from live.frames import Limits
    from live.server import start_in_thread

    running = start_in_thread(live_engine, AppSettings(out=tmp_path, limits=Limits(clients=1, fps=2)))
    frame = _frames("default_30.avi", 1)[0]
    try:
        with _connect(running) as first:
            with _connect(running) as second:
                assert "server full: 1 clients at most" in json.loads(second.recv(timeout=30))["error"]
                with pytest.raises(ConnectionClosed):
                    second.recv(timeout=30)
            answers = []
            for _ in range(4):  # answered one by one: only the frame rate limits them
                first.send(frame)
                answers.append(json.loads(first.recv(timeout=60)))
            errors = [a["error"] for a in answers if "error" in a]
            assert errors and all("over the limit of 2 frames/s per client" in e for e in errors)
    finally:
        running.stop()


def test_another_origin_and_another_host_are_refused(live_server):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        with _connect(live_server, origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    with _connect(live_server, origin=live_server.url) as socket:  # the page's own origin
        socket.send(_frames("default_30.avi", 1)[0])
        assert len(json.loads(socket.recv(timeout=60))["faces"]) == 1
    status, answer = _get(live_server.url + "/health", {"Host": "evil.example"})
    assert status == 400 and "host" in answer["text"].lower()  # a DNS name pointed at 127.0.0.1


def test_a_client_that_disconnects_mid_frame_does_not_harm_the_server(live_server):
    for _ in range(3):
        with _connect(live_server) as socket:
            socket.send(_frames("multi_face_20.avi", 1)[0])  # gone before its answer
    time.sleep(1.0)
    status, health = _get(live_server.url + "/health")
    assert status == 200 and health["status"] == "ok"
    with _connect(live_server) as socket:
        socket.send(_frames("default_30.avi", 1)[0])
        assert len(json.loads(socket.recv(timeout=60))["faces"]) == 1


def test_recording_is_a_sequence_table_that_make_explain_reads(live_server, live_engine, tmp_path):
    """Start, 8 frames, stop: a sequence AU table under reports/live/, named by the server, that
    ``python -m explain run --aus`` explains (the contract of a video's table)."""
    from explain.cli import main as explain

    with _connect(live_server) as socket:
        socket.send(json.dumps({"record": "start"}))
        name = json.loads(socket.recv(timeout=30))["recording"]["name"]
        for frame in _frames("default_30.avi", 8):
            socket.send(frame)
            socket.recv(timeout=60)
        socket.send(json.dumps({"record": "stop"}))
        stopped = json.loads(socket.recv(timeout=60))["recording"]
    assert stopped["rows"] == 8 and stopped["frames"] == 8 and name.startswith("live-")
    table = Path(stopped["file"])
    assert table.name == f"{name}.csv" and table.parent.name == "live"
    rows = pd.read_csv(table)
    assert rows["frame"].tolist() == list(range(1, 9)) and set(rows["face_id"]) == {1}
    assert rows["timestamp"].is_monotonic_increasing
    out = tmp_path / "reports"
    code = explain(["run", "--aus", str(table), "--model", str(live_engine.loaded.path), "--no-cnn",
                    "--out", str(out)])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "explain" / "metrics.json").read_text())
    assert metrics["kind"] == "sequences" and metrics["n_frames"] == 8


def test_upload_a_photo_explains_every_face(live_server):
    """The three-face webcam frame as a photo: each face explained as ``make explain`` explains
    it (same AU model, exact contributions, a counterfactual). Where the server has OpenFace, its
    face (the most confident: one per image, the runner's contract) has OpenFace's AUs and the two
    others the AU estimator's; without OpenFace all three have the estimator's."""
    from live.upload import OPENFACE

    photo = _frames("multi_face_20.avi", 1)[0]
    status, answer = _post_file(live_server.url + "/api/explain", "three.jpg", photo)
    assert status == 200, answer
    _, health = _get(live_server.url + "/health")
    assert answer["kind"] == "image" and len(answer["faces"]) == 3
    for face in answer["faces"]:
        _check_face(face)
        assert face["counterfactual"]
    sources = [face["au_source"] for face in answer["faces"]]
    with_openface = health["upload_au_source"] == OPENFACE
    assert sources.count(OPENFACE) == (1 if with_openface else 0)
    assert sources.count(health["au_source"]) == (2 if with_openface else 3)


def test_upload_a_video_explains_its_tracks(live_server):
    status, answer = _post_file(
        live_server.url + "/api/explain", "clip.avi", (VIDEOS / "default_30.avi").read_bytes()
    )
    assert status == 200, answer
    assert answer["kind"] == "video" and answer["frames"] == 30 and len(answer["tracks"]) == 1
    assert answer["faces"] and all(face["id"] == 1 for face in answer["faces"])


BAD_UPLOADS = {
    "empty file": (b"", 400, "empty file"),
    "text": (b"just some text\n" * 20, 400, "neither an image nor a video"),
    "video that is not one": (b"\x00\x00\x00\x18ftypmp42" + bytes(5000), 400, "neither an image nor a video"),
    "1x10,000 image": ("tall", 400, "over the limit of 4096 px"),
    "21 MB": (bytes(21 * 1024 * 1024), 413, "over the upload limit"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_get_a_clear_json_error(live_server, case):
    data, code, expected = BAD_UPLOADS[case]
    if data == "tall":
        data = _one_by_10000()
    status, answer = _post_file(live_server.url + "/api/explain", "upload.mp4", data)
    assert status == code and expected in answer["error"], answer
    assert _get(live_server.url + "/health")[1]["status"] == "ok"


def test_a_model_on_aus_and_concepts_runs_live(tmp_path):
    """A logit on the AUs and the six concepts (fitted on 900 faces of the estimator's own FER2013
    table): the live engine feeds it the estimator's AUs and concepts, each face's answer carries
    both, and its contributions name the concept terms and add up to its log-odds."""
    from analysis.au_table import ESTIMATED_AU_TABLE
    from analysis.concepts import CONCEPT_COLUMNS
    from analysis.run_logit import run_fit_logit
    from live.engine import LiveEngine

    table = pd.read_csv(ESTIMATED_AU_TABLE)
    table = table[(table["Usage"] == "Training") & (table["label"] != "fear")]
    sample = table.groupby("label", group_keys=False).sample(150, random_state=0)
    sample.to_csv(tmp_path / "sample.csv", index=False)
    run_fit_logit(tmp_path / "sample.csv", tmp_path, label_coding="name", features="both", progress=False)
    engine = LiveEngine(tmp_path / "logit" / "model.json")
    import cv2

    frame = cv2.imdecode(np.frombuffer(_frames("default_30.avi", 1)[0], np.uint8), cv2.IMREAD_COLOR)
    faces = engine.analyse(frame).faces
    assert len(faces) == 1
    face = faces[0]
    assert set(face["concepts"]) == set(CONCEPT_COLUMNS) and set(face["aus"]) == set(AU_R_COLUMNS)
    assert {"mouth_open", "lip_corner_raise"} <= set(face["contributions"])
    if face["explained"] != "neutral":
        assert sum(face["contributions"].values()) == pytest.approx(face["log_odds"], abs=3e-3)
