// The page's logic: search items, build a history, ask /recommend, show the answer. No framework, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const history = [];  // [{item_id, title}], oldest first

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function addToHistory(item) {
  history.push({ item_id: item.item_id, title: item.title });
  renderHistory();
}

function renderHistory() {
  const list = $("history");
  list.replaceChildren();
  history.forEach((item, i) => {
    const li = el("li", item.title + " ", { "data-item-id": item.item_id });
    const remove = el("button", "remove", { "aria-label": "remove " + item.title });
    remove.addEventListener("click", () => { history.splice(i, 1); renderHistory(); });
    li.append(remove);
    list.append(li);
  });
  $("history-empty").hidden = history.length > 0;
}

let searchSeq = 0;
async function search() {
  const seq = ++searchSeq;
  const q = $("search").value;
  const resp = await fetch("/items?limit=15&q=" + encodeURIComponent(q));
  if (seq !== searchSeq) return;  // a newer search started meanwhile
  const list = $("search-results");
  list.replaceChildren();
  if (!resp.ok) { list.append(el("li", "search failed: HTTP " + resp.status)); return; }
  const data = await resp.json();
  if (data.items.length === 0) list.append(el("li", "no item matches"));
  for (const item of data.items) {
    const li = el("li", item.title + " ", { "data-item-id": item.item_id });
    const add = el("button", "add", { "aria-label": "add " + item.title });
    add.addEventListener("click", () => addToHistory(item));
    li.append(add);
    list.append(li);
  }
}

function errorText(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && body.detail && body.detail.message) return body.detail.message;
  return "HTTP " + status + ": " + JSON.stringify(body);
}

async function recommend() {
  $("error").textContent = "";
  $("summary").textContent = "decoding...";
  const request = { history: history.map((h) => h.item_id), k: Number($("k").value) || 10 };
  if ($("pauses").value !== "") request.pauses = Number($("pauses").value);
  const t0 = performance.now();
  const resp = await fetch("/recommend", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
  });
  const body = await resp.json().catch(() => null);
  const tbody = document.querySelector("#recs tbody");
  tbody.replaceChildren();
  if (!resp.ok) { $("summary").textContent = ""; $("error").textContent = errorText(body, resp.status); return; }
  const roundTrip = performance.now() - t0;
  const summary = $("summary");
  summary.replaceChildren(
    el("span", `latency ${body.latency_ms.toFixed(0)} ms (round trip ${roundTrip.toFixed(0)} ms), `, { id: "latency" }),
    el("span", `pauses used: ${body.pauses}`, { id: "pauses-used" }),
    el("span", `, batch of ${body.batch_size}` + (body.truncated ? `, ${body.truncated} oldest items dropped` : "")),
  );
  if (body.cold_start) summary.append(" ", el("span", "cold start: most popular items", { id: "flag" }));
  for (const item of body.items) {
    const tr = el("tr", undefined, { "data-item-id": item.item_id });
    tr.append(el("td", String(item.rank)), el("td", item.title), el("td", item.score.toFixed(3), { class: "num" }));
    const add = el("button", "add", { "aria-label": "add " + item.title });
    add.addEventListener("click", () => addToHistory(item));
    const cell = el("td");
    cell.append(add);
    tr.append(cell);
    tbody.append(tr);
  }
}

async function describe() {
  const resp = await fetch("/health");
  if (!resp.ok) return;
  const m = (await resp.json()).model;
  $("model").textContent = `run ${m.run} · arm ${m.arm} · ${m.items} items · beam ${m.beams} · ${m.dtype} · ` +
    `default pauses ${m.default_pauses} · the ${m.max_history} most recent history items are read`;
  $("k").max = m.beams;
  if (Number($("k").value) > m.beams) $("k").value = m.beams;
}

let timer = null;
$("search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(search, 150); });
$("recommend").addEventListener("click", recommend);
$("clear").addEventListener("click", () => { history.length = 0; renderHistory(); });
renderHistory();
describe();
search();
