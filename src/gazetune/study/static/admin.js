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

  function bar(rate) {
    const d = document.createElement("div");
    d.className = "bar";
    d.style.width = `${Math.round(rate * 120)}px`;
    return d;
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
      fill($("fool").tBodies[0], s.fool_rate, [
        (r) => r.group, (r) => r.n, (r) => r.judged_real, (r) => fmt(r.rate),
        (r) => `${fmt(r.ci95[0])} – ${fmt(r.ci95[1])}`, (r) => fmt(r.mean_rt_ms, 0), (r) => bar(r.rate),
      ]);
      fill($("participants").tBodies[0], s.participants.list.slice().reverse(), [
        (p) => p.id, (p) => p.external_id || "", (p) => `${p.answered} / ${p.n_trials}`, (p) => (p.completed ? "yes" : ""),
        (p) => fmt(p.px_per_mm), (p) => fmt(p.viewing_distance_mm == null ? null : p.viewing_distance_mm / 10, 0),
        (p) => fmt(p.validation_accuracy_deg), (p) => fmt(p.validation_precision_deg),
        (p) => (p.validation_passed == null ? "" : p.validation_passed ? "yes" : "no"),
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
