// Trellis dashboard: draws the service graph from /dashboard/api/graph and
// redraws it when the server says new numbers are there. No dependencies.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var W = 170, H = 44; // node box
  var svg = document.getElementById("graph");
  var api = svg.getAttribute("data-api");
  var statusEl = document.getElementById("status");

  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function text(parent, x, y, s, cls) {
    var t = el("text", { x: x, y: y, "text-anchor": "middle" }, parent);
    if (cls) t.setAttribute("class", cls);
    t.textContent = s;
    return t;
  }
  function fmtRate(r) { return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2); }
  function fmtPct(f) { return (100 * f).toFixed(f > 0 && f < 0.1 ? 1 : 0) + "%"; }
  function fmtMs(ms) { return ms == null ? "–" : ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(ms < 10 ? 1 : 0) + " ms"; }
  function mtls(m) { return m === "mutual_tls" ? "mTLS" : m === "none" ? "plaintext" : m === "mixed" ? "mixed mTLS/plaintext" : "mTLS unknown"; }
  function health(e, measured) {
    if (!measured || e.rps <= 0) return "idle";
    return e.error_rate >= 0.05 ? "bad" : e.error_rate > 0 ? "warn" : "ok";
  }

  function draw(g) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    svg.setAttribute("viewBox", "0 0 " + g.width + " " + g.height);
    svg.setAttribute("width", g.width);
    svg.setAttribute("height", g.height);
    var defs = el("defs", {}, svg);
    ["ok", "warn", "bad", "idle"].forEach(function (c) {
      var m = el("marker", { id: "arrow-" + c, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
      el("path", { d: "M0,0 L10,5 L0,10 z", "class": "arrow-" + c, fill: { ok: "#2e9d5b", warn: "#d98a00", bad: "#d23c3c", idle: "#a5adba" }[c] }, m);
    });
    if (!g.nodes || g.nodes.length === 0) {
      text(svg, g.width / 2, g.height / 2, "No traffic seen yet: send some requests through the mesh.", "empty");
      return;
    }
    var pos = {};
    g.nodes.forEach(function (n) { pos[n.id] = n; });
    var pairs = {};
    var edges = el("g", { "class": "edges" }, svg);
    (g.edges || []).forEach(function (e) {
      var s = pos[e.source], t = pos[e.target];
      if (!s || !t) return;
      var key = e.source + ">" + e.target, k = pairs[key] = (pairs[key] || 0) + 1;
      var h = health(e, g.measured);
      var grp = el("g", {
        "class": "edge " + h + (e.mtls === "none" ? " plain" : ""),
        "data-source": e.source, "data-target": e.target, "data-service": e.service,
        "data-rps": e.rps, "data-error-rate": e.error_rate, "data-mtls": e.mtls
      }, edges);
      var x1 = s.x + W / 2, y1 = s.y, x2 = t.x - W / 2, y2 = t.y, d, lx, ly;
      if (x2 > x1) {
        var mx = (x1 + x2) / 2;
        d = "M" + x1 + "," + y1 + " C" + mx + "," + y1 + " " + mx + "," + y2 + " " + x2 + "," + y2;
        // Above the curve's midpoint; a second edge of the same pair below it.
        lx = mx; ly = (y1 + y2) / 2 - 20 + (k - 1) * 40;
      } else { // backwards or same column: loop below
        var dip = Math.max(y1, y2) + H + 20 * k;
        x1 = s.x; y1 = s.y + H / 2; x2 = t.x; y2 = t.y + H / 2;
        d = "M" + x1 + "," + y1 + " C" + x1 + "," + dip + " " + x2 + "," + dip + " " + x2 + "," + y2;
        lx = (x1 + x2) / 2; ly = dip - 10;
      }
      el("path", { d: d, "marker-end": "url(#arrow-" + h + ")" }, grp);
      var label = g.measured ? fmtRate(e.rps) + " rps · " + fmtPct(e.error_rate) + " errors" : "measuring…";
      text(grp, lx, ly, label);
      text(grp, lx, ly + 13, "p99 " + fmtMs(e.p99_ms) + " · " + mtls(e.mtls));
      var title = el("title", {}, grp);
      title.textContent = e.source + " → " + e.target + " (" + e.service + "), reported by " + e.reporter + ", " + e.total + " requests in total";
    });
    var nodes = el("g", { "class": "nodes" }, svg);
    g.nodes.forEach(function (n) {
      var grp = el("g", { "class": "node " + n.kind, "data-id": n.id }, nodes);
      el("rect", { x: n.x - W / 2, y: n.y - H / 2, width: W, height: H, rx: 8 }, grp);
      text(grp, n.x, n.y + (n.namespace ? -2 : 4), n.name);
      if (n.namespace) text(grp, n.x, n.y + 13, n.namespace, "ns");
    });
  }

  function cell(tr, s, cls) {
    var td = document.createElement("td");
    td.textContent = s;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  function tables(g) {
    var body = document.querySelector("#edges tbody");
    body.textContent = "";
    if (!g.edges || g.edges.length === 0) {
      var tr = document.createElement("tr");
      cell(tr, "No traffic seen yet.", "muted");
      tr.firstChild.colSpan = 9;
      body.appendChild(tr);
    }
    (g.edges || []).forEach(function (e) {
      var tr = document.createElement("tr");
      cell(tr, e.source); cell(tr, e.target); cell(tr, e.service);
      cell(tr, g.measured ? fmtRate(e.rps) : "…", "num");
      cell(tr, g.measured ? fmtPct(e.error_rate) : "…", "num " + (e.error_rate >= 0.05 ? "bad" : ""));
      cell(tr, fmtMs(e.p99_ms), "num");
      cell(tr, e.mtls); cell(tr, String(e.total), "num"); cell(tr, e.reporter);
      body.appendChild(tr);
    });
    var sb = document.querySelector("#scrapes tbody");
    sb.textContent = "";
    (g.scrapes || []).forEach(function (s) {
      var tr = document.createElement("tr");
      cell(tr, s.name); cell(tr, s.url || "–");
      cell(tr, s.error ? s.error : "ok", s.error ? "bad" : "ok");
      sb.appendChild(tr);
    });
  }

  function poll() {
    var next = 5000;
    fetch(api, { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error(r.status + " " + r.statusText);
      return r.json();
    }).then(function (g) {
      draw(g);
      tables(g);
      var failed = (g.scrapes || []).filter(function (s) { return s.error; }).length;
      statusEl.textContent = "Updated " + new Date(g.generated).toLocaleTimeString() +
        (g.measured ? "" : " · measuring rates…") + (failed ? " · " + failed + " scrape(s) failed" : "");
      statusEl.className = failed ? "bad" : "muted";
      svg.setAttribute("data-updated", g.generated);
      next = g.next_poll_ms || next;
    }).catch(function (err) {
      statusEl.textContent = "Cannot load the graph: " + err.message;
      statusEl.className = "bad";
    }).then(function () { setTimeout(poll, next); });
  }
  poll();
})();
