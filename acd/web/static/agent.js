// The agent desktop: the agent's own state with ready / not ready (reason) / log out,
// the wrap-up after a call, and the screen pop of the call offered to them: caller, the
// IVR path they came through and what the IVR's lookups found about them.
import { connect, h, loginForm, logout, post, STATE_NAMES, ticking } from "./live.js";

const $ = (id) => document.getElementById(id);
let agent = null;
let socket = null;

function renderReasons(reasons) {
  const select = $("reason");
  const names = reasons.map((r) => r.name);
  if ([...select.options].map((o) => o.value).join() === names.join()) return;
  select.replaceChildren(...names.map((name) => h("option", { value: name }, name)));
}

function renderAgent(a, msg) {
  agent = a;
  $("no-agent").classList.toggle("hidden", a != null);
  $("status").classList.toggle("hidden", a == null);
  if (!a) return;
  $("title").textContent = `${a.name} (${a.id})`;
  const state = $("state");
  state.dataset.activity = a.activity;
  const name = STATE_NAMES[a.activity] || a.activity;
  state.textContent = a.state === "not_ready" && a.reason ? `${name}: ${a.reason}` : name;
  ticking($("in-state"), a.in_state_s, msg);
  $("queues").textContent = a.queues.length ? `queues: ${a.queues.join(", ")}` : "";
  $("wrapup").classList.toggle("hidden", a.state !== "wrap_up");
  const busy = a.current != null;
  $("ready").disabled = busy || a.state === "ready";
  $("not-ready").disabled = busy || a.state === "logged_out";
  $("acd-logout").disabled = busy || a.state === "logged_out";
}

function renderCall(call) {
  const pop = $("pop");
  pop.classList.toggle("hidden", call == null);
  if (!call) return;
  pop.dataset.phase = call.phase;
  pop.dataset.uniqueid = call.uniqueid;
  $("pop-title").textContent = { ringing: "Incoming call", talking: "On the call",
    ended: "Last call" }[call.phase] || "Call";
  $("pop-caller").textContent = call.caller_number || "unknown number";
  $("pop-meta").textContent = [call.caller_name, `queue ${call.queue}`, call.flow && `flow ${call.flow}`]
    .filter(Boolean).join(" · ");
  $("pop-path").replaceChildren(...(call.ivr_path.length
    ? call.ivr_path.map((node) => h("li", {}, node))
    : [h("li", { class: "dim" }, "came straight to the queue")]));
  const entries = Object.entries(call.customer);
  $("pop-customer").replaceChildren(...(entries.length
    ? entries.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { "data-key": k }, v)])
    : [h("dt", { class: "dim" }, "not identified")]));
}

function render(msg) {
  if (msg.type !== "agent") return;
  renderReasons(msg.reasons);
  renderAgent(msg.agent, msg);
  renderCall(msg.call);
}

function onState(state, detail) {
  const conn = $("conn");
  conn.dataset.state = state;
  conn.textContent = { live: "live", connecting: "connecting", down: "reconnecting",
    login: "not logged in", forbidden: detail || "not allowed" }[state];
  $("login").classList.toggle("hidden", state !== "login");
  $("desk").classList.toggle("hidden", state === "login" || state === "forbidden");
  $("signout").classList.toggle("hidden", state === "login");
}

async function act(path, body) {
  $("action-error").textContent = "";
  try {
    await post(`/agents/${encodeURIComponent(agent.id)}/${path}`, body);
  } catch (exc) {
    $("action-error").textContent = exc.message;
  }
}

// Ready from logged out logs the agent in on their configured phone first.
$("ready").addEventListener("click", () =>
  act(agent.state === "logged_out" ? "login" : "ready", {}));
$("not-ready").addEventListener("click", () => act("not-ready", { reason: $("reason").value }));
$("acd-logout").addEventListener("click", () => act("logout", {}));
$("signout").addEventListener("click", async () => {
  socket?.close();
  await logout();
  onState("login");
});

function start() { socket = connect("agent", { onMessage: render, onState }); }
loginForm($("login"), start);
start();
