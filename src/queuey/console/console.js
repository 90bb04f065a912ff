// Queuey web console: talks only to Queuey's public HTTP API (docs/api.md).
//
// Everything the server sends is put on the page as text (textContent, createElement): queue
// names, message bodies and error messages never become markup. The credential lives in this
// tab's sessionStorage and travels only in the Authorization header.
"use strict";

const SESSION_KEY = "queuey.console.session";
const TAIL_LIMIT = 200; // messages kept in the live tail
const MAX_SHOWN_CHARS = 20000; // longer bodies are cut on screen (the API holds them whole)

// --- the page ---------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

// An element with attributes and children; strings become text nodes, never markup.
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return element;
}

let noticeTimer = null;

// Shows the outcome of an action; an error stays until the next action or a dismissal.
function notify(text, kind = "error") {
  const notice = $("notice");
  clearTimeout(noticeTimer);
  if (kind !== "error") noticeTimer = setTimeout(clearNotice, 6000);
  $("notice-text").textContent = text;
  notice.className = `notice ${kind}`;
  notice.setAttribute("role", kind === "error" ? "alert" : "status");
  notice.hidden = false;
}

function clearNotice() {
  $("notice").hidden = true;
  $("notice-text").textContent = "";
}

// Values of a form's named fields, left out when empty.
function formValues(form) {
  const values = {};
  for (const [name, value] of new FormData(form)) {
    if (typeof value === "string" && value.trim() !== "") values[name] = value.trim();
  }
  return values;
}

// Runs an action of a button or form, showing what failed as the API said it.
function guarded(action) {
  return async (event) => {
    if (event && event.type === "submit") event.preventDefault();
    clearNotice();
    try {
      await action(event);
    } catch (error) {
      notify(describe(error));
    }
  };
}

// --- the API ----------------------------------------------------------------------------

let session = loadSession();

function loadSession() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    if (stored && stored.app && stored.scheme && stored.secret) return stored;
  } catch {
    // an unreadable entry is as good as none
  }
  return null;
}

class ApiError extends Error {
  constructor(status, data, statusText) {
    super(`HTTP ${status}`);
    this.status = status;
    this.data = data;
    this.statusText = statusText;
  }
}

// The API's own words: every entry of error_msg, "key: message".
function describe(error) {
  if (error instanceof ApiError) {
    const messages = error.data && error.data.error_msg;
    if (messages && typeof messages === "object") {
      return Object.entries(messages)
        .map(([key, message]) => `${key}: ${message}`)
        .join("; ");
    }
    return `HTTP ${error.status} ${error.statusText || ""}`.trim();
  }
  return error && error.message ? error.message : String(error);
}

function authorization(credentials = session) {
  return `${credentials.scheme} ${credentials.secret}`;
}

// A path segment. Browsers resolve "." and ".." in paths and Queuey ignores a trailing slash,
// so such a segment would reach another resource (an empty id list, the queue itself).
function segment(part) {
  const text = String(part);
  if (text === "" || text === "." || text === "..") {
    throw new Error(`“${text}” is not a name or id that a URL can carry.`);
  }
  return encodeURIComponent(text);
}

function appPath(...parts) {
  return ["/v1", ...[session.app, ...parts].map(segment)].join("/");
}

function queuePath(...parts) {
  return appPath(state.queue, ...parts);
}

function withQuery(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

// One request; resolves to the parsed JSON answer, rejects with ApiError on a non-2xx.
async function call(method, path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  headers.Authorization = authorization(options.credentials);
  let body = options.body;
  if (options.form) body = new URLSearchParams(options.form);
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(withQuery(path, options.query), {
    method,
    headers,
    body,
    cache: "no-store",
    credentials: "omit",
    redirect: "error",
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON: described by its status
  }
  if (!response.ok) throw new ApiError(response.status, data, response.statusText);
  return data;
}

// --- showing messages -------------------------------------------------------------------

// Control characters, the replacement character and the invisible or direction-changing ones
// are shown as escapes, so a binary-looking or spoofing body cannot pass for something else.
const INVISIBLE =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff\ufff9-\ufffd]/g;

function escapeInvisible(text) {
  let count = 0;
  const escaped = text.replace(INVISIBLE, (char) => {
    count += 1;
    const code = char.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
  return { text: escaped, count };
}

// How a body is shown: JSON pretty-printed, anything else as text with escapes.
function presentBody(body, contentType) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  const trimmed = text.trim();
  if (/json/i.test(contentType || "") || /^[[{]/.test(trimmed)) {
    try {
      const pretty = escapeInvisible(JSON.stringify(JSON.parse(trimmed), null, 2));
      return { text: pretty.text, label: "JSON" };
    } catch {
      // not JSON after all
    }
  }
  const shown = escapeInvisible(text);
  const label = shown.count ? `${shown.count} unprintable characters escaped` : "";
  return { text: shown.text, label };
}

function formatTime(timestamp) {
  const seconds = Number(timestamp);
  if (!Number.isFinite(seconds)) return String(timestamp);
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace("Z", " UTC");
}

function messageRef(message) {
  return `${message.partition}:${message.message_id}`;
}

// A message as a list item: its facts, its body, and the buttons given.
function messageItem(message, buttons = []) {
  const shown = presentBody(message.body, message.content_type);
  const cut = shown.text.length > MAX_SHOWN_CHARS;
  const facts = [
    ["id", message.message_id],
    ["partition", message.partition],
    ["time", formatTime(message.timestamp)],
    ["type", message.content_type || ""],
  ];
  if (message.claim_id) {
    facts.push(["claim", message.claim_id]);
    facts.push(["deliveries", message.deliveries]);
    facts.push(["lease ends", formatTime(message.claim_expires)]);
  }
  return h(
    "li",
    { class: "message", "data-id": message.message_id },
    h(
      "dl",
      { class: "facts" },
      facts.map(([name, value]) => h("div", {}, h("dt", { text: name }), h("dd", { text: String(value) }))),
    ),
    shown.label ? h("p", { class: "tag", text: shown.label }) : null,
    h("pre", { class: "body", tabindex: "0" }, cut ? `${shown.text.slice(0, MAX_SHOWN_CHARS)}…` : shown.text),
    cut ? h("p", { class: "hint", text: `Showing ${MAX_SHOWN_CHARS} of ${shown.text.length} characters.` }) : null,
    buttons.length ? h("div", { class: "buttons" }, buttons) : null,
  );
}

function showList(list, items, empty = "No message.") {
  list.replaceChildren(...(items.length ? items : [h("li", { class: "hint", text: empty })]));
}

// --- queue settings ---------------------------------------------------------------------

// Every setting of api.md, for the create and edit forms.
const SETTINGS = [
  { name: "partitions", label: "Partitions (1–200, only grow)", type: "number", min: 1, max: 200 },
  { name: "type", label: "Type", options: ["user", "public"] },
  { name: "consistency", label: "Consistency", options: ["weak", "strong", "very_strong"] },
  { name: "principles", label: "Principles (app:<name>, user:<id>, bid:<email>, comma list)" },
  { name: "delivery", label: "Delivery", options: ["at_most_once", "at_least_once", "exactly_once"] },
  { name: "claim_ttl", label: "Claim lease (s)", type: "number", min: 1, max: 43200 },
  { name: "max_deliveries", label: "Max deliveries (0: no limit)", type: "number", min: 0, max: 1000 },
  { name: "dead_letter_queue", label: "Dead-letter queue" },
  { name: "delay", label: "Delay of new messages (s)", type: "number", min: 0 },
  { name: "dedup_window", label: "Dedup window (s)", type: "number", min: 0, max: 86400 },
  { name: "policy", label: "Stream policy", options: ["broadcast", "roundrobin"] },
  { name: "paused", label: "Paused", type: "checkbox" },
];

function buildSettings(container, purpose) {
  const fields = SETTINGS.map((setting) => {
    const id = `${purpose}-${setting.name}`;
    let input;
    if (setting.options) {
      const options = setting.options.map((option) => h("option", { value: option, text: option }));
      if (purpose === "create") options.unshift(h("option", { value: "", text: "(default)" }));
      input = h("select", { id, name: setting.name }, options);
    } else if (setting.type === "checkbox") {
      input = h("input", { id, name: setting.name, type: "checkbox", value: "true" });
    } else {
      input = h("input", {
        id,
        name: setting.name,
        type: setting.type || "text",
        min: setting.min,
        max: setting.max,
        spellcheck: "false",
        autocomplete: "off",
      });
    }
    const label = h("label", { for: id, text: setting.label });
    return h("div", { class: setting.type === "checkbox" ? "field check" : "field" }, label, input);
  });
  container.replaceChildren(...fields);
}

function settingValue(form, name) {
  const field = form.elements.namedItem(name);
  if (field.type === "checkbox") return field.checked ? "true" : "false";
  return field.value.trim();
}

function currentValue(queue, name) {
  const value = queue[name];
  if (name === "paused") return value ? "true" : "false";
  if (Array.isArray(value)) return value.join(",");
  return value === null || value === undefined ? "" : String(value);
}

function fillSettings(form, queue) {
  for (const { name } of SETTINGS) {
    const field = form.elements.namedItem(name);
    if (field.type === "checkbox") field.checked = Boolean(queue[name]);
    else field.value = currentValue(queue, name);
  }
}

// --- state ------------------------------------------------------------------------------

const state = {
  queue: null, // the open queue's name
  settings: null, // its settings (from the listing), when the credential may list
  tab: "browse",
  pages: [], // start names of the queue pages seen, the current one last
  prefix: "",
  limit: 25,
  next: null, // the first name of the next page
  claims: new Map(), // claim_id -> claimed message
  browseNext: null, // "after" for the next messages
  live: null, // the open stream's AbortController
  liveOn: true,
  statsTimer: null,
};

// --- signing in -------------------------------------------------------------------------

async function signIn(event) {
  const form = event.target;
  const app = form.elements.namedItem("app").value.trim();
  const secret = form.elements.namedItem("secret").value.trim();
  const scheme = form.elements.namedItem("scheme").value;
  if (!app || !secret) {
    notify("Enter the application's name and its key or a token.");
    return;
  }
  const credentials = { app, scheme, secret };
  try {
    await call("GET", `/v1/${segment(app)}`, { query: { limit: 1 }, credentials });
  } catch (error) {
    // A token may be unable to list queues and still open the ones it names.
    if (!(scheme === "Bearer" && error instanceof ApiError && error.status === 403)) throw error;
  }
  session = credentials;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  form.reset();
  showWorkspace();
}

function signOut() {
  closeQueue();
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  $("workspace").hidden = true;
  $("sign-in").hidden = false;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("queue-rows").replaceChildren();
  history.replaceState(null, "", location.pathname);
  $("sign-in-app").focus();
}

function showWorkspace() {
  $("sign-in").hidden = true;
  $("workspace").hidden = false;
  $("who").hidden = false;
  $("sign-out").hidden = false;
  $("who-app").textContent = session.app;
  $("who-scheme").textContent = session.scheme === "Bearer" ? "a token" : "the application key";
  state.pages = [""];
  state.prefix = "";
  route().catch((error) => notify(describe(error)));
  showPage().catch((error) => notify(describe(error)));
}

// The queues a token names (read from its payload, not verified: the server does that).
function tokenQueues() {
  try {
    const payload = session.secret.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload));
    const queues = claims.queues;
    if (Array.isArray(queues)) return queues.map(String);
    if (typeof queues === "string") return queues.split(",").map((name) => name.trim());
  } catch {
    // not a JWT the console can read
  }
  return [];
}

// --- the queue list ---------------------------------------------------------------------

// One page of names from state.pages' last start. The API lists by name from an offset, so a
// page costs the same at any depth; a prefix filter starts at the prefix and stops at the
// first name without it.
async function showPage() {
  const start = state.pages[state.pages.length - 1] || state.prefix;
  const rows = $("queue-rows");
  $("queue-table").setAttribute("aria-busy", "true");
  let data;
  try {
    data = await call("GET", appPath(), {
      query: { details: "true", limit: state.limit + 1, offset: start },
    });
  } catch (error) {
    rows.replaceChildren();
    $("queue-empty").hidden = true;
    updatePager();
    if (session.scheme === "Bearer") showTokenQueues(error);
    else throw error;
    return;
  } finally {
    $("queue-table").removeAttribute("aria-busy");
  }
  let queues = data.queues;
  const outside = queues.findIndex((queue) => !queue.queue_name.startsWith(state.prefix));
  if (outside >= 0) queues = queues.slice(0, outside);
  state.next = queues.length > state.limit ? queues[state.limit].queue_name : null;
  queues = queues.slice(0, state.limit);
  rows.replaceChildren(...queues.map(queueRow));
  $("queue-empty").hidden = queues.length > 0;
  $("queue-caption").textContent = state.prefix
    ? `Queues whose name starts with “${state.prefix}”, page ${state.pages.length}`
    : `Queues of ${session.app}, page ${state.pages.length}`;
  updatePager();
}

function queueRow(queue) {
  const open = h("button", {
    type: "button",
    class: "link",
    text: queue.queue_name,
    onclick: () => {
      location.hash = queueHash(queue.queue_name, "browse");
    },
  });
  if (queue.queue_name === state.queue) open.setAttribute("aria-current", "true");
  return h(
    "tr",
    {},
    h("th", { scope: "row" }, open),
    h("td", { text: String(queue.partitions ?? "") }),
    h("td", { class: "wide", text: queue.type ?? "" }),
    h("td", { class: "wide", text: queue.delivery ?? "" }),
  );
}

function showTokenQueues(error) {
  const names = tokenQueues();
  const text = `This credential cannot list queues (${describe(error)}).`;
  $("queue-caption").textContent = names.length ? `${text} The token names:` : text;
  $("queue-rows").replaceChildren(
    ...names.map((name) =>
      name.endsWith("*") // a prefix: its queues are opened by name
        ? h("tr", {}, h("th", { scope: "row", text: name }))
        : queueRow({ queue_name: name }),
    ),
  );
}

function updatePager() {
  $("page-first").disabled = state.pages.length <= 1;
  $("page-prev").disabled = state.pages.length <= 1;
  $("page-next").disabled = state.next === null;
}

function filterQueues(event) {
  const form = event.target;
  state.prefix = form.elements.namedItem("prefix").value.trim();
  state.limit = Number(form.elements.namedItem("limit").value);
  state.pages = [state.prefix];
  return showPage();
}

// --- one queue --------------------------------------------------------------------------

function queueHash(name, tab) {
  return `#/queue/${encodeURIComponent(name)}/${tab}`;
}

// The view the location's hash names: #/queue/<name>/<tab>, or the list.
async function route() {
  if (!session) return;
  const match = /^#\/queue\/([^/]+)\/(\w+)$/.exec(location.hash);
  if (!match) {
    closeQueue();
    return;
  }
  const name = decodeURIComponent(match[1]);
  const tab = $(`tab-${match[2]}`) ? match[2] : "browse";
  if (name !== state.queue) await openQueue(name);
  if (state.queue === name) selectTab(tab);
}

async function openQueue(name) {
  closeQueue();
  state.queue = name;
  $("queue-name").textContent = name;
  $("workspace").classList.add("queue-open");
  $("queue").hidden = false;
  try {
    await refreshStats();
  } catch (error) {
    // No such queue: back to the list. Otherwise (a token without the stats right) the
    // queue stays open for what the credential may do.
    if (!(error instanceof ApiError) || error.status === 404) {
      closeQueue();
      history.replaceState(null, "", "#/");
      throw error;
    }
    notify(describe(error));
  }
  await loadSettings();
  $("queue-title").focus();
  startLive();
  markOpenRow();
}

function closeQueue() {
  stopLive();
  state.queue = null;
  state.settings = null;
  state.claims.clear();
  state.browseNext = null;
  $("queue").hidden = true;
  $("workspace").classList.remove("queue-open");
  for (const list of ["browse-list", "byid-list", "posted-list", "claim-list", "live-list"]) {
    $(list).replaceChildren();
  }
  $("browse-more").hidden = true;
  $("stats").replaceChildren();
  markOpenRow();
}

function markOpenRow() {
  for (const button of $("queue-rows").querySelectorAll("button.link")) {
    if (button.textContent === state.queue) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

function selectTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("[role=tab]")) {
    const selected = button.dataset.tab === tab;
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(button.getAttribute("aria-controls")).hidden = !selected;
  }
}

// Arrow keys move between tabs, as in every tab list.
function tabKeys(event) {
  const tabs = [...document.querySelectorAll("[role=tab]")];
  const index = tabs.indexOf(document.activeElement);
  const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
  if (index < 0 || !step) return;
  event.preventDefault();
  const next = tabs[(index + step + tabs.length) % tabs.length];
  next.focus();
  next.click();
}

// The open queue's settings, from the listing (an application key may list; a token not).
async function loadSettings() {
  const name = state.queue;
  let found = null;
  try {
    const data = await call("GET", appPath(), { query: { details: "true", limit: 1, offset: name } });
    found = data.queues.find((queue) => queue.queue_name === name) || null;
  } catch (error) {
    if (session.scheme !== "Bearer") throw error;
  }
  if (state.queue !== name) return;
  state.settings = found;
  if (found) fillSettings($("settings-form"), found);
  const partitions = found ? found.partitions : 1;
  $("browse-partitions").value = Array.from({ length: partitions }, (_, index) => index + 1).join(",");
  showDeadInfo();
}

const STATS = [
  ["messages", "Messages"],
  ["available", "Available"],
  ["claimed", "Claimed"],
  ["delayed", "Delayed"],
  ["dead_lettered", "Dead-lettered"],
  ["oldest", "Oldest"],
  ["newest", "Newest"],
  ["delivery", "Delivery"],
  ["claim_ttl", "Claim lease (s)"],
  ["paused", "Paused"],
];

async function refreshStats() {
  const name = state.queue;
  const data = await call("GET", queuePath("stats"));
  if (state.queue !== name) return;
  const stats = data.stats;
  const today = formatTime(Date.now() / 1000).slice(0, 11);
  $("stats").replaceChildren(
    ...STATS.map(([key, label]) => {
      let value = String(stats[key]);
      let full = null;
      if (key === "oldest" || key === "newest") {
        full = stats[key] === null ? null : formatTime(stats[key]);
        value = full === null ? "—" : full.startsWith(today) ? full.slice(11) : full;
      }
      if (key === "paused") value = stats[key] ? "yes" : "no";
      return h("div", { "data-stat": key }, h("dt", { text: label }), h("dd", { text: value, title: full }));
    }),
  );
}

// Stats follow what happens: after each change made here and each message the stream brings.
function statsSoon() {
  clearTimeout(state.statsTimer);
  state.statsTimer = setTimeout(() => {
    if (state.queue) refreshStats().catch((error) => notify(describe(error)));
  }, 250);
}

// --- browsing and messages by id --------------------------------------------------------

async function browse(event, after = undefined) {
  const form = $("browse-form");
  const query = formValues(form);
  if (after) {
    delete query.since;
    query.after = after;
  }
  const data = await call("GET", queuePath(), { query });
  const list = $("browse-list");
  const items = data.messages.map((message) => messageItem(message, messageButtons(message)));
  if (after) list.append(...items);
  else showList(list, items);
  // Reads are grouped by partition, so "after the last one" pages one partition only.
  const last = data.messages[data.messages.length - 1];
  const single = (query.partitions || "1").split(",").length === 1;
  const full = data.messages.length === Number(query.limit || 100);
  const ascending = (query.order || "ascending") === "ascending";
  state.browseNext = single && full && ascending ? last.message_id : null;
  $("browse-more").hidden = state.browseNext === null;
}

function messageButtons(message) {
  const ref = messageRef(message);
  return [
    h("button", { type: "button", text: "Fetch", onclick: guarded(() => fetchByIds(ref)) }),
    h("button", {
      type: "button",
      text: "Overwrite…",
      onclick: () => {
        $("byid-ids").value = ref;
        $("overwrite-body").value = typeof message.body === "string" ? message.body : "";
        $("overwrite-type").value = message.content_type || "text/plain; charset=utf-8";
        $("overwrite-body").focus();
      },
    }),
    h("button", { type: "button", text: "Delete", onclick: guarded(() => deleteByIds(ref)) }),
  ];
}

function idsPath(ids) {
  const list = ids.replace(/\s+/g, "");
  if (!list) throw new Error("Enter one or more message ids.");
  return queuePath(list);
}

async function fetchByIds(ids) {
  $("byid-ids").value = ids;
  const data = await call("GET", idsPath(ids));
  const items = data.messages.map((message) => messageItem(message, messageButtons(message)));
  showList($("byid-list"), items, "No message has these ids.");
}

async function deleteByIds(ids) {
  await call("DELETE", idsPath(ids));
  for (const ref of ids.split(",")) {
    const id = ref.split(":").pop().trim();
    for (const item of document.querySelectorAll(".message")) {
      if (item.dataset.id === id && !item.closest("#claim-list")) item.remove();
    }
  }
  notify(`Deleted ${ids}.`, "ok");
  statsSoon();
}

async function byIdAction(event) {
  const ids = $("byid-ids").value.trim();
  const action = event.submitter ? event.submitter.value : "fetch";
  if (action === "delete") await deleteByIds(ids);
  else await fetchByIds(ids);
}

async function overwrite() {
  const ids = $("byid-ids").value.trim();
  const values = formValues($("overwrite-form"));
  const headers = { "Content-Type": values.content_type || "text/plain; charset=utf-8" };
  if (values.ttl) headers["X-TTL"] = values.ttl;
  await call("PUT", idsPath(ids), { body: $("overwrite-body").value, headers });
  await fetchByIds(ids);
  if ($("browse-list").querySelector(".message")) await browse(); // show the new bodies there too
  notify(`Overwrote ${ids}.`, "ok");
  statsSoon();
}

// --- posting ----------------------------------------------------------------------------

function showPosted(messages) {
  const items = messages.map((posted) =>
    h(
      "li",
      {},
      `${posted.duplicate ? "Duplicate of" : "Posted"} ${posted.key} in partition ` +
        `${posted.partition} at ${formatTime(posted.timestamp)} `,
      h("button", {
        type: "button",
        text: "Fetch",
        onclick: guarded(async () => {
          await fetchByIds(`${posted.partition}:${posted.key}`);
          selectTabOf("browse");
        }),
      }),
    ),
  );
  $("posted-list").prepend(...items);
  notify(`Posted ${messages.length} message${messages.length === 1 ? "" : "s"}.`, "ok");
  statsSoon();
}

function selectTabOf(tab) {
  location.hash = queueHash(state.queue, tab);
}

async function postRaw() {
  const values = formValues($("post-form"));
  const headers = { "Content-Type": values.content_type || "text/plain; charset=utf-8" };
  const fields = [["ttl", "X-TTL"], ["partition", "X-Partition"], ["delay", "X-Delay"], ["dedup_id", "X-Dedup-Id"]];
  for (const [field, header] of fields) {
    if (values[field]) headers[header] = values[field];
  }
  const data = await call("POST", queuePath(), { body: $("post-body").value, headers });
  showPosted(data.messages);
}

async function postBatch() {
  const values = formValues($("batch-form"));
  let parsed;
  try {
    parsed = JSON.parse($("batch-json").value);
  } catch (error) {
    notify(`The batch is not JSON: ${error.message}`);
    return;
  }
  const items = Array.isArray(parsed) ? parsed : parsed && parsed.messages;
  if (!Array.isArray(items)) {
    await call("POST", queuePath(), { json: parsed }); // the API says what is wrong
    return;
  }
  const defaults = {};
  for (const field of ["ttl", "partition", "delay"]) {
    if (values[field] !== undefined) defaults[field] = Number(values[field]);
  }
  const messages = items.map((item) => {
    if (!item || typeof item !== "object" || Array.isArray(item)) return item;
    const body = typeof item.body === "string" || item.body === undefined ? item.body : JSON.stringify(item.body);
    return { ...defaults, ...item, body };
  });
  const data = await call("POST", queuePath(), { json: { messages } });
  showPosted(data.messages);
}

// --- claims -----------------------------------------------------------------------------

function showClaims() {
  const items = [...state.claims.values()].map((message) =>
    messageItem(message, [
      h("button", { type: "button", text: "Ack", onclick: guarded(() => settle("ack", [message.claim_id])) }),
      h("button", { type: "button", text: "Extend", onclick: guarded(() => settle("extend", [message.claim_id])) }),
      h("button", { type: "button", text: "Release", onclick: guarded(() => settle("release", [message.claim_id])) }),
    ]),
  );
  showList($("claim-list"), items, "No claimed message.");
}

async function claim() {
  const data = await call("POST", queuePath("claims"), { form: formValues($("claim-form")) });
  for (const message of data.messages) state.claims.set(message.claim_id, message);
  showClaims();
  notify(data.messages.length ? `Claimed ${data.messages.length}.` : "No message is available.", "ok");
  statsSoon();
}

// Ack, extend or release claims; what the API did is kept even when some claims failed.
async function settle(action, claimIds) {
  if (!claimIds.length) {
    notify("No claimed message.");
    return;
  }
  const path = queuePath("claims", claimIds.join(","));
  let data;
  try {
    if (action === "ack") data = await call("DELETE", path);
    else {
      const ttl = action === "release" ? "0" : $("extend-ttl").value.trim();
      data = await call("PATCH", path, { form: { ttl } });
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 409 && error.data) {
      applySettled(action, error.data);
      showClaims();
      statsSoon();
    }
    throw error;
  }
  applySettled(action, data);
  showClaims();
  const done = { ack: "Acknowledged", extend: "Extended", release: "Released" }[action];
  notify(`${done} ${claimIds.length}.`, "ok");
  statsSoon();
}

function applySettled(action, data) {
  for (const id of data.failed || []) state.claims.delete(id);
  if (action === "extend") {
    for (const id of data.extended || []) {
      const message = state.claims.get(id);
      if (message) message.claim_expires = data.claim_expires;
    }
    return;
  }
  for (const id of data.acked || data.released || []) state.claims.delete(id);
}

// --- the live tail (GET .../stream, server-sent events read through fetch) ----------------

// EventSource cannot send an Authorization header, so the stream is read with fetch and
// parsed here, following the event-stream format.
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { data: [], type: "", id: null, retry: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // A "\r" at the end may be the first half of "\r\n": it waits for the next chunk.
    const lines = buffer.split(/\r\n|\r(?!$)|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length || event.type) onEvent(event);
        event = { data: [], type: "", id: event.id, retry: null };
        continue;
      }
      if (line.startsWith(":")) continue; // a heartbeat
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") event.data.push(value);
      else if (field === "event") event.type = value;
      else if (field === "id" && !value.includes("\0")) event.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) onEvent({ retry: Number(value) });
    }
  }
}

function liveState(text, kind = "") {
  $("live-state").textContent = text;
  $("live-state").className = kind;
}

function startLive() {
  stopLive();
  if (!state.liveOn || !state.queue) return;
  const controller = new AbortController();
  state.live = controller;
  follow(state.queue, controller.signal).catch((error) => {
    if (!controller.signal.aborted) liveState(`Stopped: ${describe(error)}`, "error");
  });
}

function stopLive() {
  if (state.live) state.live.abort();
  state.live = null;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });

// Follows the queue's broadcast stream (a tail never consumes), reconnecting after the last
// id seen so nothing is missed or repeated; an API error ends it and is shown.
async function follow(name, signal) {
  let lastId = null;
  let retry = 2000;
  while (!signal.aborted) {
    liveState("Connecting…");
    const headers = { Authorization: authorization(), Accept: "text/event-stream" };
    if (lastId) headers["Last-Event-ID"] = lastId;
    let response;
    try {
      response = await fetch(withQuery(appPath(name, "stream"), { mode: "broadcast" }), {
        headers, signal, cache: "no-store", credentials: "omit",
      });
    } catch (error) {
      if (signal.aborted) return;
      liveState(`Disconnected (${describe(error)}), retrying…`, "error");
      await sleep(retry, signal);
      continue;
    }
    if (!response.ok) {
      let data = null;
      try { data = await response.json(); } catch { /* described by its status */ }
      const error = new ApiError(response.status, data, response.statusText);
      if (response.status !== 503) throw error;
      liveState(`${describe(error)}, retrying…`, "error");
      await sleep(retry, signal);
      continue;
    }
    liveState("Live", "ok");
    let ended = false;
    try {
      await readEvents(response, (event) => {
        if (event.retry !== undefined && event.data === undefined) {
          retry = event.retry;
          return;
        }
        if (event.id) lastId = event.id;
        if (event.type === "end") ended = true;
        else if (event.type === "" || event.type === "message") showLive(event.data.join("\n"));
      });
    } catch (error) {
      if (signal.aborted) return;
    }
    if (ended) {
      liveState("The queue was deleted: the stream ended.", "error");
      return;
    }
    if (signal.aborted) return;
    liveState("Reconnecting…");
    await sleep(retry, signal);
  }
}

function showLive(data) {
  let message;
  try {
    message = JSON.parse(data);
  } catch {
    message = { message_id: "", partition: "", timestamp: "", body: data };
  }
  const list = $("live-list");
  list.prepend(messageItem(message));
  while (list.children.length > TAIL_LIMIT) list.lastElementChild.remove();
  statsSoon();
}

function toggleLive() {
  state.liveOn = !state.liveOn;
  $("live-toggle").textContent = state.liveOn ? "Pause" : "Resume";
  if (state.liveOn) startLive();
  else {
    stopLive();
    liveState("Paused");
  }
}

// --- creating, editing and deleting queues ----------------------------------------------

async function createQueue(event) {
  const form = event.target;
  const values = {};
  const name = form.elements.namedItem("queue_name").value.trim();
  if (name) values.queue_name = name;
  for (const { name: setting, type } of SETTINGS) {
    const value = settingValue(form, setting);
    if (type === "checkbox" ? value === "true" : value !== "") values[setting] = value;
  }
  const data = await call("POST", appPath(), { form: values });
  const done = data.created === false ? "exists with these settings" : "was created";
  notify(`${data.queue_name} ${done}.`, "ok");
  form.reset();
  $("create").open = false;
  await showPage();
  location.hash = queueHash(data.queue_name, "browse");
}

// Only the settings that changed are sent: the others stay as they are.
async function saveSettings(event) {
  const form = event.target;
  if (!state.settings) {
    notify("The settings of this queue could not be read with this credential.");
    return;
  }
  const changed = {};
  for (const { name } of SETTINGS) {
    const value = settingValue(form, name);
    if (value !== currentValue(state.settings, name)) changed[name] = value;
  }
  if (!Object.keys(changed).length) {
    notify("Nothing changed.", "ok");
    return;
  }
  const data = await call("PUT", queuePath(), { form: changed });
  state.settings = { ...state.settings, ...data };
  fillSettings(form, state.settings);
  showDeadInfo();
  notify(`Saved ${Object.keys(changed).join(", ")}.`, "ok");
  statsSoon();
  showPage().catch(() => {});
}

function confirmStep(button, box, yes, no, action) {
  button.addEventListener("click", () => {
    box.hidden = false;
    no.focus();
  });
  no.addEventListener("click", () => {
    box.hidden = true;
    button.focus();
  });
  yes.addEventListener(
    "click",
    guarded(async () => {
      box.hidden = true;
      await action();
    }),
  );
}

async function deleteQueue() {
  const name = state.queue;
  await call("DELETE", queuePath());
  notify(`Deleted the queue ${name}.`, "ok");
  location.hash = "#/";
  await showPage();
}

// --- dead letters, redrive and purge ----------------------------------------------------

function showDeadInfo() {
  const target = state.settings && state.settings.dead_letter_queue;
  const limit = state.settings && state.settings.max_deliveries;
  $("dead-info").textContent = !state.settings
    ? "The settings of this queue cannot be read with this credential."
    : target
      ? `A message claimed ${limit || "any number of"} times without an ack moves to ${target}.`
      : "This queue keeps no dead letters of its own (Settings: max deliveries and dead-letter " +
      "queue). When other queues send theirs here, redrive moves them back.";
  $("dead-open").hidden = !target;
}

async function redrive() {
  const data = await call("POST", queuePath("redrive"), { form: formValues($("redrive-form")) });
  notify(`Moved ${data.moved} message${data.moved === 1 ? "" : "s"}.`, "ok");
  statsSoon();
}

async function purge() {
  const data = await call("DELETE", queuePath("messages"));
  notify(`Purged ${data.purged} message${data.purged === 1 ? "" : "s"}.`, "ok");
  state.claims.clear();
  showClaims();
  $("browse-list").replaceChildren();
  statsSoon();
}

// --- start ------------------------------------------------------------------------------

function start() {
  buildSettings(document.querySelector("[data-settings=create]"), "create");
  buildSettings(document.querySelector("[data-settings=edit]"), "edit");
  $("notice-close").addEventListener("click", clearNotice);
  $("sign-in-form").addEventListener("submit", guarded(signIn));
  $("sign-out").addEventListener("click", signOut);
  $("filter-form").addEventListener("submit", guarded(filterQueues));
  $("page-first").addEventListener("click", guarded(() => {
    state.pages = [state.prefix];
    return showPage();
  }));
  $("page-prev").addEventListener("click", guarded(() => {
    if (state.pages.length > 1) state.pages.pop();
    return showPage();
  }));
  $("page-next").addEventListener("click", guarded(() => {
    if (state.next !== null) state.pages.push(state.next);
    return showPage();
  }));
  $("open-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("open-name").value.trim();
    if (name) location.hash = queueHash(name, "browse");
  });
  $("create-form").addEventListener("submit", guarded(createQueue));
  $("queue-close").addEventListener("click", () => {
    location.hash = "#/";
  });
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => selectTabOf(tab.dataset.tab));
    tab.addEventListener("keydown", tabKeys);
  }
  $("browse-form").addEventListener("submit", guarded(browse));
  $("browse-more").addEventListener("click", guarded((event) => browse(event, state.browseNext)));
  $("byid-form").addEventListener("submit", guarded(byIdAction));
  $("overwrite-form").addEventListener("submit", guarded(overwrite));
  $("post-form").addEventListener("submit", guarded(postRaw));
  $("batch-form").addEventListener("submit", guarded(postBatch));
  $("claim-form").addEventListener("submit", guarded(claim));
  $("ack-all").addEventListener("click", guarded(() => settle("ack", [...state.claims.keys()])));
  $("release-all").addEventListener("click", guarded(() => settle("release", [...state.claims.keys()])));
  $("live-toggle").addEventListener("click", toggleLive);
  $("live-clear").addEventListener("click", () => $("live-list").replaceChildren());
  $("settings-form").addEventListener("submit", guarded(saveSettings));
  confirmStep($("delete-queue"), $("delete-confirm"), $("delete-yes"), $("delete-no"), deleteQueue);
  confirmStep($("purge"), $("purge-confirm"), $("purge-yes"), $("purge-no"), purge);
  $("dead-open").addEventListener("click", () => {
    location.hash = queueHash(state.settings.dead_letter_queue, "browse");
  });
  $("redrive-form").addEventListener("submit", guarded(redrive));
  window.addEventListener("hashchange", () => route().catch((error) => notify(describe(error))));
  if (session) showWorkspace();
  else $("sign-in-app").focus();
}

start();
