// Inline SVG charts for the dashboard: a line with a shaded interval band,
// a heat map and stacked budget bars. No library: the page must work
// without network access, and these three shapes are all it draws. Text
// shown to users comes from the caller (which takes it from strings.js).
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  function svgRoot(container, w, h, ariaLabel) {
    container.replaceChildren();
    const svg = el("svg", { viewBox: "0 0 " + w + " " + h, role: "img" }, container);
    svg.setAttribute("aria-label", ariaLabel);
    el("title", {}, svg).textContent = ariaLabel;
    return svg;
  }

  // niceMax rounds up to 1, 2 or 5 times a power of ten so ticks read well.
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function fmt(v) {
    return window.RT_I18N.num(Math.round(v));
  }

  // lineChart draws one series: points [{x, v, lo, hi, raw, uncertain}] in
  // order. The line and the shaded interval join only readable points; an
  // uncertain point (interval wider than its value, or v null when the
  // published numbers do not determine it) is a hollow marker with a "?",
  // not a point on the trend, and does not set the scale.
  // opts: {ariaLabel, yMax, tip(point) → string, width, height, showRaw, empty}
  function lineChart(container, points, opts) {
    // Draw at the container's own width so text keeps its size on a phone.
    const W = Math.max(280, Math.round(container.clientWidth) || opts.width || 720), H = opts.height || 280;
    const m = { l: 48, r: 16, t: 12, b: 34 };
    const svg = svgRoot(container, W, H, opts.ariaLabel);
    if (!points.length) {
      el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg).textContent = opts.empty;
      return svg;
    }
    const readable = (p) => !p.uncertain && p.v !== null;
    let top = opts.yMax;
    if (!top) {
      top = 0;
      for (const p of points) {
        if (readable(p)) top = Math.max(top, p.hi, p.v, opts.showRaw && p.raw !== null ? p.raw : 0);
      }
      top = niceMax(Math.max(top, 1));
    }
    const iw = W - m.l - m.r, ih = H - m.t - m.b;
    const x = (i) => m.l + (points.length === 1 ? iw / 2 : (i * iw) / (points.length - 1));
    const y = (v) => m.t + ih - (Math.max(0, Math.min(v, top)) / top) * ih;
    for (let k = 0; k <= 4; k++) {
      const v = (top * k) / 4;
      el("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }, svg);
      el("text", { x: m.l - 6, y: y(v) + 4, "text-anchor": "end" }, svg).textContent = fmt(v);
    }
    el("line", { class: "axis", x1: m.l, x2: W - m.r, y1: y(0), y2: y(0) }, svg);
    // Label the x axis left to right, skipping any label that would
    // crowd its neighbour or the last one (which is always shown).
    const gap = 62;
    let lastX = -Infinity;
    points.forEach((p, i) => {
      const last = i === points.length - 1;
      if (!last && (x(i) - lastX < gap || x(points.length - 1) - x(i) < gap)) return;
      const anchor = last && points.length > 1 ? "end" : i === 0 && points.length > 1 ? "start" : "middle";
      el("text", { x: x(i), y: H - m.b + 16, "text-anchor": anchor }, svg).textContent = p.x;
      lastX = x(i);
    });
    // Runs of consecutive readable points: each gets its band and line.
    const runs = [];
    points.forEach((p, i) => {
      if (!readable(p)) return;
      if (runs.length && runs[runs.length - 1].at(-1) === i - 1) runs[runs.length - 1].push(i);
      else runs.push([i]);
    });
    for (const run of runs) {
      let band = "";
      run.forEach((i, k) => { band += (k ? "L" : "M") + x(i).toFixed(1) + " " + y(points[i].hi).toFixed(1); });
      for (let k = run.length - 1; k >= 0; k--) band += "L" + x(run[k]).toFixed(1) + " " + y(points[run[k]].lo).toFixed(1);
      el("path", { class: "band", d: band + "Z" }, svg);
      let line = "";
      run.forEach((i, k) => { line += (k ? "L" : "M") + x(i).toFixed(1) + " " + y(points[i].v).toFixed(1); });
      el("path", { class: "line", d: line }, svg);
      if (run.length === 1) el("circle", { class: "dot", cx: x(run[0]), cy: y(points[run[0]].v), r: 3 }, svg);
    }
    points.forEach((p, i) => {
      const cy = p.v === null ? y(0) : y(p.v);
      if (readable(p)) {
        if (opts.showRaw && p.raw !== null) el("circle", { class: "raw", cx: x(i), cy: y(p.raw), r: 2.5 }, svg);
      } else {
        const g = el("g", { class: "uncertain", "data-uncertain": "true" }, svg);
        el("circle", { cx: x(i), cy: cy, r: 6 }, g);
        el("text", { x: x(i), y: cy + 3.5, "text-anchor": "middle" }, g).textContent = "?";
      }
      // An invisible, focusable hit target carries the tooltip for mouse
      // and keyboard users alike.
      const hit = el("circle", { cx: x(i), cy: cy, r: 6, fill: "transparent", tabindex: "0" }, svg);
      el("title", {}, hit).textContent = opts.tip(p);
    });
    return svg;
  }

  // heatmap draws rows × cols; value(r, c) → {v, lo, hi} or null.
  function heatmap(container, rows, cols, value, opts) {
    const cw = 58, ch = 24, ml = 110, mt = 70;
    const W = ml + cols.length * cw + 8, H = mt + rows.length * ch + 8;
    const svg = svgRoot(container, W, H, opts.ariaLabel);
    let top = 0;
    rows.forEach((r, i) => cols.forEach((c, j) => {
      const v = value(i, j);
      if (v) top = Math.max(top, v.v);
    }));
    top = top || 1;
    cols.forEach((c, j) => {
      const t = el("text", { x: 0, y: 0, transform: "translate(" + (ml + j * cw + cw / 2) + "," + (mt - 6) + ") rotate(-40)" }, svg);
      t.textContent = c;
    });
    rows.forEach((r, i) => {
      el("text", { x: ml - 6, y: mt + i * ch + ch / 2 + 4, "text-anchor": "end" }, svg).textContent = r;
      cols.forEach((c, j) => {
        const v = value(i, j);
        const s = v ? Math.sqrt(v.v / top) : 0;
        const light = 96 - s * 66;
        const rect = el("rect", {
          x: ml + j * cw, y: mt + i * ch, width: cw - 2, height: ch - 2,
          fill: "hsl(210, 70%, " + light.toFixed(1) + "%)", tabindex: "0",
        }, svg);
        el("title", {}, rect).textContent = opts.tip(i, j, v);
        if (v) {
          const t = el("text", {
            class: light < 55 ? "cell-text-dark" : "cell-text",
            x: ml + j * cw + cw / 2 - 1, y: mt + i * ch + ch / 2 + 3, "text-anchor": "middle",
          }, svg);
          t.textContent = fmt(v.v);
        }
      });
    });
    return svg;
  }

  // budgetBars draws one partner's quarters as stacked spent/left bars.
  function budgetBars(container, quarters, cap, opts) {
    const W = Math.max(240, Math.round(container.clientWidth) || 360), H = 170, m = { l: 34, r: 6, t: 8, b: 24 };
    const svg = svgRoot(container, W, H, opts.ariaLabel);
    const iw = W - m.l - m.r, ih = H - m.t - m.b;
    const bw = iw / Math.max(quarters.length, 1);
    const y = (v) => m.t + ih - (Math.min(v, cap) / cap) * ih;
    for (const v of [0, cap / 2, cap]) {
      el("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }, svg);
      el("text", { x: m.l - 4, y: y(v) + 4, "text-anchor": "end" }, svg).textContent = window.RT_I18N.num(v, v % 1 ? 2 : 0);
    }
    quarters.forEach((q, i) => {
      const x = m.l + i * bw + 1;
      const g = el("g", { tabindex: "0" }, svg);
      el("title", {}, g).textContent = opts.tip(q);
      el("rect", { class: "left", x: x, y: y(cap), width: bw - 2, height: y(q.spent) - y(cap) }, g);
      el("rect", { class: "spent", x: x, y: y(q.spent), width: bw - 2, height: y(0) - y(q.spent) }, g);
      if (i === 0 || i === quarters.length - 1) {
        el("text", { x: i === 0 ? x : x + bw - 2, y: H - m.b + 14, "text-anchor": i === 0 ? "start" : "end" }, svg).textContent = q.quarter;
      }
    });
    return svg;
  }

  window.RTCharts = { lineChart: lineChart, heatmap: heatmap, budgetBars: budgetBars, niceMax: niceMax };
})();
