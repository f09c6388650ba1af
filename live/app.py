"""The web app of ``make serve``: the page, ``GET /health``, ``POST /api/explain``, WebSocket ``/ws``.

WebSocket protocol (one connection per camera):

- in: one JPEG image per **binary** message; or a **text** control message, ``{"record":
  "start"}`` / ``{"record": "stop"}``;
- out: one JSON text message per message answered, in the order received: ``{"frame": n,
  "dropped": k, "width", "height", "found", "faces": [{"id", "box", "probabilities",
  "cnn_probabilities", "aus", "contributions", "explained", "log_odds", "score", "au_source"}],
  "timings_ms": {...}}``, or ``{"frame": n, "dropped": k, "error": "..."}``; ``n`` counts the
  messages the connection sent, from 1; ``k`` how many arrived since the last answer while the
  connection's previous frame was still being analysed: those are dropped unread, so at most one
  frame per connection waits for the models (never a queue that grows);
- limits (``live.frames.Limits``): a message over ``frame_bytes`` gets an error answer, one over
  ``transport_bytes`` closes the connection (code 1009); frames over ``fps`` a second get an
  error answer; a connection over ``clients`` gets an error and is closed (code 1013); a page of
  another origin is refused (code 1008, HTTP 403).

All analyses run one at a time on one worker thread (TensorFlow is not faster with two on two
cores); the event loop only reads, checks and answers. Requests whose ``Host`` is not the
address the server was started on (or ``localhost``) are refused: a page from elsewhere cannot
reach the server through a DNS name that points at 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, File, Request, UploadFile, WebSocket
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from analysis.au_table import AU_NAMES, AU_R_COLUMNS
from analysis.labels import EMOTIONS
from live.engine import LiveEngine
from live.frames import InputError, Limits, check_dimensions, check_frame, decode
from live.session import Recording, Tracker, recording_name

STATIC = Path(__file__).resolve().parent / "static"
STYLESHEET = Path(__file__).resolve().parent.parent / "analysis" / "templates" / "style.css"
WINDOW_S = 0.5
"""The page's smoothing window (s): ``explain.video.DEFAULT_WINDOW_S``, as ``make explain`` smooths."""


@dataclass
class AppSettings:
    """What the app serves: ``out`` is the reports folder (recordings in ``out/live/``);
    ``hosts``: the ``Host`` names accepted (the bound address, ``localhost``, ``127.0.0.1``)."""

    out: Path = Path("reports")
    limits: Limits = field(default_factory=Limits)
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    openface_bin: str | None = None
    openface_args: str = ""
    upload_openface: bool = True


class _State:
    def __init__(self):
        self.clients = 0
        self.connections = 0
        self.upload_busy = False
        self.frames = 0
        self.dropped = 0


def create_app(engine: LiveEngine, settings: AppSettings):
    """The FastAPI app around a loaded engine (``live.engine.LiveEngine``)."""
    from live.upload import OPENFACE, openface_binary

    limits = settings.limits
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-models")
    state = _State()
    app = FastAPI(
        title="AU workbench: live explanations",
        description="Faces explained through their Action Units, frame by frame (README: `make serve`).",
        docs_url=None,  # served below from the swagger-ui-bundle package: offline, no CDN
        redoc_url=None,
    )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(settings.hosts))
    _offline_docs(app)

    def info() -> dict:
        upload_source = (
            OPENFACE if settings.upload_openface and openface_binary(settings.openface_bin) else None
        )
        return {
            "status": "ok",
            "model": {
                "file": engine.loaded.path.name,
                "family": engine.loaded.family,
                "training": engine.loaded.training,
            },  # fmt: skip
            "cnn": engine.cnn.name,
            "au_source": engine.au_source,
            "upload_au_source": upload_source or engine.au_source,
            "detector": engine.detector.name,
            "detector_note": engine.detector_note,
            "emotions": list(EMOTIONS),
            "aus": {c: AU_NAMES[c.split("_")[0]] for c in AU_R_COLUMNS},
            "window_s": WINDOW_S,
            "limits": limits.as_dict(),
            "clients": state.clients,
            "frames": state.frames,
            "dropped": state.dropped,
        }

    @app.get("/health", summary="Server state, models, limits")
    def health() -> dict:
        return info()

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        files = {"live.js": "text/javascript", "live.css": "text/css"}
        if name == "style.css":  # the reports' stylesheet itself, not a copy
            return FileResponse(STYLESHEET, media_type="text/css")
        if name not in files:
            return JSONResponse({"error": "no such file"}, status_code=404)
        return FileResponse(STATIC / name, media_type=files[name])

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return Response(status_code=204)

    @app.post("/api/explain", summary="Explain a photo or a short video, as `make explain` does")
    async def explain(request: Request, file: UploadFile = File(...)):  # noqa: B008 (FastAPI's idiom)
        from live.upload import explain_upload

        if state.upload_busy:
            return _error("another upload is being explained; try again in a moment", 503)
        state.upload_busy = True
        try:
            data = await file.read(limits.upload_bytes + 1)
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(
                worker, explain_upload, engine, data, file.filename or "", limits,
                settings.openface_bin if settings.upload_openface else "", settings.openface_args,
            )  # fmt: skip
        except InputError as error:
            return _error(str(error), 413 if "over the upload limit" in str(error) else 400)
        except Exception as error:  # one bad upload must not take the server down
            return _error(f"could not explain it: {' '.join(str(error).split())[:200]}", 422)
        finally:
            state.upload_busy = False
        return answer

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        origin = websocket.headers.get("origin")
        host = websocket.headers.get("host", "")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            await websocket.close(code=1008, reason="another origin")
            return
        await websocket.accept()
        if state.clients >= limits.clients:
            await websocket.send_text(json.dumps({"error": f"server full: {limits.clients} clients at most"}))
            await websocket.close(code=1013, reason="server full")
            return
        state.clients += 1
        state.connections += 1
        session = _Session(state.connections)
        try:
            await _serve(websocket, session)
        finally:
            state.clients -= 1
            if session.task is not None:
                await asyncio.gather(session.task, return_exceptions=True)
            if session.recording is not None and session.recording.rows:
                await asyncio.get_running_loop().run_in_executor(worker, session.recording.save, _live_dir())

    def _live_dir() -> Path:
        return settings.out / "live"

    async def _serve(websocket, session: _Session) -> None:
        from starlette.websockets import WebSocketDisconnect

        while True:
            try:
                message = await websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            session.received += 1
            if session.task is not None and not session.task.done():
                session.dropped += 1
                state.dropped += 1
                continue
            number, dropped = session.received, session.dropped
            session.dropped = 0
            if message.get("text") is not None:
                answer = await _control(session, message["text"])
                await _send(websocket, {"frame": number, "dropped": dropped, **answer})
                continue
            data = message.get("bytes") or b""
            now = time.monotonic()
            while session.times and now - session.times[0] > 1.0:
                session.times.popleft()
            if len(session.times) >= limits.fps:
                error = f"over the limit of {limits.fps} frames/s per client: frame dropped"
                await _send(websocket, {"frame": number, "dropped": dropped, "error": error})
                continue
            session.times.append(now)
            session.task = asyncio.create_task(_frame(websocket, session, data, number, dropped))

    async def _frame(websocket, session: _Session, data: bytes, number: int, dropped: int) -> None:
        head = {"frame": number, "dropped": dropped}
        try:
            start = time.perf_counter()
            check_frame(data, limits)
            width, height = check_dimensions(data, limits)
            loop = asyncio.get_running_loop()
            result, decode_ms = await loop.run_in_executor(worker, _analyse, data)
        except InputError as error:
            await _send(websocket, {**head, "error": str(error)})
            return
        except Exception as error:  # the connection and the server stay up whatever a frame holds
            await _send(
                websocket, {**head, "error": f"could not analyse it: {' '.join(str(error).split())[:200]}"}
            )
            return
        ids = session.tracker.assign([face["box"] for face in result.faces])
        for face, face_id in zip(result.faces, ids, strict=True):
            face["id"] = face_id
            face["au_source"] = engine.au_source
        notes = {}
        if session.recording is not None:
            crops = [engine.detector.crop_box(face["box"]) for face in result.faces]
            if not session.recording.add(result.faces, crops):
                notes["recording"] = await _stop(session, f"stopped at {limits.record_rows:,} rows")
            else:
                notes["recording"] = {"name": session.recording.name, "rows": len(session.recording.rows)}
        state.frames += 1
        encode = time.perf_counter()
        answer = {**head, "width": width, "height": height, "found": result.found, "faces": result.faces}
        body = json.dumps({**answer, **notes})
        timings = {"decode": decode_ms, **result.timings, "encode": (time.perf_counter() - encode) * 1000}
        timings["server"] = (time.perf_counter() - start) * 1000
        text = body[:-1] + ', "timings_ms": ' + json.dumps({k: round(v, 2) for k, v in timings.items()}) + "}"
        await _send_text(websocket, text)

    def _analyse(data: bytes):
        start = time.perf_counter()
        image = decode(data)
        decode_ms = (time.perf_counter() - start) * 1000
        return engine.analyse(image), decode_ms

    async def _control(session: _Session, text: str) -> dict:
        try:
            command = json.loads(text)
        except ValueError:
            command = None
        if not isinstance(command, dict) or command.get("record") not in ("start", "stop"):
            return {"error": 'text message: send frames as binary JPEG messages; the only text messages '
                             'are {"record": "start"} and {"record": "stop"}'}  # fmt: skip
        if command["record"] == "start":
            if session.recording is None:
                session.recording = Recording(
                    recording_name(session.connection), engine.au_source, limits.record_rows
                )
            return {"recording": {"name": session.recording.name, "rows": len(session.recording.rows)}}
        return {"recording": await _stop(session, "stopped")}

    async def _stop(session: _Session, why: str) -> dict:
        recording, session.recording = session.recording, None
        if recording is None:
            return {"error": "not recording"}
        if not recording.rows:
            return {"name": recording.name, "rows": 0, "status": f"{why}; nothing saved: no face was seen"}
        path = await asyncio.get_running_loop().run_in_executor(worker, recording.save, _live_dir())
        return {"name": recording.name, "rows": len(recording.rows), "frames": recording.frames,
                "status": why, "file": str(path)}  # fmt: skip

    async def _send(websocket, answer: dict) -> None:
        await _send_text(websocket, json.dumps(answer))

    async def _send_text(websocket, text: str) -> None:
        try:
            await websocket.send_text(text)
        except Exception:  # the client went away mid-frame: nothing to answer, nothing to undo
            pass

    def _error(message: str, status: int):
        return JSONResponse({"error": message}, status_code=status)

    app.state.engine = engine
    app.state.worker = worker
    return app


def _offline_docs(app: FastAPI) -> None:
    """The OpenAPI page at ``/docs`` with Swagger UI's files from the ``swagger-ui-bundle``
    package (FastAPI's own page loads them from a CDN, which an offline machine cannot reach)."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=f"{app.title}: API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js", swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )  # fmt: skip


@dataclass
class _Session:
    connection: int
    received: int = 0
    dropped: int = 0
    task: asyncio.Task | None = None
    recording: Recording | None = None
    tracker: Tracker = field(default_factory=Tracker)
    times: deque = field(default_factory=deque)
