// files plugin UI script: uploads files with progress, lists them page by page, and offers download and delete, via /plugins/files/api.
"use strict";

const API = "/plugins/files/api";
const PAGE_SIZE = 100;

const list = document.getElementById("files");
const uploadForm = document.getElementById("upload-form");
const fileInput = document.getElementById("file-input");
const uploadButton = document.getElementById("upload");
const progressBox = document.getElementById("progress-box");
const progressBar = document.getElementById("progress");
const progressLabel = document.getElementById("progress-label");
const moreButton = document.getElementById("more");
const statusText = document.getElementById("status");
const errorBox = document.getElementById("error");
const errorText = document.getElementById("error-text");

let nextCursor = null;

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

// ---- Error banner ----------------------------------------------------------

function showError(text) {
  errorText.textContent = text;
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
  errorText.textContent = "";
}

document.getElementById("error-close").addEventListener("click", clearError);

function describe(err) {
  return err instanceof TypeError ? "Could not reach the server." : err.message;
}

// Picks the API's {"error": "..."} message out of a response body, or falls back to the status.
function errorMessage(status, statusText, bodyText) {
  try {
    const data = JSON.parse(bodyText);
    if (data && typeof data.error === "string") return data.error;
  } catch (_) {
    // Not JSON; use the status line.
  }
  return status === 0 ? "Could not reach the server." : `Request failed: ${status} ${statusText || ""}`.trim();
}

// ---- Helpers ---------------------------------------------------------------

const fileUrl = (name) => `${API}/files/${encodeURIComponent(name)}`;

function humanSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB", "PB"];
  let value = n;
  let unit = -1;
  do {
    value /= 1000;
    unit += 1;
  } while (value >= 1000 && unit < units.length - 1);
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function timeEl(iso) {
  const date = new Date(iso);
  const label = Number.isNaN(date.getTime()) ? String(iso) : dateFormat.format(date);
  return el("time", { datetime: String(iso), title: String(iso), text: label });
}

// ---- Rendering (text only, never innerHTML) --------------------------------

function fileItem(file) {
  const details = el("p", { class: "muted small" }, [
    el("span", { class: "file-size", title: `${file.size} bytes`, text: humanSize(file.size) }),
  ]);
  if (file.content_type) details.append(" · ", el("span", { class: "file-type mono", text: file.content_type }));
  if (file.updated) details.append(" · ", timeEl(file.updated));

  return el("li", { class: "file spread", "data-name": file.name }, [
    el("div", { class: "grow" }, [
      el("a", { class: "download wrap", href: fileUrl(file.name), download: file.name, text: file.name }),
      details,
    ]),
    el("button", { type: "button", class: "delete danger", "aria-label": `Delete ${file.name}`, text: "Delete" }),
  ]);
}

function updateStatus() {
  const count = list.querySelectorAll("li.file").length;
  statusText.textContent = count === 0 ? "" : `${count} shown${nextCursor ? ", more available" : ""}`;
}

// ---- Listing ---------------------------------------------------------------

async function loadPage(cursor) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) params.set("cursor", cursor);
  moreButton.disabled = true;
  statusText.textContent = "Loading…";
  try {
    const response = await fetch(`${API}/files?${params}`, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      throw new Error(errorMessage(response.status, response.statusText, await response.text()));
    }
    const page = await response.json();
    if (!cursor) list.replaceChildren();
    for (const file of page.items || []) {
      const existing = Array.from(list.children).find((li) => li.dataset.name === file.name);
      if (existing) existing.replaceWith(fileItem(file));
      else list.append(fileItem(file));
    }
    nextCursor = page.next ?? null;
  } catch (err) {
    showError(describe(err));
  } finally {
    moreButton.disabled = false;
    moreButton.hidden = !nextCursor;
    list.dataset.empty = "No files yet.";
    updateStatus();
  }
}

moreButton.addEventListener("click", () => {
  clearError();
  loadPage(nextCursor);
});

// ---- Upload ----------------------------------------------------------------

// Sends one File as the raw request body; reports progress as a fraction 0..1.
function uploadOne(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", fileUrl(file.name));
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
      } else {
        reject(new Error(`${file.name}: ${errorMessage(xhr.status, xhr.statusText, xhr.responseText)}`));
      }
    });
    xhr.addEventListener("error", () => reject(new Error(`${file.name}: could not reach the server.`)));
    xhr.addEventListener("abort", () => reject(new Error(`${file.name}: upload cancelled.`)));
    xhr.send(file);
  });
}

uploadForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  const files = Array.from(fileInput.files || []);
  if (files.length === 0) {
    showError("Choose a file to upload first.");
    fileInput.focus();
    return;
  }

  const totalBytes = files.reduce((sum, f) => sum + f.size, 0) || 1;
  let doneBytes = 0;
  const failures = [];

  uploadButton.disabled = true;
  fileInput.disabled = true;
  progressBar.value = 0;
  progressBox.hidden = false;

  for (const [index, file] of files.entries()) {
    progressLabel.textContent = files.length > 1
      ? `Uploading ${file.name} (${index + 1} of ${files.length})…`
      : `Uploading ${file.name}…`;
    try {
      await uploadOne(file, (fraction) => {
        progressBar.value = Math.round(((doneBytes + fraction * file.size) / totalBytes) * 100);
      });
    } catch (err) {
      failures.push(err.message);
    }
    doneBytes += file.size;
  }

  progressBar.value = 100;
  progressLabel.textContent = failures.length === 0 ? "Upload complete." : "Upload finished with errors.";
  uploadButton.disabled = false;
  fileInput.disabled = false;
  if (failures.length > 0) showError(failures.join("\n"));
  else uploadForm.reset();

  await loadPage(null);
  if (failures.length === 0) setTimeout(() => { progressBox.hidden = true; }, 1500);
});

// ---- Delete ----------------------------------------------------------------

list.addEventListener("click", async (event) => {
  const button = event.target.closest("button.delete");
  if (!button || !list.contains(button)) return;
  const li = button.closest("li.file");
  const name = li.dataset.name;
  if (!window.confirm(`Delete the file “${name}”? This cannot be undone.`)) return;
  clearError();
  button.disabled = true;
  try {
    const response = await fetch(fileUrl(name), { method: "DELETE", headers: { Accept: "application/json" } });
    if (!response.ok) {
      throw new Error(errorMessage(response.status, response.statusText, await response.text()));
    }
    li.remove();
    updateStatus();
  } catch (err) {
    button.disabled = false;
    showError(describe(err));
  }
});

loadPage(null);
