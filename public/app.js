// The demo page's only script: no build step, no dependencies.
const STORAGE_KEY = "device-session-lock:device-id";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const REQUEST_TIMEOUT_MS = 5000;

const $ = (id) => document.getElementById(id);
const view = {
  apiBase: $("api-base"),
  deviceId: $("device-id"),
  agent: $("agent"),
  countdown: $("countdown"),
  version: $("version"),
  status: $("status"),
  error: $("error"),
  lockForm: $("lock-form"),
  clear: $("clear"),
  chatForm: $("chat-form"),
  transcript: $("transcript"),
};

/** The API origin: `?api=<origin>`, else this page's own. */
function apiBase() {
  const given = new URLSearchParams(location.search).get("api");
  if (!given) return location.origin;
  let url = null;
  try {
    url = new URL(given);
  } catch {
    // Not a URL at all: the message below names the parameter.
  }
  if (url?.protocol !== "http:" && url?.protocol !== "https:")
    throw new Error(`?api must be an http(s) origin such as https://locks.example.com, not ${given}`);
  return url.origin;
}

/** This browser's device id: made once, then kept in localStorage. */
function deviceId() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (stored && UUID.test(stored)) return stored.toLowerCase();
  const created = crypto.randomUUID();
  localStorage.setItem(STORAGE_KEY, created);
  return created;
}

/** The API's clock minus this browser's, in ms, from the last answer's `Date` (0 before one). */
let serverClockOffsetMs = 0;

/** Calls the API; resolves with the JSON body, rejects with a sentence a person can read. */
async function api(base, device, method, body) {
  const headers = { Accept: "application/json", "X-Device-ID": device };
  if (body) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`${base}/api/session-lock`, {
      method,
      headers,
      body: body && JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    const why = error.name === "TimeoutError" ? "it did not answer in time" : "the request failed";
    throw new Error(`Could not reach the lock service at ${base}: ${why}.`);
  }
  // The API's clock, to the second: the countdown runs on it, not on this browser's.
  const serverDate = Date.parse(response.headers.get("Date") ?? "");
  if (!Number.isNaN(serverDate)) serverClockOffsetMs = serverDate + 500 - Date.now();
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  // application/problem+json: { title, detail, code, ... }
  if (!data || typeof data.detail !== "string")
    throw new Error(`The lock service answered ${response.status}.`);
  const retryAfter = response.headers.get("Retry-After");
  throw new Error(
    `${data.title ?? "Error"}: ${data.detail}${retryAfter ? ` (retry in ${retryAfter} s)` : ""}`,
  );
}

let deadline = null; // performance.now() at which the shown lock expires

/** Shows a lock representation; `serverNow` is the API's time when it was read, in ms. */
function show(lock, serverNow = Date.now() + serverClockOffsetMs) {
  view.agent.textContent = lock.activeAgent ?? "none: the next message starts a fresh conversation";
  view.version.textContent = lock.version ?? "–";
  // Whole milliseconds first: adding the epoch time to performance.now() would round.
  const leftMs = lock.expiresAt ? Date.parse(lock.expiresAt) - serverNow : null;
  // A lock the API calls active is not over yet, whatever the clocks say: read it again in a
  // second rather than at once (and again, and again).
  deadline = leftMs === null ? null : performance.now() + Math.max(leftMs, 1000);
  tick();
}

function tick() {
  if (deadline === null) {
    view.countdown.textContent = "–";
    return;
  }
  const seconds = Math.max(0, Math.ceil((deadline - performance.now()) / 1000));
  const [h, m, s] = [Math.floor(seconds / 3600), Math.floor(seconds / 60) % 60, seconds % 60];
  const two = (n) => String(n).padStart(2, "0");
  view.countdown.textContent = h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
  if (seconds === 0) {
    deadline = null;
    refresh(); // expired: the API now answers "no lock"
  }
}

function showError(error) {
  view.error.textContent = error instanceof Error ? error.message : String(error);
  view.error.hidden = false;
}

/**
 * Runs one user action (or a refresh): buttons disabled meanwhile, the last action's status
 * cleared, errors shown, the old error cleared on success.
 */
async function act(form, action) {
  const buttons = form ? [...form.querySelectorAll("button")] : [];
  for (const button of buttons) button.disabled = true;
  view.status.textContent = "";
  try {
    await action();
    view.error.hidden = true;
  } catch (error) {
    showError(error);
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

let base;
let device;
const refresh = () => act(null, async () => show(await api(base, device, "GET")));

try {
  base = apiBase();
  device = deviceId();
  view.apiBase.textContent = base;
  view.deviceId.textContent = device;
  setInterval(tick, 250);
  refresh();
} catch (error) {
  showError(error);
  // Without an API or a device id nothing can be sent: the forms stay off.
  for (const control of document.querySelectorAll("input, button")) control.disabled = true;
}

view.lockForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(view.lockForm);
  const agent = String(form.get("agent")).trim();
  const ttlSeconds = Number(form.get("ttlSeconds"));
  act(view.lockForm, async () => {
    const lock = await api(base, device, "PUT", { agent, ttlSeconds });
    // A lock just set expires ttlSeconds after lockedAt, by the API's clock: count from that.
    show(lock, Date.parse(lock.lockedAt));
    view.status.textContent = `Lock set for ${lock.activeAgent} (version ${lock.version}).`;
  });
});

view.clear.addEventListener("click", () =>
  act(view.lockForm, async () => {
    const { cleared } = await api(base, device, "DELETE");
    show({ activeAgent: null, version: null, expiresAt: null });
    view.status.textContent = cleared ? "Lock cleared." : "There was no lock to clear.";
  }),
);

view.chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const input = view.chatForm.elements.message;
  const message = input.value.trim();
  act(view.chatForm, async () => {
    const lock = await api(base, device, "GET");
    show(lock);
    const item = document.createElement("li");
    item.textContent = lock.activeAgent
      ? `“${message}” → ${lock.activeAgent} (it holds the lock)`
      : `“${message}” → the classifier (a fresh conversation)`;
    view.transcript.append(item);
    input.value = "";
  });
});
