// gazetune study dashboard: polls /api/admin/summary every 3 s with the token from the URL.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);
  const fmt = (v, d = 2) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));

  function cell(row, text) {
    const td = document.createElement("td");
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    row.appendChild(td);
  }

  function fill(tbody, rows, cols) {
    tbody.innerHTML = "";
    for (const r of rows) {
      const tr = document.createElement("tr");
      cols.forEach((c) => cell(tr, c(r)));
      tbody.appendChild(tr);
    }
  }

  // The rate as a dot on a 0-1 axis with its interval as a line (the same interval as the table).
  function plot(rate, ci) {
    const W = 160, H = 16, x = (v) => 4 + v * (W - 8);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "ci-plot");
    const add = (tag, attrs) => {
      const el = document.createElementNS(ns, tag);
      Object.entries(attrs).forEach(([k, v]) => el.setAttribute(k, v));
      svg.appendChild(el);
    };
    add("line", { x1: x(0), x2: x(1), y1: H / 2, y2: H / 2, stroke: "#ccc" });
    add("line", { x1: x(0.5), x2: x(0.5), y1: 2, y2: H - 2, stroke: "#999", "stroke-dasharray": "2,2" });
    add("line", { x1: x(ci[0]), x2: x(ci[1]), y1: H / 2, y2: H / 2, stroke: "#1f4e8c", "stroke-width": 3 });
    add("circle", { cx: x(rate), cy: H / 2, r: 4, fill: "#1f4e8c" });
    return svg;
  }

  async function refresh() {
    try {
      const res = await fetch("/api/admin/summary", { headers: { Authorization: `Bearer ${token}` } });
      const s = await res.json();
      if (!res.ok) throw new Error(s.detail || `HTTP ${res.status}`);
      $("error").hidden = true;
      $("n-participants").textContent = s.participants.n;
      $("n-completed").textContent = s.participants.completed;
      $("n-answered").textContent = `${s.trials.answered} / ${s.trials.n}`;
      $("n-samples").textContent = s.trials.gaze_samples;
      $("val-acc").textContent = s.validation.median_accuracy_deg == null ? "–" : `${fmt(s.validation.median_accuracy_deg)}°`;
      $("version").textContent = `v${s.current_version}`;
      const afc = s.design === "2afc";
      if (afc) {
        $("rates-title").textContent = "2AFC accuracy (real image picked), by generator version";
        $("rates-note").textContent = "0.5 = people cannot tell the generated image from the real one. 95 % intervals: participants × images bootstrap, as gazetune eval study. Catch trials and excluded participants are left out.";
        $("col-k").textContent = "real picked"; $("col-rate").textContent = "accuracy";
      }
      fill($("fool").tBodies[0], s.fool_rate, [
        (r) => r.group, (r) => r.n, (r) => (afc ? r.correct : r.judged_real), (r) => fmt(afc ? r.accuracy : r.rate),
        (r) => `${fmt(r.ci95[0])} – ${fmt(r.ci95[1])}`, (r) => plot(afc ? r.accuracy : r.rate, r.ci95),
        (r) => (r.hype_infinity ? `${fmt(r.hype_infinity.error_rate)} (${fmt(r.hype_infinity.ci95[0])} – ${fmt(r.hype_infinity.ci95[1])})` : ""),
        (r) => (r.hype_time ? `${fmt(r.hype_time.threshold_ms, 0)} (${fmt(r.hype_time.ci95[0], 0)} – ${fmt(r.hype_time.ci95[1], 0)})` : ""),
        (r) => fmt(r.mean_rt_ms, 0),
      ]);
      $("rules").textContent = s.exclusions.rules.length ? `Rules: ${s.exclusions.rules.join("; ")}.` : "No exclusion rules are set.";
      fill($("excluded").tBodies[0], s.exclusions.excluded, [
        (p) => p.id, (p) => p.external_id || "", (p) => p.reasons.join("; "), (p) => (p.final ? "yes" : "so far"),
      ]);
      fill($("participants").tBodies[0], s.participants.list.slice().reverse(), [
        (p) => p.id, (p) => p.external_id || "", (p) => `${p.answered} / ${p.n_trials}`, (p) => (p.completed ? "yes" : ""),
        (p) => fmt(p.px_per_mm), (p) => fmt(p.viewing_distance_mm == null ? null : p.viewing_distance_mm / 10, 0),
        (p) => fmt(p.validation_accuracy_deg), (p) => fmt(p.validation_precision_deg),
        (p) => (p.validation_passed == null ? "" : p.validation_passed ? "yes" : "no"),
        (p) => fmt(p.median_drift_deg), (p) => `${p.gaze_trials} / ${p.shown_trials}` + (p.gaze_incomplete ? ` (${p.gaze_incomplete} incomplete)` : ""), (p) => fmt(p.samples_per_trial, 0),
        (p) => (p.catch_n ? `${p.catch_correct} / ${p.catch_n}` : ""), (p) => (p.excluded ? "yes" : ""),
      ]);
      $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      $("error").textContent = `Cannot load the summary: ${e.message}`;
      $("error").hidden = false;
    }
  }

  const ul = $("exports");
  for (const t of ["trials", "samples", "fixations", "validations"]) {
    const li = document.createElement("li");
    li.textContent = `${t}: `;
    for (const f of ["csv", "parquet"]) {
      const a = document.createElement("a");
      a.href = `/api/admin/export/${t}.${f}?token=${encodeURIComponent(token)}`;
      a.textContent = f;
      li.appendChild(a);
      li.appendChild(document.createTextNode(" "));
    }
    ul.appendChild(li);
  }
  refresh();
  setInterval(refresh, 3000);
})();
