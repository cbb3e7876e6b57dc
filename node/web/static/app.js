// The dashboard: reads the node's public API and draws it; operators can
// import, plan and publish with a token kept in sessionStorage. Every
// user-visible string comes from the language's file in static/i18n
// (loaded by strings.js) through t(); numbers and dates through Intl.
"use strict";
(function () {
  const I18N = window.RT_I18N;
  const C = window.RTCharts;
  const TOKEN_KEY = "roundtable.token";
  const RELEASE_CONTEXT = "roundtable release v1\n"; // i18n-ignore: signed protocol bytes
  const LEDGER_ROWS = 24;
  const state = { catalog: null, partners: [], token: sessionStorage.getItem(TOKEN_KEY) || "", ed25519: null };

  function t(id, vars) {
    let s = window.RT_STRINGS[id];
    if (s === undefined) {
      console.warn("i18n:", id);
      return id;
    }
    if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
    return s;
  }

  function applyI18n(root) {
    root.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
    root.querySelectorAll("[data-i18n-attr]").forEach((e) => {
      for (const pair of e.dataset.i18nAttr.split(",")) {
        const [attr, id] = pair.split(":");
        e.setAttribute(attr, t(id));
      }
    });
  }

  // label translates a catalog name or code (an indicator, a dimension,
  // a key or a partner) by its family's message id, falling back to what
  // the catalog says for one the translations do not know yet.
  function label(family, code, fallback) {
    const s = window.RT_STRINGS[family + "." + code];
    return s === undefined ? (fallback === undefined ? code : fallback) : s;
  }
  const indTitle = (ind) => label("indicator", ind.name, ind.title);
  const keyLabel = (k) => label("key", k);
  const dimLabel = (d) => label("dim", d);

  const $ = (id) => document.getElementById(id);
  const num = (v) => I18N.num(Math.round(v));

  function make(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  async function api(path, init) {
    init = init || {};
    const headers = new Headers(init.headers || {});
    if (state.token) headers.set("Authorization", "Bearer " + state.token);
    const resp = await fetch(path, Object.assign({}, init, { headers: headers }));
    const body = await resp.json().catch(() => null);
    if (!resp.ok) {
      const err = new Error(body && body.detail ? body.detail : resp.status + " " + resp.statusText);
      err.status = resp.status;
      err.body = body;
      throw err;
    }
    return body;
  }

  function showError(where, what, err) {
    where.replaceChildren(make("p", t("error.load", { what: what, msg: err.message }), "error"));
  }

  // ---- status -------------------------------------------------------
  async function loadHealth() {
    const st = $("status");
    try {
      // 503 still carries the health document, so read it either way.
      const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
      const resp = await fetch("/v1/health", { headers: headers });
      const h = await resp.json();
      if (resp.status === 401) throw new Error(h.detail);
      st.textContent = t("status.node", { partner: h.partner ? keyLabel(h.partner) : t("status.replica"), state: label("raft", h.raft_state), index: h.applied_index })
        + " · " + t("status.updated", { time: I18N.time(new Date()) });
      st.classList.toggle("offline", !h.in_cluster);
      if (!h.in_cluster) st.textContent += " " + t("status.offline");
    } catch (err) {
      st.textContent = t("error.generic", { msg: err.message });
    }
  }

  // ---- trends and countries ------------------------------------------
  function countIndicators() {
    return state.catalog.indicators.filter((i) => i.kind === "count");
  }

  function fillSelectors() {
    const sel = $("indicator");
    sel.replaceChildren();
    for (const ind of countIndicators()) {
      const o = make("option", indTitle(ind));
      o.value = ind.name;
      sel.appendChild(o);
    }
    fillBy();
    const checks = $("plan-indicators");
    checks.replaceChildren();
    for (const ind of state.catalog.indicators) {
      const l = make("label");
      const cb = make("input");
      cb.type = "checkbox";
      cb.value = ind.name;
      l.append(cb, make("span", indTitle(ind)));
      checks.appendChild(l);
    }
  }

  function fillBy() {
    const ind = state.catalog.indicators.find((i) => i.name === $("indicator").value);
    const by = $("by");
    by.replaceChildren();
    const none = make("option", t("controls.none"));
    none.value = "";
    by.appendChild(none);
    for (const d of (ind && ind.dimensions) || []) {
      const o = make("option", dimLabel(d.name));
      o.value = d.name;
      by.appendChild(o);
    }
  }

  function seriesURL(params) {
    const q = new URLSearchParams();
    for (const k in params) if (params[k]) q.set(k, params[k]);
    q.set("ids", "false"); // the charts use release_count; ids are thousands a point on a long ledger
    return "/v1/series?" + q.toString();
  }

  // toPoints turns API points into chart points. A point whose interval is
  // wider than its value (too_uncertain) or that the published numbers do
  // not determine (estimate null) is marked uncertain: charts show it as
  // such instead of drawing it as a trend point.
  function toPoints(pts) {
    return pts.map((p) => ({
      x: p.period, period: p.period,
      v: p.estimate ? p.estimate.value : null, lo: p.estimate ? p.estimate.ci_low : null, hi: p.estimate ? p.estimate.ci_high : null,
      raw: p.raw ? p.raw.value : null, small: p.small, uncertain: p.too_uncertain || !p.estimate,
      change: p.change || null, releases: p.release_count,
    }));
  }

  function tipFor(label) {
    return (p) => {
      if (p.v === null) return t("chart.point.undetermined", { label: label, period: p.period });
      const s = t("chart.point", { label: label, period: p.period, value: num(p.v), lo: num(p.lo), hi: num(p.hi) });
      return p.uncertain ? s + " · " + t("chart.uncertain") : p.small ? s + " · " + t("chart.small") : s;
    };
  }

  // changeText reads a point's change from the period before, or says
  // why there is none to read.
  function changeText(p) {
    if (!p) return "";
    if (!p.change) return p.uncertain ? t("chart.uncertain.long", { period: p.period }) : "";
    const c = p.change;
    const reading = t(c.reading === "increase" ? "trends.change.increase" : c.reading === "decrease" ? "trends.change.decrease" : "trends.change.none");
    const s = t("trends.change.line", { from: c.from, period: p.period, value: (c.value > 0 ? "+" : "") + num(c.value), lo: num(c.ci_low), hi: num(c.ci_high), reading: reading });
    return p.uncertain ? s + " " + t("chart.uncertain.long", { period: p.period }) : s;
  }

  // showChange writes the change line of the latest point into el.
  function showChange(el, points) {
    const p = points.length ? points[points.length - 1] : null;
    el.textContent = changeText(p);
    el.dataset.reading = p && p.change ? p.change.reading : "";
    el.dataset.uncertain = p && p.uncertain ? "true" : "false";
  }

  // timeParams maps the time-step control to series parameters.
  function timeParams(region) {
    const step = $("granularity").value;
    const parts = [];
    if (step !== "quarter") parts.push("year");
    if (region) parts.push("region");
    return { rollup: parts.join(","), pool: step === "pool3" ? "3" : "" };
  }

  function legend(el, items) {
    el.replaceChildren();
    for (const [cls, id] of items) el.appendChild(make("span", t(id), cls));
  }

  async function renderTrends() {
    const indicator = $("indicator").value;
    const by = $("by").value;
    const ind = state.catalog.indicators.find((i) => i.name === indicator);
    const chart = $("trend-chart");
    try {
      const data = await api(seriesURL(Object.assign({ indicator: indicator, by: by }, timeParams(true))));
      const pts = data.series[0].points;
      legend($("trend-legend"), [["l-est", "chart.estimate"], ["l-band", "chart.interval"], ["l-raw", "chart.raw"], ["l-uncertain", "chart.uncertain"]]);
      if (!by) {
        const points = toPoints(pts);
        C.lineChart(chart, points, {
          ariaLabel: t("chart.aria.trend", { indicator: indTitle(ind) }), tip: tipFor(indTitle(ind)), showRaw: true, empty: t("chart.empty"),
        });
        headline(points);
        showChange($("trend-change"), points);
      } else {
        chart.replaceChildren();
        const grid = make("div", undefined, "multiples");
        chart.appendChild(grid);
        const keys = [...new Set(pts.map((p) => p.key[0]))];
        const top = C.niceMax(Math.max(1, ...toPoints(pts).filter((p) => !p.uncertain).map((p) => p.hi)));
        for (const k of keys) {
          const fig = make("figure");
          fig.appendChild(make("figcaption", keyLabel(k)));
          const box = make("div", undefined, "chart");
          fig.appendChild(box);
          const points = toPoints(pts.filter((p) => p.key[0] === k));
          const change = make("p", undefined, "change");
          change.dataset.testid = "change";
          fig.appendChild(change);
          grid.appendChild(fig);
          C.lineChart(box, points, {
            ariaLabel: t("chart.aria.trend", { indicator: indTitle(ind) + " · " + keyLabel(k) }), tip: tipFor(keyLabel(k)), yMax: top,
            height: 200, showRaw: true, empty: t("chart.empty"),
          });
          showChange(change, points);
        }
        headline(toPoints(aggregateKeys(pts)));
        showChange($("trend-change"), []);
      }
    } catch (err) {
      showError(chart, ind ? indTitle(ind) : indicator, err);
    }
    await renderCountries(indicator);
    // A counter the browser tests wait on after a resize.
    document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
  }

  // aggregateKeys sums a by-series back to totals for the headline; a
  // period with an undetermined part has no total.
  function aggregateKeys(pts) {
    const by = new Map();
    for (const p of pts) {
      const a = by.get(p.period) || { period: p.period, estimate: { value: 0, ci_low: 0, ci_high: 0 }, raw: null, release_count: p.release_count };
      if (!p.estimate || !a.estimate) {
        a.estimate = null;
      } else {
        a.estimate.value += p.estimate.value;
        a.estimate.ci_low += p.estimate.ci_low;
        a.estimate.ci_high += p.estimate.ci_high;
      }
      a.too_uncertain = !a.estimate || (a.estimate.ci_high - a.estimate.ci_low) / 2 > a.estimate.value;
      by.set(p.period, a);
    }
    return [...by.values()];
  }

  function headline(points) {
    const h = $("headline");
    if (!points.length) {
      h.textContent = t("chart.empty");
      return;
    }
    const p = points[points.length - 1];
    if (p.v === null) {
      h.textContent = t("trends.latest.undetermined", { period: p.period });
      h.dataset.value = "";
    } else {
      h.textContent = t(p.uncertain ? "trends.latest.uncertain" : "trends.latest", { period: p.period, value: num(p.v), lo: num(p.lo), hi: num(p.hi) });
      h.dataset.value = String(p.v);
    }
    if (p.releases !== undefined && p.releases < state.partners.length) h.textContent += " " + t("trends.incomplete");
  }

  async function renderCountries(indicator) {
    const box = $("country-charts");
    const ind = state.catalog.indicators.find((i) => i.name === indicator);
    try {
      const data = await api(seriesURL(Object.assign({ indicator: indicator }, timeParams(false))));
      const pts = data.series[0].points;
      const top = C.niceMax(Math.max(1, ...toPoints(pts).filter((p) => !p.uncertain).map((p) => p.hi)));
      box.replaceChildren();
      for (const partner of state.partners) {
        const fig = make("figure");
        fig.appendChild(make("figcaption", keyLabel(partner)));
        const c = make("div", undefined, "chart");
        fig.appendChild(c);
        const change = make("p", undefined, "change");
        change.dataset.testid = "change";
        change.dataset.partner = partner;
        fig.appendChild(change);
        box.appendChild(fig);
        const points = toPoints(pts.filter((p) => p.partner === partner));
        C.lineChart(c, points, {
          ariaLabel: t("chart.aria.trend", { indicator: indTitle(ind) + " · " + keyLabel(partner) }), tip: tipFor(keyLabel(partner)),
          yMax: top, height: 200, empty: t("chart.empty"),
        });
        showChange(change, points);
      }
    } catch (err) {
      showError(box, ind ? indTitle(ind) : indicator, err);
    }
  }

  // ---- corridors -----------------------------------------------------
  async function fillCorridorYears() {
    const data = await api(seriesURL({ indicator: "corridors", rollup: "year,region" }));
    const years = data.series[0].points.map((p) => p.period).reverse();
    for (const sel of [$("corridor-year"), $("brief-year")]) {
      sel.replaceChildren();
      for (const y of years) {
        const o = make("option", y);
        o.value = y;
        sel.appendChild(o);
      }
    }
    $("brief-download").disabled = years.length === 0;
  }

  async function renderCorridors() {
    const box = $("corridor-chart");
    const ind = state.catalog.indicators.find((i) => i.name === "corridors");
    if (!ind) return;
    const year = $("corridor-year").value;
    if (!year) {
      box.replaceChildren(make("p", t("chart.empty")));
      return;
    }
    const [rowDim, colDim] = ind.dimensions;
    try {
      const data = await api(seriesURL({ indicator: "corridors", by: rowDim.name + "," + colDim.name, rollup: "year,region", from: year, to: year }));
      const cells = new Map();
      for (const p of data.series[0].points) if (p.estimate) cells.set(p.key[0] + "\u0000" + p.key[1], p.estimate);
      $("corridor-axes").textContent = t("corridors.rows") + " ↓  ·  " + t("corridors.cols") + " →";
      C.heatmap(box, rowDim.keys.map(keyLabel), colDim.keys.map(keyLabel), (i, j) => {
        const e = cells.get(rowDim.keys[i] + "\u0000" + colDim.keys[j]);
        return e ? { v: e.value, lo: e.ci_low, hi: e.ci_high } : null;
      }, {
        ariaLabel: t("chart.aria.heat", { indicator: indTitle(ind) + " " + year }),
        tip: (i, j, v) => t("corridors.cell", { row: keyLabel(rowDim.keys[i]), col: keyLabel(colDim.keys[j]), value: v ? num(v.v) : "–", lo: v ? num(v.lo) : "–", hi: v ? num(v.hi) : "–" }),
      });
    } catch (err) {
      showError(box, indTitle(ind), err);
    }
  }

  // ---- budget ----------------------------------------------------------
  async function renderBudget() {
    const box = $("budget-charts");
    try {
      const b = await api("/v1/budget");
      $("budget-help").textContent = t("budget.help", { accounting: b.accounting === "zcdp" ? "ρ" : "ε", cap: I18N.num(b.cap, 2) });
      legend($("budget-legend"), [["l-spent", "budget.spent"], ["l-left", "budget.left"]]);
      box.replaceChildren();
      for (const p of b.partners) {
        const fig = make("figure");
        fig.appendChild(make("figcaption", keyLabel(p.partner)));
        const c = make("div", undefined, "chart");
        fig.appendChild(c);
        box.appendChild(fig);
        C.budgetBars(c, p.quarters.slice(-8), b.cap, {
          ariaLabel: t("chart.aria.budget", { partner: keyLabel(p.partner) }),
          tip: (q) => t("budget.bar", { partner: keyLabel(p.partner), quarter: q.quarter, spent: I18N.num(q.spent, 2), left: I18N.num(q.left, 2) }),
        });
      }
    } catch (err) {
      showError(box, t("budget.title"), err);
    }
  }

  // ---- ledger ----------------------------------------------------------
  function b64(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function hex(buf) {
    return [...new Uint8Array(buf)].map((x) => x.toString(16).padStart(2, "0")).join("");
  }

  // canEd25519 probes WebCrypto once. It needs a secure context (https or
  // loopback) and a browser with Ed25519; otherwise the server's check is
  // shown, and the page says so.
  async function canEd25519() {
    if (state.ed25519 !== null) return state.ed25519;
    try {
      await crypto.subtle.importKey("raw", new Uint8Array(32), { name: "Ed25519" }, false, ["verify"]);
      state.ed25519 = true;
    } catch (err) {
      state.ed25519 = false;
    }
    return state.ed25519;
  }

  // verifyRelease checks the id (SHA-256 of the canonical release) and
  // the signature over the context string and the canonical bytes. The
  // server encodes the release in Go struct order with ES6 number
  // formatting, which JSON.stringify reproduces.
  async function verifyRelease(entry) {
    const canonical = new TextEncoder().encode(JSON.stringify(entry.signed.release));
    const id = hex(await crypto.subtle.digest("SHA-256", canonical));
    if (id !== entry.signed.id) return false;
    const key = await crypto.subtle.importKey("raw", b64(entry.public_key), { name: "Ed25519" }, false, ["verify"]);
    const msg = new Uint8Array(RELEASE_CONTEXT.length + canonical.length);
    msg.set(new TextEncoder().encode(RELEASE_CONTEXT));
    msg.set(canonical, RELEASE_CONTEXT.length);
    return crypto.subtle.verify({ name: "Ed25519" }, key, b64(entry.signed.signature), msg);
  }

  // The ledger list pages (GET /v1/releases?after=LEAF&limit=N): leaves
  // run 0..total-1, so the newest LEDGER_ROWS are one page from
  // total-LEDGER_ROWS, and "load older" fetches the page before the oldest
  // shown. Each page's rows are checked in the browser as they arrive.
  function ledgerPath(from, to) {
    const q = new URLSearchParams({ limit: String(to - from) });
    if (from > 0) q.set("after", String(from - 1));
    return "/v1/releases?" + q.toString();
  }

  async function showLedgerRows(tbody, entries, local) {
    for (const e of entries) {
      const r = e.signed.release;
      const tr = make("tr");
      tr.append(make("td", r.partner), make("td", r.period), make("td", e.signed.id.slice(0, 16) + "…", "mono"),
        make("td", String(e.leaf)), make("td", r.indicators.map((i) => i.name).join(", ")));
      // Codes, ids and indicator names are identifiers, not prose.
      for (const td of tr.children) td.setAttribute("translate", "no");
      const sig = make("td", t("ledger.sig.pending"));
      sig.dataset.testid = "sig";
      tr.appendChild(sig);
      tbody.appendChild(tr);
      if (local) {
        verifyRelease(e).then((ok) => {
          sig.textContent = t(ok ? "ledger.sig.ok.browser" : "ledger.sig.bad.browser");
          sig.className = ok ? "ok" : "bad";
        }, () => {
          sig.textContent = t(e.verified ? "ledger.sig.ok.server" : "ledger.sig.bad.server");
          sig.className = e.verified ? "ok" : "bad";
        });
      } else {
        sig.textContent = t(e.verified ? "ledger.sig.ok.server" : "ledger.sig.bad.server");
        sig.className = e.verified ? "ok" : "bad";
      }
    }
  }

  async function renderLedger() {
    const tbody = $("ledger-table").querySelector("tbody");
    let more = $("ledger-more");
    if (!more) {
      more = make("button", t("ledger.more"));
      more.id = "ledger-more";
      more.type = "button";
      $("ledger-table").parentElement.after(more);
    }
    more.hidden = true;
    try {
      const head = await api("/v1/releases?limit=1");
      const total = head.total;
      const local = await canEd25519();
      $("verify-mode").textContent = t(local ? "ledger.verify.browser" : "ledger.verify.server");
      tbody.replaceChildren();
      let oldest = total;
      let shown = 0;
      const loadOlder = async () => {
        const from = Math.max(0, oldest - LEDGER_ROWS);
        if (from >= oldest) return;
        more.disabled = true;
        const page = await api(ledgerPath(from, oldest));
        const rows = page.releases.filter((e) => e.leaf >= from && e.leaf < oldest).reverse();
        await showLedgerRows(tbody, rows, local);
        oldest = from;
        shown += rows.length;
        $("ledger-shown").textContent = t("ledger.shown", { shown: num(shown), total: num(total) });
        more.hidden = oldest === 0;
        more.disabled = false;
      };
      more.onclick = () => { loadOlder().catch((err) => showError($("ledger-shown"), t("ledger.title"), err)); };
      $("ledger-shown").textContent = t("ledger.shown", { shown: num(0), total: num(total) });
      await loadOlder();
    } catch (err) {
      showError($("ledger-shown"), t("ledger.title"), err);
    }
    try {
      const cp = await api("/v1/checkpoint");
      const dl = $("checkpoint");
      dl.replaceChildren();
      const add = (k, v, cls) => { dl.append(make("dt", t(k)), make("dd", v, cls)); };
      add("ledger.cp.size", String(cp.size));
      add("ledger.cp.root", cp.root, "mono");
      add("ledger.cp.signers", cp.signers.map(keyLabel).join(", "));
      dl.append(make("dt", ""), make("dd", t(cp.regional ? "ledger.cp.regional" : "ledger.cp.local"), cp.regional ? "ok" : "bad"));
      const pre = make("pre", cp.note);
      pre.setAttribute("translate", "no"); // the signed note itself
      dl.append(make("dt", ""), make("dd"));
      dl.lastChild.appendChild(pre);
    } catch (err) {
      showError($("checkpoint"), t("ledger.checkpoint"), err);
    }
  }

  // ---- operator --------------------------------------------------------
  async function whoami() {
    const who = $("whoami");
    const tools = $("operator-tools");
    tools.hidden = true;
    if (!state.token) {
      who.textContent = t("operator.norole");
      return;
    }
    try {
      const w = await api("/v1/whoami");
      who.textContent = t("operator.role", { role: label("role", w.role), name: w.name, partner: w.partner ? keyLabel(w.partner) : t("status.replica") });
      if (w.role === "operator") {
        tools.hidden = false;
        renderPublishing();
      }
      else who.textContent += " " + t("operator.notoperator", { role: label("role", w.role) });
    } catch (err) {
      who.textContent = err.status === 401 ? t("operator.badtoken") : t("error.generic", { msg: err.message });
    }
  }

  function table(headers, rows) {
    const tb = make("table");
    const tr = make("tr");
    for (const h of headers) {
      const th = make("th", t(h));
      th.scope = "col";
      tr.appendChild(th);
    }
    tb.appendChild(make("thead")).appendChild(tr);
    const body = tb.appendChild(make("tbody"));
    for (const r of rows) {
      const row = make("tr");
      for (const c of r) row.appendChild(make("td", String(c)));
      body.appendChild(row);
    }
    return tb;
  }

  async function doImport(ev) {
    ev.preventDefault();
    const out = $("import-result");
    const file = $("import-file").files[0];
    if (!file) {
      out.replaceChildren(make("p", t("import.nofile"), "error"));
      return;
    }
    // Where the records come from, and what the upload may do: the same
    // choices as import --source NAME [--replace] [--allow-foreign].
    const source = $("import-source").value.trim();
    const replace = $("import-replace").checked;
    if (replace && !source) {
      out.replaceChildren(make("p", t("import.replace.nosource"), "error"));
      return;
    }
    const q = new URLSearchParams();
    if (source) q.set("source", source);
    if (replace) q.set("replace", "true");
    if ($("import-foreign").checked) q.set("allow_foreign", "true");
    const fd = new FormData();
    fd.append("format", $("import-format").value);
    fd.append("file", file, file.name);
    try {
      const rep = await api("/v1/cases/import" + (q.size ? "?" + q : ""), { method: "POST", body: fd });
      const done = [make("p", t("import.ok", { stored: rep.stored, rows: rep.rows, file: file.name }), "ok")];
      if (replace) done.push(make("p", t("import.removed", { removed: rep.removed, source }), "note"));
      out.replaceChildren(...done);
    } catch (err) {
      const rep = err.body && err.body.report;
      if (err.status === 422 && rep && rep.foreign > 0 && rep.invalid === 0) {
        out.replaceChildren(make("p", t("import.foreign.refused", { file: file.name, foreign: rep.foreign, rows: rep.rows }), "error"));
      } else if (err.status === 422 && rep) {
        out.replaceChildren(make("p", t("import.invalid", { file: file.name, invalid: rep.invalid, rows: rep.rows }), "error"),
          table(["import.col.line", "import.col.field", "import.col.message"], rep.errors.map((e) => [e.line, e.field || "", e.message])));
      } else {
        out.replaceChildren(make("p", t("error.generic", { msg: err.message }), "error"));
      }
    }
  }

  function releaseRequest() {
    const inds = [...$("plan-indicators").querySelectorAll("input:checked")].map((c) => c.value);
    return { period: $("plan-period").value.trim(), indicators: inds, epsilon: $("plan-epsilon").value.trim() }; // the decimal text: the node reads it exactly
  }

  async function doPlan(ev) {
    ev.preventDefault();
    const out = $("plan-result");
    const req = releaseRequest();
    $("publish").disabled = true;
    $("publish-result").textContent = "";
    try {
      const plan = await api("/v1/plan", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(req) });
      out.replaceChildren(table(["plan.col.indicator", "plan.col.mechanism", "plan.col.budget", "plan.col.scale", "plan.col.halfwidth"],
        plan.rows.map((r) => [label("indicator", r.indicator), r.mechanism, I18N.num(r.budget, 4), I18N.num(r.scale, 2), r.half_width ? num(r.half_width) : "–"])),
        ...(plan.warnings || []).map((w) => make("p", w, "error")),
        make("p", t("publish.warning", { epsilon: req.epsilon, period: req.period }), "note"));
      $("publish").disabled = false;
    } catch (err) {
      out.replaceChildren(make("p", t("error.generic", { msg: err.message }), "error"));
    }
  }

  async function doPublish() {
    const out = $("publish-result");
    const req = releaseRequest();
    $("publish").disabled = true;
    try {
      const res = await api("/v1/releases", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(req) });
      if (res.step) { // 202: accepted, and the node finishes it by itself
        out.textContent = res.message;
        out.className = "note";
      } else {
        out.textContent = t("publish.ok", { id: res.id.slice(0, 16) + "…", leaf: res.leaf, period: res.period });
        out.className = "ok";
        out.dataset.releaseId = res.id;
      }
      refreshData();
      renderPublishing();
    } catch (err) {
      out.textContent = err.status === 409 ? t("publish.refused", { reason: err.message }) : t("error.generic", { msg: err.message });
      out.className = "error";
    }
  }

  // A release in flight (the node finishes it by itself, also after a
  // restart) and the latest finished ones, with how each ended.
  async function renderPublishing() {
    const out = $("publishing");
    try {
      const rep = await api("/v1/releases/pending");
      const items = rep.pending.map((p) => make("p", p.message, "note"));
      if (!rep.pending.length) items.push(make("p", t("publish.recent.none")));
      const list = make("ul");
      for (const ev of rep.recent.slice(0, 5)) {
        list.appendChild(make("li", t("publish.recent.event", { time: ev.time, period: ev.period, outcome: ev.outcome, how: ev.how,
          release: ev.release ? ev.release.slice(0, 16) + "…" : "–", spend: (ev.spend_micro / 1e6).toString() })));
      }
      out.replaceChildren(...items, list);
    } catch (err) {
      out.replaceChildren(make("p", t("error.generic", { msg: err.message }), "error"));
    }
  }

  // ---- brief and language -------------------------------------------
  // downloadBrief fetches GET /v1/brief with the token (a plain link
  // would not carry it) and saves the HTML file.
  async function downloadBrief() {
    const out = $("brief-status");
    const year = $("brief-year").value;
    out.textContent = t("brief.downloading");
    try {
      const headers = state.token ? { Authorization: "Bearer " + state.token } : {};
      const resp = await fetch("/v1/brief?" + new URLSearchParams({ year: year, lang: I18N.code }), { headers: headers });
      if (!resp.ok) {
        const body = await resp.json().catch(() => null);
        throw new Error(body && body.detail ? body.detail : resp.status + " " + resp.statusText);
      }
      const blob = await resp.blob();
      const a = make("a");
      a.href = URL.createObjectURL(blob);
      a.download = "roundtable-brief-" + year + "-" + I18N.code + ".html";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
      out.textContent = t("brief.saved", { year: year, size: num(blob.size / 1024) });
      out.dataset.bytes = String(blob.size);
    } catch (err) {
      out.textContent = t("error.generic", { msg: err.message });
    }
  }

  function fillLanguages() {
    const sel = $("lang");
    sel.replaceChildren();
    for (const l of I18N.languages) {
      const o = make("option", l.name);
      o.value = l.code;
      o.lang = l.code;
      o.setAttribute("translate", "no"); // each language's own name
      sel.appendChild(o);
    }
    sel.value = I18N.code;
    sel.addEventListener("change", () => {
      I18N.choose(sel.value);
      const u = new URL(location.href);
      u.searchParams.delete("lang");
      location.replace(u.toString());
    });
  }

  function refreshData() {
    loadHealth();
    renderTrends();
    renderBudget();
    renderLedger();
  }

  async function main() {
    try {
      await I18N.load();
    } catch (err) {
      // Without messages there is nothing to say it with; the console has it.
      console.error(err);
      return;
    }
    applyI18n(document);
    fillLanguages();
    $("brief-download").addEventListener("click", downloadBrief);
    $("token").value = state.token;
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.token = $("token").value.trim();
      sessionStorage.setItem(TOKEN_KEY, state.token);
      whoami().then(refreshData);
    });
    $("token-forget").addEventListener("click", () => {
      state.token = "";
      sessionStorage.removeItem(TOKEN_KEY);
      $("token").value = "";
      whoami();
    });
    $("import-form").addEventListener("submit", doImport);
    $("plan-form").addEventListener("submit", doPlan);
    $("publish").addEventListener("click", doPublish);
    $("indicator").addEventListener("change", () => { fillBy(); renderTrends(); });
    $("granularity").addEventListener("change", renderTrends);
    $("by").addEventListener("change", renderTrends);
    $("corridor-year").addEventListener("change", renderCorridors);
    // Charts are drawn at their container's width; redraw when it changes.
    let resizeTimer = 0;
    let lastWidth = window.innerWidth;
    window.addEventListener("resize", () => {
      if (window.innerWidth === lastWidth || !state.catalog) return;
      lastWidth = window.innerWidth;
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => { renderTrends(); renderBudget(); }, 200);
    });
    $("status").textContent = t("status.loading");
    loadHealth();
    whoami();
    // The ledger list needs neither the catalog nor the series, so it does
    // not wait for the charts (a long ledger makes the series slow to build).
    const ledger = renderLedger();
    try {
      const cat = await api("/v1/catalog");
      state.catalog = cat.catalog;
      const cl = await api("/v1/cluster");
      state.partners = cl.partners;
    } catch (err) {
      showError($("trend-chart"), t("nav.trends"), err);
      return;
    }
    fillSelectors();
    await renderTrends();
    await fillCorridorYears().catch((err) => showError($("corridor-chart"), t("corridors.title"), err));
    // Ready means every section has drawn, whichever finished first (each
    // shows its own error in place if it fails).
    await Promise.allSettled([ledger, renderCorridors(), renderBudget()]);
    document.body.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", main);
})();
