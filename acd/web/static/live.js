// Shared by the wallboard and the agent desktop: the live socket, login, time formats.
// Plain ES module, no build step: every message is a whole picture of what the page
// shows, so after a reconnect the next message puts the page right again.

export const API = "/api/v1";

/** Open /ws?view=<view> and keep it open; onMessage(msg) for every message,
 *  onState("connecting" | "live" | "down" | "login" | "forbidden", detail). */
export function connect(view, { onMessage, onState }) {
  let delay = 500;
  let stopped = false;
  let socket = null;
  const open = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws?view=${encodeURIComponent(view)}`);
    onState("connecting");
    socket.onopen = () => { delay = 500; };
    socket.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      msg.receivedAt = performance.now();
      onState("live");
      onMessage(msg);
    };
    socket.onclose = (event) => {
      socket = null;
      if (stopped) return;
      if (event.code === 4401) { onState("login"); return; }     // not logged in
      if (event.code === 4403) { onState("forbidden", event.reason); return; }
      onState("down");
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 5000);
    };
  };
  open();
  return { close() { stopped = true; if (socket) socket.close(); } };
}

/** Log in with the API's login endpoint (it sets the session cookie). */
export async function login(name, password) {
  const response = await fetch(`${API}/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name, password }),
    credentials: "same-origin",
  });
  if (!response.ok) throw new Error(await errorText(response, "login failed"));
  return response.json();
}

export async function logout() {
  await fetch(`${API}/logout`, { method: "POST", credentials: "same-origin" });
}

/** POST JSON to the API; throws with the API's error text. */
export async function post(path, body = {}) {
  const response = await fetch(`${API}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  if (!response.ok) throw new Error(await errorText(response, `${path} failed`));
  return response.status === 204 ? null : response.json();
}

async function errorText(response, fallback) {
  try { return (await response.json()).error || fallback; } catch { return `${fallback} (${response.status})`; }
}

/** 75 -> "1:15", 3725 -> "1:02:05". */
export function duration(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return "–";
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? h + ":" : ""}${mm}:${String(r).padStart(2, "0")}`;
}

/** An element that counts up from `seconds` as of the message `msg`. */
export function ticking(el, seconds, msg) {
  if (seconds == null) { delete el.dataset.base; el.textContent = "–"; return; }
  el.dataset.base = String(seconds);
  el.dataset.t0 = String(msg.receivedAt);
  el.textContent = duration(seconds);
}

setInterval(() => {
  const now = performance.now();
  for (const el of document.querySelectorAll("[data-base]")) {
    el.textContent = duration(Number(el.dataset.base) + (now - Number(el.dataset.t0)) / 1000);
  }
}, 1000);

export const STATE_NAMES = {
  ready: "Ready", ringing: "Ringing", talking: "On a call", wrap_up: "Wrap-up",
  not_ready: "Not ready", logged_out: "Logged out",
};

/** Element helper: h("td", {class: "num"}, "text", child...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("data-")) el.setAttribute(k, v);
    else el[k] = v;
  }
  for (const c of children) el.append(c instanceof Node ? c : String(c ?? ""));
  return el;
}

/** Wire a login form: on success calls done(). */
export function loginForm(form, done) {
  const error = form.querySelector(".error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await login(form.elements.username.value, form.elements.password.value);
      form.elements.password.value = "";
      done();
    } catch (exc) {
      error.textContent = exc.message;
    }
  });
}
