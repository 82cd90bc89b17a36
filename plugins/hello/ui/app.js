// hello plugin UI script: sends the typed name to the hello API and shows the returned message.
"use strict";

const API = "/plugins/hello/api";

const form = document.getElementById("hello-form");
const nameInput = document.getElementById("name");
const button = document.getElementById("greet");
const message = document.getElementById("message");
const errorBox = document.getElementById("error");
const errorText = document.getElementById("error-text");

function showError(text) {
  errorText.textContent = text;
  errorBox.hidden = false;
}

function clearError() {
  errorBox.hidden = true;
  errorText.textContent = "";
}

document.getElementById("error-close").addEventListener("click", clearError);

// Reads an error message from a failed response: the API sends {"error": "..."}.
async function errorFrom(response) {
  try {
    const data = await response.json();
    if (data && typeof data.error === "string") return data.error;
  } catch (_) {
    // Body was not JSON; fall through to the status line.
  }
  return `Request failed: ${response.status} ${response.statusText}`.trim();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError();
  const name = nameInput.value.trim();
  button.disabled = true;
  try {
    const response = await fetch(`${API}/hello?name=${encodeURIComponent(name)}`, {
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(await errorFrom(response));
    const data = await response.json();
    message.textContent = String(data.message ?? "");
    message.classList.remove("muted");
  } catch (err) {
    showError(err instanceof TypeError ? "Could not reach the server." : err.message);
  } finally {
    button.disabled = false;
  }
});
