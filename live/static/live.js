// The live page: camera frames to the server over the WebSocket, answers drawn over the video and
// as bars beside it; uploads explained by POST /api/explain. Every server string goes into the
// page as text (textContent), never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const live = { replies: 0, withFaces: 0, maxFaces: 0, drawn: 0, errors: [], last: null, ids: new Set() };
window.__live = live;  // what the browser test reads

let info = null;
let socket = null;
let stream = null;
let inFlight = false;
let sentAt = 0;
let recording = false;
const latencies = [];
const history = new Map();  // face id -> [{t, probabilities, cnn_probabilities, aus, contributions}]
const capture = document.createElement("canvas");

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "style") node.style.cssText = v; else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

const pct = (p) => (p === null || p === undefined ? "–" : `${Math.round(p * 100)}%`);
const signed = (v) => (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(2);
const topOf = (probs) => Object.entries(probs || {}).filter(([, p]) => p !== null).sort((a, b) => b[1] - a[1])[0] || ["", null];

function auName(term) {
  // "AU12_r" -> "AU12 lip corner puller"; interaction terms name each AU
  return term.split(" x ").map((t) => (info && info.aus[t] ? `${t.split("_")[0]} ${info.aus[t]}` : t)).join(" × ");
}

function topTerms(contributions, n) {
  return Object.entries(contributions || {}).filter(([t, v]) => t !== "const" && v !== null && v !== 0)
    .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, n);
}

function because(face) {
  // the explained emotion is the predicted one, or the runner-up when neutral is predicted
  // (every log-odds is against neutral): say so, lest "→ angry" read as the prediction
  const [term, value] = topTerms(face.contributions, 1)[0] || [];
  const runnerUp = topOf(face.probabilities)[0] === "neutral" ? " (runner-up to neutral)" : "";
  return term ? `${auName(term)} ${signed(value)} → ${face.explained}${runnerUp}` : "";
}

// ------------------------------------------------------------------------------ smoothing

function mean(items, key) {
  const out = {};
  for (const item of items) {
    for (const [k, v] of Object.entries(item[key] || {})) {
      if (v === null) continue;
      out[k] = out[k] || [0, 0];
      out[k][0] += v; out[k][1] += 1;
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, [s, n]]) => [k, s / n]));
}

function smoothed(face, now) {
  const windowMs = (info ? info.window_s : 0.5) * 1000;
  const items = history.get(face.id) || [];
  items.push({ t: now, probabilities: face.probabilities, cnn_probabilities: face.cnn_probabilities,
    aus: face.aus, contributions: face.contributions });
  while (items.length && now - items[0].t > windowMs) items.shift();
  history.set(face.id, items);
  const probabilities = mean(items, "probabilities");
  const explained = face.explained;
  return { ...face, probabilities, cnn_probabilities: mean(items, "cnn_probabilities"),
    aus: mean(items, "aus"), contributions: mean(items, "contributions"), explained, frames: items.length };
}

// --------------------------------------------------------------------------------- drawing

function card(face, title) {
  const emotions = info ? info.emotions : Object.keys(face.probabilities);
  const probs = el("table", { class: "bars" },
    el("tr", {}, el("th", { class: "text" }, "emotion"), el("th", {}, "AU model"), el("th", {}), el("th", {}, "CNN"), el("th", {})));
  for (const e of emotions) {
    const p = face.probabilities[e], c = face.cnn_probabilities[e];
    probs.append(el("tr", {}, el("td", { class: "text" }, e),
      el("td", { class: "num" }, pct(p)), el("td", { class: "bar" }, el("span", { class: "prob", style: `width:${(p || 0) * 100}%` })),
      el("td", { class: "num" }, pct(c)), el("td", { class: "bar" }, el("span", { class: "prob cnn", style: `width:${(c || 0) * 100}%` }))));
  }
  const terms = topTerms(face.contributions, 5);
  const biggest = Math.max(1e-9, ...terms.map(([, v]) => Math.abs(v)));
  const contrib = el("table", { class: "bars" });
  for (const [term, v] of terms) {
    contrib.append(el("tr", {}, el("td", { class: "text" }, auName(term)), el("td", { class: "num" }, signed(v)),
      el("td", { class: "bar" }, el("span", { class: v >= 0 ? "pos" : "neg", style: `width:${(Math.abs(v) / biggest) * 50}%` }))));
  }
  const aus = el("table", { class: "bars" });
  for (const [column, value] of Object.entries(face.aus || {})) {
    aus.append(el("tr", {}, el("td", { class: "text" }, auName(column)), el("td", { class: "num" }, value.toFixed(2)),
      el("td", { class: "bar" }, el("span", { class: "au", style: `width:${(value / 5) * 100}%` }))));
  }
  const [au, auP] = topOf(face.probabilities), [cnn, cnnP] = topOf(face.cnn_probabilities);
  return el("div", { class: "card face-card", "data-id": String(face.id) },
    el("h4", {}, `${title} · AU model: ${au} ${pct(auP)} · CNN: ${cnn} ${pct(cnnP)}`),
    el("p", { class: "because" }, because(face)),
    probs,
    el("p", { class: "label" }, `Why ${face.explained} (log-odds vs neutral): largest contributions`),
    contrib,
    el("details", {}, el("summary", {}, "17 AU intensities (0–5)"), aus),
    face.counterfactual ? el("p", { class: "note" }, face.counterfactual) : "",
    el("p", { class: "note" }, `AUs: ${face.au_source}`));
}

function drawBoxes(canvas, faces, scale) {
  const ctx = canvas.getContext("2d");
  ctx.lineWidth = 3;
  ctx.font = "bold 15px system-ui, sans-serif";
  for (const face of faces) {
    const [x, y, w, h] = face.box.map((v) => v * scale);
    const [au, auP] = topOf(face.probabilities), [cnn, cnnP] = topOf(face.cnn_probabilities);
    ctx.strokeStyle = "#4477aa";
    ctx.strokeRect(x, y, w, h);
    const lines = [`#${face.id} ${au} ${pct(auP)} · CNN ${cnn} ${pct(cnnP)}`, because(face)].filter(Boolean);
    lines.forEach((line, i) => {
      const ty = i === 0 ? Math.max(16, y - 6) : Math.min(canvas.height - 6, y + h + 18);
      const width = ctx.measureText(line).width;
      ctx.fillStyle = "rgba(255,255,255,.85)";
      ctx.fillRect(x - 2, ty - 15, width + 4, 19);
      ctx.fillStyle = i === 0 ? "#222" : "#b42318";
      ctx.fillText(line, x, ty);
    });
    live.drawn += 1;
  }
}

// ---------------------------------------------------------------------------------- camera

function status() {
  const sorted = [...latencies].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
  $("status").textContent = `${live.replies} frames answered · latency ${median.toFixed(0)} ms (median of the last ${sorted.length})`;
}

function onReply(event) {
  const answer = JSON.parse(event.data);
  inFlight = false;
  latencies.push(performance.now() - sentAt);
  if (latencies.length > 60) latencies.shift();
  live.replies += 1;
  live.last = answer;
  if (answer.recording) showRecording(answer.recording);
  if (answer.error) {
    live.errors.push(answer.error);
    $("status").textContent = `server: ${answer.error}`;
    return;
  }
  if (!answer.faces) return;
  const now = performance.now();
  const faces = answer.faces.map((f) => smoothed(f, now));
  if (faces.length) live.withFaces += 1;
  live.maxFaces = Math.max(live.maxFaces, faces.length);
  faces.forEach((f) => live.ids.add(f.id));
  const overlay = $("overlay"), video = $("video");
  overlay.width = video.clientWidth;
  overlay.height = video.clientHeight;
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  drawBoxes(overlay, faces, video.clientWidth / answer.width);
  const list = $("faces");
  list.replaceChildren(...(faces.length ? faces.map((f) => card(f, `Face #${f.id}`)) : [el("p", { class: "missing" }, "No face in view.")]));
  const frames = Math.max(...faces.map((f) => f.frames), 0);
  $("smoothing").textContent = `Values smoothed over the last ${info ? info.window_s : 0.5} s per face (${frames} frame(s) now); ` +
    `a face keeps its number while it stays in view. ${answer.dropped ? answer.dropped + " frame(s) dropped by the busy server." : ""}`;
  status();
}

function showRecording(r) {
  if (r.error) { $("recording").textContent = r.error; return; }
  if (r.file) $("recording").textContent = `Saved ${r.file}: ${r.rows} rows, ${r.frames} frames (${r.status}). Explain it with make explain AUS=${r.file}`;
  else if (r.status) $("recording").textContent = `${r.name}: ${r.status}`;
  else $("recording").textContent = `Recording ${r.name}: ${r.rows} rows`;
}

function sendFrame() {
  if (!stream) return;
  const video = $("video");
  if (socket && socket.readyState === WebSocket.OPEN && !inFlight && video.readyState >= 2 && video.videoWidth) {
    const scale = Math.min(1, 640 / video.videoWidth);
    capture.width = Math.round(video.videoWidth * scale);
    capture.height = Math.round(video.videoHeight * scale);
    capture.getContext("2d").drawImage(video, 0, 0, capture.width, capture.height);
    inFlight = true;
    capture.toBlob((blob) => {
      if (!blob || !socket || socket.readyState !== WebSocket.OPEN) { inFlight = false; return; }
      sentAt = performance.now();
      socket.send(blob);
    }, "image/jpeg", 0.8);
  }
  setTimeout(sendFrame, 1000 / 30);  // at most 30 frames/s; the next frame waits for the answer
}

async function start() {
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (error) {
    $("status").textContent = `no camera: ${error.message || error}`;
    return;
  }
  $("video").srcObject = stream;
  socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  socket.onmessage = onReply;
  socket.onclose = (e) => { $("status").textContent = `connection closed${e.reason ? ": " + e.reason : ""}`; inFlight = false; };
  socket.onopen = () => { $("record").disabled = false; sendFrame(); };
  $("start").disabled = true;
  $("stop").disabled = false;
}

function stop() {
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  if (socket) socket.close();
  socket = null;
  recording = false;
  $("record").classList.remove("on");
  $("record").textContent = "Record";
  $("start").disabled = false;
  $("stop").disabled = true;
  $("record").disabled = true;
}

function toggleRecording() {
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  recording = !recording;
  socket.send(JSON.stringify({ record: recording ? "start" : "stop" }));
  $("record").classList.toggle("on", recording);
  $("record").textContent = recording ? "Stop recording" : "Record";
}

// ---------------------------------------------------------------------------------- upload

async function upload(event) {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) { $("upload-status").textContent = "choose a file first"; return; }
  $("upload-status").textContent = "explaining…";
  const body = new FormData();
  body.append("file", file);
  let answer;
  try {
    const response = await fetch("/api/explain", { method: "POST", body });
    answer = await response.json();
  } catch (error) {
    $("upload-status").textContent = `failed: ${error.message || error}`;
    return;
  }
  if (answer.error) { $("upload-status").textContent = answer.error; return; }
  $("upload-status").textContent = `${answer.faces.length} face(s)${answer.note ? " · " + answer.note : ""} · AUs: ${answer.au_source}`;
  const canvas = $("upload-canvas");
  if (answer.kind === "image") {
    const image = new Image();
    image.onload = () => {
      const scale = Math.min(1, 640 / image.width);
      canvas.width = image.width * scale;
      canvas.height = image.height * scale;
      canvas.getContext("2d").drawImage(image, 0, 0, canvas.width, canvas.height);
      drawBoxes(canvas, answer.faces, scale);
      URL.revokeObjectURL(image.src);
    };
    image.src = URL.createObjectURL(file);
    $("upload-tracks").replaceChildren();
  } else {
    canvas.width = 0;
    const table = el("table", {}, el("tr", {}, ...["face", "frames", "seconds", "AU model mostly", "CNN mostly"].map((h) => el("th", {}, h))));
    for (const t of answer.tracks) table.append(el("tr", {}, ...[t.face_id, t.frames_total, (t.seconds || 0).toFixed(1), t.au_top, t.cnn_top].map((v) => el("td", {}, v))));
    $("upload-tracks").replaceChildren(el("p", {}, `${answer.frames} frame(s); tracked faces and their peak frames:`), table);
  }
  $("upload-faces").replaceChildren(...answer.faces.map((f) => card(f, answer.kind === "image" ? `Face #${f.id}` : `Face #${f.id}, frame ${f.frame} (peak ${f.peak_emotion})`)));
}

// ------------------------------------------------------------------------------------ start

async function main() {
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stop);
  $("record").addEventListener("click", toggleRecording);
  $("upload").addEventListener("submit", upload);
  try {
    info = await (await fetch("/health")).json();
    const limits = info.limits;
    $("info").textContent = `AU model ${info.model.file} (${info.model.family}; trained on ${info.model.training}) · ` +
      `camera AUs: ${info.au_source} · uploads: ${info.upload_au_source} · faces: ${info.detector}` +
      `${info.detector_note ? " (" + info.detector_note + ")" : ""} · limits: frames ${(limits.frame_bytes / 1048576).toFixed(0)} MB, ` +
      `uploads ${(limits.upload_bytes / 1048576).toFixed(0)} MB, sides ${limits.min_side}–${limits.max_side} px, ` +
      `${limits.fps} frames/s and ${limits.clients} clients at most.`;
  } catch (error) {
    $("info").textContent = `the server did not answer /health: ${error.message || error}`;
  }
  live.ready = true;
}

main();
