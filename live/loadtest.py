"""``make load-test-serve``: several cameras at once against a real ``python -m live serve``.

The server runs as its own process (as ``make serve`` starts it) on a free loopback port; each
client streams the one-face sample clip at 30 frames/s without waiting for answers, as a page
on a fast camera would. Checked and printed: frames answered and dropped per client, answers in
order (``frame`` increasing), error answers, a client over the ``clients`` limit refused, the
server's resident memory (RSS) after warm-up and at the end, and that ``GET /health`` still
answers. Exit status 1 when a check fails.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from live.benchmark import CASES, CLIPS, clip_frames
from live.server import free_port

SEND_FPS = 30
MAX_GROWTH_MB = 300  # RSS growth over the run that fails the test (TensorFlow's arenas settle early)


async def _client(url: str, frames: list[bytes], seconds: float) -> dict:
    import websockets

    answers, errors, dropped, in_order, last = 0, 0, 0, True, 0
    async with websockets.connect(url, max_size=None) as socket:

        async def receive() -> None:
            nonlocal answers, errors, dropped, in_order, last
            async for message in socket:
                answer = json.loads(message)
                in_order &= answer.get("frame", 0) > last
                last = answer.get("frame", last)
                dropped += answer.get("dropped", 0)
                if "error" in answer:
                    errors += 1
                else:
                    answers += 1

        reader = asyncio.create_task(receive())
        start, sent = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            await socket.send(frames[sent % len(frames)])
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / SEND_FPS - time.perf_counter()))
        await asyncio.sleep(2.0)  # the last answers
        reader.cancel()
    return {"sent": sent, "answered": answers, "errors": errors, "dropped": dropped, "in_order": in_order}


async def _refused(url: str) -> bool:
    """Whether one connection more than the limit is told the server is full and closed."""
    import websockets

    async with websockets.connect(url) as socket:
        try:
            answer = json.loads(await asyncio.wait_for(socket.recv(), 10))
        except websockets.ConnectionClosed:
            return True
    return "server full" in answer.get("error", "")


async def _run_clients(url: str, frames: list[bytes], clients: int, seconds: float, limit: int) -> tuple:
    tasks = [asyncio.create_task(_client(url, frames, seconds)) for _ in range(clients)]
    await asyncio.sleep(1.0)
    refused = await _refused(url) if clients >= limit else None
    return await asyncio.gather(*tasks), refused


def _rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 1024 / 1024


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def load_test(model: Path, out: Path, detector: str, clients: int, seconds: float) -> int:
    """Start ``python -m live serve`` with ``model``, run ``clients`` cameras for ``seconds``;
    print the figures; return 0, or 1 when a check failed."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "live", "serve", "--port", str(port), "--model", str(model),
               "--out", str(out), "--detector", detector, "--no-openface"]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = _get(base + "/health")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print("error: the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.5)
        frames = clip_frames(CLIPS / CASES[0][1])
        limit = health["limits"]["clients"]
        asyncio.run(_run_clients(base.replace("http", "ws") + "/ws", frames[:5], 1, 3.0, limit))  # warm-up
        before = _rss_mb(server.pid)
        results, refused = asyncio.run(
            _run_clients(base.replace("http", "ws") + "/ws", frames, clients, seconds, limit)
        )
        after = _rss_mb(server.pid)
        alive = _get(base + "/health")["status"] == "ok"
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(
        f"load test: {clients} clients x {seconds:g} s at {SEND_FPS} frames/s each, {CASES[0][1]} (640x480)"
    )
    print(f"{'client':>6} {'sent':>6} {'answered':>9} {'dropped':>8} {'errors':>7} {'in order':>9}")
    for i, r in enumerate(results, 1):
        print(
            f"{i:>6} {r['sent']:>6} {r['answered']:>9} {r['dropped']:>8} {r['errors']:>7} "
            f"{str(r['in_order']):>9}"
        )
    answered = sum(r["answered"] for r in results)
    print(f"answered {answered} frames in {seconds:g} s ({answered / seconds:.1f} frames/s over all clients)")
    print(f"server RSS {before:.0f} MB after warm-up, {after:.0f} MB at the end ({after - before:+.0f} MB)")
    checks = {
        "server still answers /health": alive,
        "every client answered": all(r["answered"] > 0 for r in results),
        "answers in order": all(r["in_order"] for r in results),
        f"memory growth under {MAX_GROWTH_MB} MB": after - before < MAX_GROWTH_MB,
    }
    if refused is not None:
        checks[f"client {limit + 1} refused (limit {limit})"] = refused
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1
