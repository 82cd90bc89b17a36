// notes plugin UI script: talks to /plugins/notes/api to list (page by page), add, edit in place and delete notes.
"use strict";

const API = "/plugins/notes/api";
const PAGE_SIZE = 50;

const list = document.getElementById("notes");
const addForm = document.getElementById("note-form");
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

// ---- API -------------------------------------------------------------------

// Calls the notes API; returns the parsed JSON body, or null for 204. Throws with the API's error message.
async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, options);
  if (!response.ok) {
    let message = `Request failed: ${response.status} ${response.statusText}`.trim();
    try {
      const data = await response.json();
      if (data && typeof data.error === "string") message = data.error;
    } catch (_) {
      // Not JSON; keep the status line.
    }
    throw new Error(message);
  }
  if (response.status === 204) return null;
  return response.json();
}

const noteUrl = (id) => `/notes/${encodeURIComponent(id)}`;

// ---- Rendering (text only, never innerHTML) --------------------------------

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

function datesLine(note) {
  const line = el("p", { class: "note-dates muted small" }, ["Created ", timeEl(note.created)]);
  if (note.updated && new Date(note.updated).getTime() !== new Date(note.created).getTime()) {
    line.append(" · edited ", timeEl(note.updated));
  }
  return line;
}

// Fills an li.note with the read-only view of a note.
function renderView(li, note) {
  li.replaceChildren(
    el("h3", { class: "note-title wrap", text: note.title }),
    el("p", { class: "note-body wrap", text: note.body }),
    el("div", { class: "spread" }, [
      datesLine(note),
      el("div", { class: "row" }, [
        el("button", { type: "button", class: "edit", "aria-label": `Edit “${note.title}”`, text: "Edit" }),
        el("button", { type: "button", class: "delete danger", "aria-label": `Delete “${note.title}”`, text: "Delete" }),
      ]),
    ]),
  );
  li.noteData = note;
}

// Switches an li.note to edit mode: a form with the current title and body.
function renderEdit(li) {
  const note = li.noteData;
  const key = `edit-${li.dataset.id}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const title = el("input", { type: "text", id: `${key}-title`, name: "title", autocomplete: "off" });
  title.value = note.title;
  const body = el("textarea", { id: `${key}-body`, name: "body", rows: "4" });
  body.value = note.body;
  const form = el("form", { class: "edit-form", "aria-label": "Edit note" }, [
    el("div", { class: "field" }, [el("label", { for: title.id, text: "Title" }), title]),
    el("div", { class: "field" }, [el("label", { for: body.id, text: "Body" }), body]),
    el("div", { class: "row" }, [
      el("button", { type: "submit", class: "primary save", text: "Save" }),
      el("button", { type: "button", class: "cancel", text: "Cancel" }),
    ]),
  ]);
  li.replaceChildren(form);
  li.classList.add("editing");
  title.focus();
}

function noteItem(note) {
  const li = el("li", { class: "note", "data-id": note.id });
  renderView(li, note);
  return li;
}

function updateStatus() {
  const count = list.querySelectorAll("li.note").length;
  statusText.textContent = count === 0 ? "" : `${count} shown${nextCursor ? ", more available" : ""}`;
}

// ---- Loading ---------------------------------------------------------------

async function loadPage(cursor) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) params.set("cursor", cursor);
  moreButton.disabled = true;
  statusText.textContent = "Loading…";
  try {
    const page = await api("GET", `/notes?${params}`);
    for (const note of page.items || []) {
      // Skip a note already shown (e.g. added here before this page arrived).
      if (!Array.from(list.children).some((li) => li.dataset.id === note.id)) list.append(noteItem(note));
    }
    nextCursor = page.next ?? null;
  } catch (err) {
    showError(describe(err));
  } finally {
    moreButton.disabled = false;
    moreButton.hidden = !nextCursor;
    list.dataset.empty = "No notes yet.";
    updateStatus();
  }
}

moreButton.addEventListener("click", () => {
  clearError();
  loadPage(nextCursor);
});

// ---- Add -------------------------------------------------------------------

addForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  const submit = addForm.querySelector('button[type="submit"]');
  const title = addForm.elements.title.value;
  const body = addForm.elements.body.value;
  submit.disabled = true;
  try {
    const note = await api("POST", "/notes", { title, body });
    list.prepend(noteItem(note));
    addForm.reset();
    addForm.elements.title.focus();
    updateStatus();
  } catch (err) {
    showError(describe(err));
  } finally {
    submit.disabled = false;
  }
});

// ---- Edit, cancel, delete (one delegated listener for the whole list) ------

list.addEventListener("click", async (event) => {
  const button = event.target.closest("button");
  if (!button || !list.contains(button)) return;
  const li = button.closest("li.note");
  if (!li) return;

  if (button.classList.contains("edit")) {
    clearError();
    renderEdit(li);
  } else if (button.classList.contains("cancel")) {
    li.classList.remove("editing");
    renderView(li, li.noteData);
    li.querySelector("button.edit").focus();
  } else if (button.classList.contains("delete")) {
    const title = li.noteData ? li.noteData.title : "";
    if (!window.confirm(`Delete the note “${title}”? This cannot be undone.`)) return;
    clearError();
    button.disabled = true;
    try {
      await api("DELETE", noteUrl(li.dataset.id));
      li.remove();
      updateStatus();
    } catch (err) {
      button.disabled = false;
      showError(describe(err));
    }
  }
});

list.addEventListener("submit", async (event) => {
  const form = event.target.closest("form.edit-form");
  if (!form) return;
  event.preventDefault();
  clearError();
  const li = form.closest("li.note");
  const save = form.querySelector("button.save");
  save.disabled = true;
  try {
    const note = await api("PUT", noteUrl(li.dataset.id), {
      title: form.elements.title.value,
      body: form.elements.body.value,
    });
    li.classList.remove("editing");
    renderView(li, note);
    li.querySelector("button.edit").focus();
  } catch (err) {
    save.disabled = false;
    showError(describe(err));
  }
});

// Escape leaves edit mode without saving.
list.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const li = event.target.closest("li.note.editing");
  if (li) li.querySelector("button.cancel").click();
});

loadPage(null);
