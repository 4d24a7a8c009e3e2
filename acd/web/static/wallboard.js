// The wallboard: per queue waiting calls, longest wait, agents by state and today's
// service level against the queue's target; below, every agent and their time in state.
import { connect, h, loginForm, logout, STATE_NAMES, ticking } from "./live.js";

const $ = (id) => document.getElementById(id);
const ORDER = ["ready", "ringing", "talking", "wrap_up", "not_ready"];

function percent(x) { return x == null ? "–" : `${Math.round(x * 100)}%`; }
function seconds(s) { return s < 120 ? `${Math.round(s)}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`; }

function queueTile(q) {
  let tile = document.querySelector(`.queue[data-queue="${CSS.escape(q.name)}"]`);
  if (!tile) {
    const figure = (field, label, extra = {}) =>
      h("div", { class: "figure", "data-field": field, ...extra },
        h("div", { class: "value" }, "–"), h("div", { class: "label" }, label));
    tile = h("article", { class: "queue", "data-queue": q.name },
      h("h2", {}, q.name),
      h("div", { class: "figures" },
        figure("waiting", "waiting"),
        figure("longest", "longest wait"),
        figure("service_level", "service level", { class: "figure sl" })),
      h("div", { class: "states", "data-field": "agents" }),
      h("div", { class: "today", "data-field": "today" }));
    $("queues").append(tile);
  }
  return tile;
}

function renderQueue(q, msg) {
  const tile = queueTile(q);
  const value = (field) => tile.querySelector(`[data-field="${field}"] .value`);
  tile.dataset.status = q.status;
  value("waiting").textContent = q.waiting;
  const longest = value("longest");
  if (q.waiting > 0) ticking(longest, q.longest_wait_s, msg); else ticking(longest, null, msg);
  const sl = tile.querySelector('[data-field="service_level"]');
  sl.dataset.status = q.status;
  value("service_level").textContent = percent(q.service_level);
  sl.querySelector(".label").textContent =
    `service level · target ${percent(q.target)} in ${seconds(q.service_time)}`;
  const chips = ORDER.filter((s) => q.agents[s]).map((s) =>
    h("span", { class: "chip", "data-activity": s, "data-count": q.agents[s] },
      `${STATE_NAMES[s]} ${q.agents[s]}`));
  tile.querySelector('[data-field="agents"]').replaceChildren(
    ...(chips.length ? chips : [h("span", { class: "dim" }, "no agents logged in")]));
  tile.querySelector('[data-field="today"]').textContent =
    `today: ${q.offered} offered · ${q.answered} answered · ${q.abandoned} abandoned`;
}

function renderAgents(agents, msg) {
  const body = $("agents").tBodies[0];
  const rows = agents.map((a) => {
    const timer = h("td", { class: "num", "data-field": "in_state" });
    ticking(timer, a.in_state_s, msg);
    const state = STATE_NAMES[a.activity] || a.activity;
    const call = a.current ? `${a.current.caller_number || "unknown"} (${a.current.queue})` : "";
    return h("tr", { "data-agent": a.id, "data-activity": a.activity },
      h("td", {}, a.id), h("td", {}, a.name),
      h("td", { class: "state", "data-field": "state" }, a.reason ? `${state}: ${a.reason}` : state),
      timer, h("td", { "data-field": "call" }, call), h("td", { class: "dim" }, a.queues.join(", ")));
  });
  body.replaceChildren(...rows);
}

function render(msg) {
  if (msg.type !== "wallboard") return;
  const names = new Set(msg.queues.map((q) => q.name));
  for (const tile of document.querySelectorAll(".queue")) {
    if (!names.has(tile.dataset.queue)) tile.remove();       // queue removed by a reload
  }
  for (const q of msg.queues) renderQueue(q, msg);
  renderAgents(msg.agents, msg);
  $("clock").textContent = new Date(msg.at).toLocaleTimeString();
}

function onState(state, detail) {
  const conn = $("conn");
  conn.dataset.state = state;
  conn.textContent = { live: "live", connecting: "connecting", down: "reconnecting",
    login: "not logged in", forbidden: detail || "not allowed" }[state];
  $("login").classList.toggle("hidden", state !== "login");
  $("board").classList.toggle("hidden", state === "login" || state === "forbidden");
  $("logout").classList.toggle("hidden", state === "login");
}

let socket = null;
function start() { socket = connect("wallboard", { onMessage: render, onState }); }
loginForm($("login"), start);
$("logout").addEventListener("click", async () => {
  socket?.close();
  await logout();
  onState("login");
});
start();
