// One request's story drawn hop by hop: used by the page and by `knet trace --html`.
"use strict";

function knetDrawStory(box, flows, title) {
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };
  box.replaceChildren(el("h2", { text: title }));
  for (const fl of flows) {
    if (fl.service) box.append(el("p", { class: "service", text: "Service " + fl.service + " — " + fl.verdict }));
    // the packets that decided something first; the rest (plain ACKs, data) behind a toggle
    const decisive = (p, i) => i < 2 || p.verdict !== "forwarded" || p.hops.some((h) => h.nat || h.verdict !== "ACCEPT");
    let more = null;
    fl.packets.forEach((p, i) => {
      const target = decisive(p, i) ? box : (more = more || el("details", { class: "more" }, el("summary", { text: "more packets of this flow" })));
      const div = el("div", { class: "packet" + (p.reply ? " reply" : "") }, el("h3", { text: p.header }));
      const hops = el("div", { class: "hops" });
      p.hops.forEach((h, i) => {
        if (i) hops.append(el("span", { class: "arrow", text: "→" }));
        const hop = el("div", { class: "hop" }, el("div", { class: "node", text: h.node + " (from " + h.from + ")" }));
        for (const line of h.lines) hop.append(el("div", { class: "rule", text: line }));
        if (h.nat) hop.append(el("div", { class: "nat", text: "NAT: " + h.nat }));
        hop.append(el("div", { class: "verdict verdict-" + h.verdict.toLowerCase(), text: h.verdict }));
        hops.append(hop);
      });
      hops.append(el("span", { class: "arrow", text: "→" }));
      hops.append(el("span", { class: "end verdict-" + p.verdict,
                               text: p.delivered_to ? "delivered to " + p.delivered_to : p.verdict + (p.reason ? ": " + p.reason : "") }));
      div.append(hops);
      target.append(div);
    });
    if (more) box.append(more);
  }
}
