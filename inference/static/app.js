// The selection page: submit a prompt, watch the candidates arrive, pick one.
// Plain JavaScript against the REST API; the API key stays in this browser's local storage.
"use strict";

const KEY_STORAGE = "adfame.apiKey";
const POLL_MS = 1000;

const $ = (id) => document.getElementById(id);
const form = $("generate-form");
const keyInput = $("api-key");
const promptInput = $("prompt");
const generateButton = $("generate");
const errorBox = $("error");
const statusLine = $("status");
const confirmation = $("confirmation");
const heading = $("candidates-heading");
const list = $("candidates");

let jobId = null;
let pollTimer = null;
let picked = null;

class ApiError extends Error {}

// Calls the API with the key; rejects with the API's own reason ("detail") on any error.
async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${keyInput.value.trim()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(`The AdFame API cannot be reached (${err.message}).`);
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const detail = payload && typeof payload.detail === "string" ? payload.detail : response.statusText;
    throw new ApiError(`${detail} (HTTP ${response.status})`);
  }
  return payload;
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
}

function setStatus(message) {
  statusLine.textContent = message;
}

function resetJob() {
  clearTimeout(pollTimer);
  jobId = null;
  picked = null;
  list.replaceChildren();
  heading.hidden = true;
  confirmation.hidden = true;
}

async function submitPrompt(event) {
  event.preventDefault();
  showError("");
  const key = keyInput.value.trim();
  if (!key) {
    showError("Enter your API key first.");
    keyInput.focus();
    return;
  }
  localStorage.setItem(KEY_STORAGE, key);
  resetJob();
  generateButton.disabled = true;
  setStatus("Submitting…");
  try {
    const job = await api("POST", "/generate-video", {
      prompt: promptInput.value,
      num_frames: Number($("num-frames").value),
      fps: Number($("fps").value),
    });
    openJob(job.job_id);
  } catch (err) {
    setStatus("");
    showError(err.message);
    generateButton.disabled = false;
  }
}

function openJob(id) {
  jobId = id;
  history.replaceState(null, "", `#job=${id}`);
  poll();
}

async function poll() {
  const id = jobId;
  let job;
  try {
    job = await api("GET", `/jobs/${id}`);
  } catch (err) {
    showError(err.message);
    generateButton.disabled = false;
    return;
  }
  if (id !== jobId) return; // a newer job was started meanwhile
  showError("");
  renderJob(job);
  if (job.status === "queued" || job.status === "running") {
    pollTimer = setTimeout(poll, POLL_MS);
  } else {
    generateButton.disabled = false;
  }
}

function renderJob(job) {
  if (job.selected_candidate !== null) picked = job.selected_candidate;
  const messages = {
    queued: "Queued: waiting for a worker…",
    running: "Generating candidates…",
    succeeded: picked === null ? "Done. Watch the candidates and pick the best one." : "Done.",
    failed: `The job failed: ${job.error || "no reason given"}`,
  };
  setStatus(messages[job.status] || job.status);
  for (const candidate of job.candidates) {
    if (!list.querySelector(`[data-index="${candidate.index}"]`)) {
      list.append(renderCandidate(candidate));
    }
  }
  heading.hidden = job.candidates.length === 0;
  if (picked !== null) markPicked(picked);
}

function renderCandidate(candidate) {
  const item = document.createElement("li");
  item.dataset.index = String(candidate.index);
  const label = `Candidate ${candidate.index + 1}`;

  const video = document.createElement("video");
  Object.assign(video, { controls: true, autoplay: true, muted: true, loop: true, playsInline: true });
  video.src = candidate.video_url;
  video.setAttribute("aria-label", `${label}: ${candidate.variation_prompt}`);

  const caption = document.createElement("p");
  caption.className = "variation";
  caption.textContent = `${label}: ${candidate.variation_prompt}`;

  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Pick this one";
  button.setAttribute("aria-label", `Pick candidate ${candidate.index + 1}`);
  button.disabled = picked !== null;
  button.addEventListener("click", () => pick(candidate.index));

  item.append(video, caption, button);
  return item;
}

async function pick(index) {
  showError("");
  for (const button of list.querySelectorAll("button")) button.disabled = true;
  try {
    await api("POST", `/jobs/${jobId}/selection`, { candidate_index: index });
    markPicked(index);
  } catch (err) {
    showError(err.message);
    if (picked === null) {
      for (const button of list.querySelectorAll("button")) button.disabled = false;
    }
  }
}

function markPicked(index) {
  picked = index;
  for (const item of list.children) {
    const chosen = Number(item.dataset.index) === index;
    item.classList.toggle("picked", chosen);
    const button = item.querySelector("button");
    button.disabled = true;
    button.textContent = chosen ? "Picked" : "Pick this one";
  }
  confirmation.textContent = `Thanks! Candidate ${index + 1} is your pick for this job.`;
  confirmation.hidden = false;
}

keyInput.value = localStorage.getItem(KEY_STORAGE) || "";
keyInput.addEventListener("change", () => localStorage.setItem(KEY_STORAGE, keyInput.value.trim()));
form.addEventListener("submit", submitPrompt);

// Reopen the job named in the address (#job=<id>) after a reload.
const resumed = /^#job=([0-9a-f-]{36})$/.exec(location.hash);
if (resumed && keyInput.value) openJob(resumed[1]);
