// knet's page: service map, live flows, request stories, rules, events and logs.
// Everything comes from this server's JSON API (/api/...); nothing is fetched elsewhere.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};
const api = async (path, opts) => {
  const r = await fetch(path, opts);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
};
const fmtTime = (t) => new Date(t * 1000).toISOString().substring(11, 23);

const state = { cluster: null, cy: null, rows: 0, maxRows: 500, sigs: new Map() };

// -- views ------------------------------------------------------------------------------------
function show(view) {
  document.querySelectorAll("nav button").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
  document.querySelectorAll(".view").forEach((v) => v.classList.toggle("active", v.id === "view-" + view));
  if (view === "map" && state.cy) state.cy.resize();
  if (view === "rules") loadRules();
  if (view === "events") loadEvents();
}
document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));

// -- service map --------------------------------------------------------------------------------
function mapElements(m) {
  const els = [];
  const podsByNode = new Map();
  for (const p of m.pods) {
    if (!podsByNode.has(p.node)) podsByNode.set(p.node, []);
    podsByNode.get(p.node).push(p);
  }
  const perRow = 3, cell = 190;
  let x0 = 0;
  for (const n of m.nodes) {
    els.push({ data: { id: n.id, label: n.name, kind: "Node", ready: n.ready } });
    const pods = podsByNode.get(n.name) || [];
    pods.forEach((p, i) => {
      els.push({
        data: { id: p.id, parent: n.id, label: p.namespace === "default" ? p.name : p.namespace + "/" + p.name, kind: "Pod", phase: p.phase,
                ready: p.ready, info: p },
        position: { x: x0 + (i % perRow) * cell, y: 260 + Math.floor(i / perRow) * 70 },
      });
    });
    x0 += Math.max(1, Math.min(perRow, pods.length)) * cell + 60;
  }
  const width = Math.max(x0, 400);
  m.services.forEach((s, i) => {
    els.push({ data: { id: s.id, label: s.namespace + "/" + s.name, kind: "Service", info: s },
               position: { x: (i + 0.5) * width / Math.max(1, m.services.length), y: 80 } });
  });
  m.routes.forEach((r, i) => {
    els.push({ data: { id: r.id, label: r.kind + " " + r.namespace + "/" + r.name, kind: r.kind, info: r },
               position: { x: (i + 0.5) * width / Math.max(1, m.routes.length), y: -40 } });
  });
  const ids = new Set(els.map((e) => e.data.id));
  for (const e of m.edges) {
    for (const end of [e.source, e.target]) {
      if (!ids.has(end)) {  // an address outside the cluster's pods
        ids.add(end);
        els.push({ data: { id: end, label: end.replace(/^ip:/, ""), kind: "External" }, position: { x: -150, y: 80 } });
      }
    }
    els.push({ data: { id: e.kind + ":" + e.source + ">" + e.target, source: e.source, target: e.target,
                       kind: e.kind, count: e.count || 0, label: e.count ? String(e.count) : "" } });
  }
  return els;
}

const mapStyle = [
  { selector: "node", style: { label: "data(label)", "font-size": 10, "text-valign": "bottom", "text-margin-y": 3, "text-wrap": "ellipsis", "text-max-width": 175 } },
  { selector: 'node[kind = "Node"]', style: { shape: "round-rectangle", "background-color": "#eef2fa", "border-color": "#9aaccc", "border-width": 1, "text-valign": "top", "font-size": 12, "font-weight": "bold" } },
  { selector: 'node[kind = "Pod"]', style: { width: 22, height: 22, "background-color": "#bbb" } },
  { selector: 'node[kind = "Pod"][?ready]', style: { "background-color": "#3aa55d" } },
  { selector: 'node[kind = "Pod"][phase = "Pending"]', style: { "background-color": "#e0a526" } },
  { selector: 'node[kind = "Pod"][phase = "Failed"]', style: { "background-color": "#c0262d" } },
  { selector: 'node[kind = "Service"]', style: { shape: "diamond", width: 28, height: 28, "background-color": "#4a7bd0" } },
  { selector: 'node[kind = "Ingress"], node[kind = "Gateway"], node[kind = "HTTPRoute"], node[kind = "GRPCRoute"]', style: { shape: "hexagon", width: 28, height: 28, "background-color": "#8a4fd0" } },
  { selector: 'edge[kind = "isolates"]', style: { "line-style": "dotted", "line-color": "#d05f4a", "target-arrow-color": "#d05f4a" } },
  { selector: 'node[kind = "NetworkPolicy"], node[kind = "ClusterNetworkPolicy"]', style: { shape: "tag", width: 24, height: 24, "background-color": "#d05f4a" } },
  { selector: 'node[kind = "External"]', style: { shape: "ellipse", "background-color": "#777" } },
  { selector: "edge", style: { width: 1, "line-color": "#c7ccd6", "curve-style": "bezier", "target-arrow-shape": "triangle", "target-arrow-color": "#c7ccd6", "arrow-scale": 0.6 } },
  { selector: 'edge[kind = "traffic"]', style: { width: "mapData(count, 1, 200, 1.5, 8)", "line-color": "#f08c2e", "target-arrow-color": "#f08c2e", label: "data(label)", "font-size": 9, color: "#b05a00" } },
  { selector: 'edge[kind = "routes"]', style: { "line-style": "dashed", "line-color": "#8a4fd0", "target-arrow-color": "#8a4fd0" } },
  { selector: ":selected", style: { "border-width": 3, "border-color": "#222" } },
];

async function loadMap() {
  const m = await api("/api/map");
  const t0 = performance.now();
  if (!state.cy) {
    const els = mapElements(m);
    for (const e of els) state.sigs.set(e.data.id, JSON.stringify(e.data));
    state.cy = cytoscape({ container: $("#map"), elements: els, style: mapStyle,
                           layout: { name: "preset" }, textureOnViewport: true,
                           hideEdgesOnViewport: m.pods.length > 300 });
    state.cy.fit(undefined, 30);
    state.cy.on("tap", "node", (ev) => detail(ev.target.data()));
  } else {
    // update in place: readiness and traffic counts change, the rest rarely does; only
    // elements whose data changed are touched (a restyle of 2,000 elements costs frames)
    const cy = state.cy;
    const fresh = mapElements(m);
    cy.batch(() => {
      const want = new Set(fresh.map((e) => e.data.id));
      cy.elements().forEach((e) => { if (!want.has(e.id())) { cy.remove(e); state.sigs.delete(e.id()); } });
      for (const e of fresh) {
        const sig = JSON.stringify(e.data);
        if (state.sigs.get(e.data.id) === sig) continue;
        state.sigs.set(e.data.id, sig);
        const have = cy.getElementById(e.data.id);
        if (have.empty()) cy.add(e); else have.data(e.data);
      }
    });
  }
  window.knetRender = { ms: performance.now() - t0, elements: state.cy.elements().length };
  document.body.dataset.mapReady = "1";
}

function detail(d) {
  const box = $("#map-detail");
  box.replaceChildren(el("h2", { text: d.label }), el("p", { text: d.kind }));
  if (d.info) box.append(el("pre", { text: JSON.stringify(d.info, null, 2) }));
  if (d.kind === "Pod" && state.cluster && state.cluster.live) {
    const btn = el("button", { text: "Logs" });
    btn.addEventListener("click", () => { $("#logs-pod").value = d.info.namespace + "/" + d.info.name; show("events"); loadLogs(); });
    box.append(btn);
  }
}

// -- flows --------------------------------------------------------------------------------------
function l7Text(f) {
  const l = f.l7;
  if (!l) return "";
  if (l.type === "http") return `${l.method} ${l.host}${l.path}` + (l.status ? ` → ${l.status}` : "");
  if (l.type === "dns") return `DNS ${l.qtype || ""} ${l.query || ""}` + (l.rcode ? ` → ${l.rcode}` : "");
  return l.type;
}

function flowRow(f) {
  const tr = el("tr", { "data-flow": String(f.id) },
    el("td", { text: String(f.id) }), el("td", { text: fmtTime(f.time) }),
    el("td", { text: (f.source.name || f.source.ip) + ":" + f.source.port }),
    el("td", { text: (f.destination.name || f.destination.ip) + ":" + f.destination.port }),
    el("td", { text: f.service }), el("td", { text: f.protocol }), el("td", { text: l7Text(f) }),
    el("td", { class: "verdict-" + f.verdict, text: f.verdict + (f.drop_reason ? " (" + f.drop_reason + ")" : "") }));
  tr.addEventListener("click", () => openFlow(f.id));
  return tr;
}

function filters() {
  const p = new URLSearchParams();
  for (const [k, v] of new FormData($("#flow-filter"))) if (v) p.set(k, v);
  return p;
}

let source = null;
async function startFlows() {
  const body = $("#flows tbody");
  body.replaceChildren();
  state.rows = 0;
  const p = filters();
  const { flows, live } = await api("/api/flows?" + p);
  const frag = document.createDocumentFragment();
  for (const f of flows.slice(-state.maxRows).reverse()) frag.append(flowRow(f));
  body.append(frag);
  state.rows = body.children.length;
  if (source) source.close();
  if (!live) { $("#status").textContent = "static view: start the cluster with knet up --ui for live flows"; return; }
  source = new EventSource("/api/flows/stream?" + p);
  let pending = [];
  source.onmessage = (ev) => {
    pending.push(JSON.parse(ev.data));
    if (pending.length === 1) requestAnimationFrame(() => {
      const frag = document.createDocumentFragment();
      for (const f of pending.reverse()) frag.append(flowRow(f));
      body.prepend(frag);
      pending = [];
      while (body.children.length > state.maxRows) body.lastChild.remove();
      state.rows = body.children.length;
    });
  };
}
$("#flow-filter").addEventListener("input", () => startFlows());
$("#flow-filter").addEventListener("submit", (e) => { e.preventDefault(); startFlows(); });

// -- stories ------------------------------------------------------------------------------------
const drawStory = (flows, title) => knetDrawStory($("#story"), flows, title);

async function openFlow(id) {
  show("story");
  try {
    const st = await api("/api/flows/" + id);
    drawStory([st], "Flow " + id + ": " + st.summary.summary + (st.summary.l7 ? "  " + l7Text(st.summary) : ""));
  } catch (e) { $("#story").replaceChildren(el("p", { class: "hint", text: e.message })); }
}

$("#request-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const body = { from: f.get("from") };
  body[f.get("kind")] = f.get("target");
  $("#story").replaceChildren(el("p", { class: "hint", text: "sending…" }));
  try {
    const r = await api("/api/request", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const answer = r.http ? "HTTP " + r.http.status : r.dns ? "addresses " + r.dns.addresses.join(", ") : r.error;
    drawStory(r.flows, `${body.from} → ${body.url || body.dns}: ${answer}`);
    if (r.l7 && r.l7.length) {  // the ingress/Gateway decision, before the packets
      const box = el("div", { class: "packet l7" }, el("h3", { text: "L7 decision" }));
      for (const line of r.l7) box.append(el("div", { class: "rule", text: line }));
      $("#story h2").after(box);
    }
  } catch (err) { $("#story").replaceChildren(el("p", { class: "hint", text: err.message })); }
});

// -- rules, events, logs ------------------------------------------------------------------------
async function loadRules() {
  const f = new FormData($("#rules-form"));
  const p = new URLSearchParams({ node: f.get("node") || "", q: f.get("q") || "" });
  const r = await api("/api/rules?" + p);
  const frag = document.createDocumentFragment();
  for (const line of r.lines) {
    if (f.get("hit") && !line.hits) continue;
    frag.append(el("tr", {}, el("td", { class: "hits", text: line.hits ? String(line.hits) : "" }), el("td", { class: "rule", text: line.text })));
  }
  $("#rules tbody").replaceChildren(frag);
}
$("#rules-form").addEventListener("input", loadRules);

async function loadEvents() {
  const { events, changes } = await api("/api/events");
  const frag = document.createDocumentFragment();
  for (const e of events.slice(-500).reverse())
    frag.append(el("tr", {}, el("td", { text: e.time }), el("td", { class: e.type === "Warning" ? "verdict-DROPPED" : "", text: e.type }),
                   el("td", { text: e.reason }), el("td", { text: (e.namespace ? e.namespace + "/" : "") + e.object }),
                   el("td", { text: e.message + (e.count > 1 ? ` (x${e.count})` : "") })));
  $("#events tbody").replaceChildren(frag);
  const ch = document.createDocumentFragment();
  for (const e of changes.slice(-500).reverse())
    ch.append(el("tr", {}, el("td", { text: fmtTime(e.time) }), el("td", { text: e.type }), el("td", { text: e.kind }), el("td", { text: e.object }), el("td", { text: e.message || "" })));
  $("#changes tbody").replaceChildren(ch);
}
async function loadLogs() {
  try {
    const r = await api("/api/logs?pod=" + encodeURIComponent($("#logs-pod").value));
    $("#logs").textContent = r.lines.join("\n");
  } catch (e) { $("#logs").textContent = e.message; }
}
$("#logs-form").addEventListener("input", loadLogs);

// -- start ----------------------------------------------------------------------------------------
(async () => {
  const c = await api("/api/cluster");
  state.cluster = c;
  $("#cluster-name").textContent = `${c.name} · ${c.mode} · ${c.nodes.length} nodes · ${c.pods.length} pods` + (c.live ? "" : " · static");
  for (const [sel, items] of [["#request-from", c.pods], ["#logs-pod", c.pods], ["#rules-node", c.nodes]])
    $(sel).replaceChildren(...items.map((x) => el("option", { text: x })));
  const client = c.pods.find((p) => p.endsWith("/client"));
  if (client) $("#request-from").value = client;
  await loadMap();
  await startFlows();
  if (c.live) setInterval(() => { if ($("#view-map").classList.contains("active")) loadMap(); }, 2000);
})();
