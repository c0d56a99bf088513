// gazetune study: the participant's side.
// Flow: consent -> card-size screen scaling -> blind-spot viewing distance -> gaze calibration and
// validation -> trials (fixation cross, image, answer; gaze batches every second) with drift checks
// -> completion code.  Only this server is contacted.  Times are performance.now() milliseconds.
"use strict";

(function () {
  const CARD_MM = 85.6;           // ISO/IEC 7810 ID-1 card width
  const CARD_RATIO = 53.98 / 85.6;
  const BLIND_SPOT_DEG = 13.5;    // centre of the blind spot, degrees from fixation
  const BS_SPEED_MM_S = 60;       // speed of the moving dot in the blind-spot test
  const BATCH_MS = 1000;          // gaze batches go up once a second
  const VALIDATION_TARGETS = [[0.5, 0.5], [0.15, 0.15], [0.85, 0.15], [0.15, 0.85], [0.85, 0.85]];
  const CALIBRATION_TARGETS = [[0.1, 0.1], [0.5, 0.1], [0.9, 0.1], [0.1, 0.5], [0.5, 0.5],
    [0.9, 0.5], [0.1, 0.9], [0.5, 0.9], [0.9, 0.9]];

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const state = {
    study: null, token: null, pid: null, pxPerMm: null, distanceMm: null, trialsDone: 0,
    pointer: { x: NaN, y: NaN }, phase: "loading", gazeSource: null, errors: [],
  };
  window.__study = state;  // read-only view for automated tests

  // ------------------------------------------------------------------ helpers
  function show(name) {
    document.querySelectorAll(".screen").forEach((s) => s.classList.remove("active"));
    $("screen-" + name).classList.add("active");
    state.phase = name;
  }

  function stopGaze() {
    if (state.gazeSource && state.gazeSource.stop) state.gazeSource.stop();
  }

  function fail(message) {
    stopGaze();
    $("target").hidden = true;
    document.body.classList.remove("calibrating");
    $("error-text").textContent = message;
    show("error");
  }

  async function api(method, path, body, opts = {}) {
    const headers = { "Content-Type": "application/json" };
    if (state.token) headers["X-Participant-Token"] = state.token;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (opts.raw) return res;
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.detail) || `${method} ${path}: HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function waitKey(keys) {
    return new Promise((resolve) => {
      function onKey(ev) {
        if (ev.repeat || !keys.includes(ev.key)) return;
        ev.preventDefault();
        document.removeEventListener("keydown", onKey);
        resolve(ev.key);
      }
      document.addEventListener("keydown", onKey);
    });
  }

  function waitClick(el) {
    return new Promise((resolve) => el.addEventListener("click", resolve, { once: true }));
  }

  function degToPx(deg) {
    const ppm = state.pxPerMm || 96 / 25.4;
    const d = state.distanceMm || 600;
    return Math.tan((deg * Math.PI) / 180) * d * ppm;
  }

  // ------------------------------------------------------------------ gaze sources
  // A gaze source answers current() -> {x, y} in viewport CSS pixels or null (lost).
  document.addEventListener("pointermove", (ev) => {
    state.pointer.x = ev.clientX;
    state.pointer.y = ev.clientY;
  }, { passive: true });

  const mouseSource = {
    name: "mouse",
    current: () => (Number.isFinite(state.pointer.x) ? { x: state.pointer.x, y: state.pointer.y } : null),
  };

  // Sample the source at the display's frame rate (about 60 Hz) into arrays.
  class Recorder {
    constructor(source) { this.source = source; this.t = []; this.x = []; this.y = []; this.running = false; }
    start() {
      this.running = true;
      const tick = () => {
        if (!this.running) return;
        const t = performance.now();
        const g = this.source.current();
        if (this.t.length === 0 || t > this.t[this.t.length - 1]) {
          this.t.push(t);
          this.x.push(g ? g.x : null);
          this.y.push(g ? g.y : null);
        }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }
    take() {  // hand over what was recorded so far and start empty
      const out = { t_ms: this.t, x: this.x, y: this.y };
      this.t = []; this.x = []; this.y = [];
      return out;
    }
    stop() { this.running = false; }
  }

  // Batches of one trial: numbered, sent in order, retried with the same number until the server
  // acknowledges (the server ignores a batch it already has, so retries never duplicate samples).
  // A batch that still failed is kept and sent again before the study moves on (retryFailed);
  // the server is told how many batches the trial had, and flags the trial when some are missing.
  class Uploader {
    constructor(trialId, source) {
      this.trialId = trialId; this.source = source; this.seq = 0; this.chain = Promise.resolve();
      this.failed = null; this.pending = [];
    }
    push(batch) {
      if (batch.t_ms.length === 0) return this.chain;
      const body = { seq: this.seq++, source: this.source, t_ms: batch.t_ms, x: batch.x, y: batch.y };
      this.chain = this.chain.then(() => this.send(body, 4));
      return this.chain;
    }
    async send(body, attempts) {
      for (let attempt = 0; attempt < attempts; attempt++) {
        try {
          await api("POST", `/api/trials/${this.trialId}/gaze`, body);
          connectionOk();
          return true;
        } catch (e) {
          if (e.status && e.status < 500) { this.failed = e.message; state.errors.push(e.message); return false; }
          if (!e.status) connectionLost();
          await sleep(Math.min(4000, 250 * 2 ** attempt));
        }
      }
      this.pending.push(body);
      state.errors.push(`gaze batch ${body.seq} of trial ${this.trialId} could not be sent yet`);
      return false;
    }
    // Before the answer: the batches that did not arrive get more tries; what still fails is
    // left out and the server flags the trial.
    async retryFailed(rounds = 3) {
      await this.chain;
      for (let r = 0; r < rounds && this.pending.length; r++) {
        const left = this.pending;
        this.pending = [];
        for (const body of left) await this.send(body, 2);
      }
      if (this.pending.length) this.failed = `${this.pending.length} gaze batches of this image did not arrive`;
    }
  }

  function connectionLost() {
    state.connectionLost = true;
    $("trial-warning").textContent = "The connection to the study server seems to be lost. Please check your " +
      "internet connection; we keep trying, and the study goes on when it is back.";
  }

  function connectionOk() {
    if (state.connectionLost) { state.connectionLost = false; $("trial-warning").textContent = ""; }
  }

  // A request that must arrive (the answer): retried while the network or the server is down,
  // with the message on screen, for up to two minutes.
  async function apiPersist(method, path, body) {
    const t0 = performance.now();
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await api(method, path, body);
        connectionOk();
        return r;
      } catch (e) {
        if ((e.status && e.status < 500) || performance.now() - t0 > 120000) throw e;
        if (!e.status) connectionLost();
        await sleep(Math.min(5000, 500 * 2 ** attempt));
      }
    }
  }

  // ------------------------------------------------------------------ target sequences
  function placeTarget(fx, fy) {
    const t = $("target");
    t.style.left = `${fx * window.innerWidth}px`;
    t.style.top = `${fy * window.innerHeight}px`;
    t.classList.remove("shrink");
    t.hidden = false;
    return { el: t, x: fx * window.innerWidth, y: fy * window.innerHeight };
  }

  // Show each target, wait for a click on it, then record gaze for `holdMs` while it shrinks.
  // Returns per-target {target, x, y} and calls onHold(target, recording) for calibration fitting.
  async function runTargets(targets, source, holdMs, onHold) {
    document.body.classList.add("calibrating");
    const points = [];
    for (const [fx, fy] of targets) {
      const tg = placeTarget(fx, fy);
      await waitClick(tg.el);
      tg.el.classList.add("shrink");
      const rec = new Recorder(source);
      const clickT = performance.now();
      rec.start();
      await sleep(holdMs);
      // slow face tracking (a weak computer): hold until a few camera frames came in, at most 6 s
      while (source.framesSince && source.framesSince(clickT + 250) < 3 && performance.now() - clickT < 6000) {
        await sleep(100);
      }
      rec.stop();
      const r = rec.take();
      if (onHold) onHold(tg, r);
      points.push({ target: [tg.x, tg.y], x: r.x, y: r.y });
    }
    $("target").hidden = true;
    document.body.classList.remove("calibrating");
    return points;
  }

  // ------------------------------------------------------------------ steps
  async function consent() {
    show("consent");
    const s = state.study;
    $("study-title").textContent = s.title;
    $("consent-minutes").textContent = String(Math.max(2, Math.round(s.n_trials * 6 / 60) + 2));
    $("consent-gaze-mouse").hidden = s.gaze_mode !== "mouse";
    $("consent-gaze-webcam").hidden = s.gaze_mode !== "webcam";
    $("consent-gaze-tracker").hidden = s.gaze_mode !== "tracker";
    const q = new URLSearchParams(location.search);
    const pid = q.get("pid") || q.get("PROLIFIC_PID") || q.get("workerId") || q.get("participant") || "";
    $("consent-pid").value = pid;
    for (;;) {
      await waitClick($("consent-agree"));
      try {
        const screenInfo = {
          width: screen.width, height: screen.height, inner_width: window.innerWidth,
          inner_height: window.innerHeight, dpr: window.devicePixelRatio || 1,
        };
        const r = await api("POST", "/api/participants", {
          consent: true, external_id: $("consent-pid").value.trim() || null,
          user_agent: navigator.userAgent.slice(0, 500), screen: screenInfo,
        });
        state.token = r.token;
        state.participantId = r.participant_id;
        return;
      } catch (e) {
        $("consent-error").textContent = e.message;
        $("consent-error").hidden = false;
      }
    }
  }

  async function cardCalibration() {
    show("card");
    const slider = $("card-slider");
    const box = $("card-box");
    const draw = () => {
      const w = Number(slider.value);
      box.style.width = `${w}px`;
      box.style.height = `${w * CARD_RATIO}px`;
    };
    slider.addEventListener("input", draw);
    const onKey = (ev) => {
      if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
        slider.value = String(Number(slider.value) + (ev.key === "ArrowRight" ? 1 : -1));
        draw();
      }
    };
    document.addEventListener("keydown", onKey);
    draw();
    await waitClick($("card-done"));
    document.removeEventListener("keydown", onKey);
    state.pxPerMm = Number(slider.value) / CARD_MM;
  }

  async function blindSpot() {
    show("blindspot");
    const area = $("bs-area"), dot = $("bs-dot"), sq = $("bs-square"), status = $("bs-status");
    const total = 3;
    $("bs-total").textContent = String(total);
    const sqX = area.clientWidth - 40;
    sq.style.left = `${sqX}px`;
    dot.style.left = `${sqX - 40}px`;
    const which = await Promise.race([waitClick($("bs-start")).then(() => "start"), waitClick($("bs-skip")).then(() => "skip")]);
    if (which === "skip") return;
    $("bs-start").disabled = true;
    const offsets = [];
    while (offsets.length < total) {
      const t0 = performance.now();
      let offsetPx = 0, running = true;
      const speed = BS_SPEED_MM_S * state.pxPerMm / 1000;  // px per ms
      const move = () => {
        if (!running) return;
        offsetPx = (performance.now() - t0) * speed;
        dot.style.left = `${sqX - 40 - offsetPx}px`;
        if (sqX - offsetPx < 0) { running = false; return; }
        requestAnimationFrame(move);
      };
      requestAnimationFrame(move);
      status.textContent = `Run ${offsets.length + 1} of ${total}: press Space when the red dot disappears.`;
      await waitKey([" "]);
      running = false;
      const dist = ((offsetPx + 41) / state.pxPerMm) / Math.tan(BLIND_SPOT_DEG * Math.PI / 180);
      if (dist < 200 || dist > 1500) {
        status.textContent = `That gives ${Math.round(dist)} mm, which is unlikely; let us repeat this run.`;
        await sleep(1200);
      } else {
        offsets.push(offsetPx);
      }
      dot.style.left = `${sqX - 40}px`;
      await sleep(400);
    }
    offsets.sort((a, b) => a - b);
    const median = offsets[Math.floor(offsets.length / 2)] + 41;  // dot centre to square centre (see the offsets above)
    state.distanceMm = (median / state.pxPerMm) / Math.tan(BLIND_SPOT_DEG * Math.PI / 180);
    status.textContent = `Viewing distance about ${Math.round(state.distanceMm / 10)} cm.`;
    await sleep(600);
  }

  async function saveScreen() {
    await api("POST", "/api/me/screen", {
      px_per_mm: state.pxPerMm, viewing_distance_mm: state.distanceMm,
      screen: { width: screen.width, height: screen.height, inner_width: window.innerWidth,
        inner_height: window.innerHeight, dpr: window.devicePixelRatio || 1 },
    });
  }

  // Calibration (webcam: fit the regression) and validation, repeated while validation is poor.
  async function calibrate() {
    show("calib");
    const webcam = state.study.gaze_mode === "webcam";
    if (webcam) {
      $("calib-title").textContent = "Webcam calibration";
      $("calib-text").textContent = "Keep your head still. Dots appear one after another: look at each dot and click it, " +
        "then keep looking at it until it has shrunk. Then a few more dots check the calibration.";
    } else {
      $("calib-title").textContent = "Pointer check";
      $("calib-text").textContent = "Dots appear one after another: move the pointer onto each dot and click it, " +
        "then keep the pointer on it until it has shrunk.";
    }
    await waitClick($("calib-start"));
    const maxAttempts = state.study.max_calibration_attempts;
    for (let attempt = 1; ; attempt++) {
      if (webcam) {
        state.gazeSource.reset();
        await runTargets(CALIBRATION_TARGETS, state.gazeSource.featureSource, 900,
          (tg, rec) => state.gazeSource.addCalibration(tg.x, tg.y, rec));
        const fit = state.gazeSource.fit();
        if (!fit.ok) {
          if (attempt >= maxAttempts) throw new Error(fit.message.replace("try again", "reload the page to try again"));
          $("calib-result").textContent = fit.message;
          await waitClick($("calib-start"));
          continue;
        }
      }
      const points = await runTargets(VALIDATION_TARGETS, state.gazeSource, 800);
      const vbody = { kind: "validation", attempt, points };
      if (webcam) vbody.gaze_model = state.gazeSource.modelVersion;
      const r = await api("POST", "/api/me/validation", vbody);
      state.lastValidation = r;
      const acc = r.accuracy_deg == null ? "no gaze" : `${r.accuracy_deg.toFixed(2)}°`;
      if (r.passed || !r.recalibrate) {
        $("calib-result").textContent = `Calibration done (error ${acc}).`;
        return;
      }
      $("calib-result").textContent = `The calibration was not precise enough (error ${acc}, at most ${r.max_deg}° allowed). Let us repeat it.`;
      await waitClick($("calib-start"));
    }
  }

  // One target.  Its gaze (predicted by the current model) measures the drift; in webcam mode its
  // camera frames then join the calibration set and the model is fitted again (the validation
  // record says so: refit, gaze_model).
  async function driftCheck(beforeTrial) {
    const webcam = state.study.gaze_mode === "webcam";
    const points = await runTargets([[0.5, 0.5]], state.gazeSource, 600,
      webcam ? (tg, rec) => state.gazeSource.addCalibration(tg.x, tg.y, rec, "drift") : null);
    const body = { kind: "drift", attempt: 1, before_trial: beforeTrial, points };
    if (webcam) {
      const rf = state.gazeSource.refit();
      state.lastRefit = rf;
      body.refit = rf.ok;
      body.gaze_model = rf.model;
    }
    const r = await api("POST", "/api/me/validation", body);
    if (!r.passed && state.study.gaze_mode === "webcam") {
      show("calib");
      $("calib-result").textContent = "Your position seems to have changed: please calibrate again.";
      await calibrate();
    }
  }

  function answerOptions() {
    if (state.study.design === "2afc") {
      return [{ value: 0, key: "f", label: "Left is real (F)" }, { value: 1, key: "j", label: "Right is real (J)" }];
    }
    if (state.study.answer_scale === "binary") {
      return [{ value: 0, key: "f", label: "Generated (F)" }, { value: 1, key: "j", label: "Real (J)" }];
    }
    const names = ["surely generated", "probably generated", "unsure", "probably real", "surely real"];
    return names.map((n, i) => ({ value: i + 1, key: String(i + 1), label: `${i + 1}: ${n}` }));
  }

  // A mask of coarse random grey blocks (HYPE-time: it stops the image lingering on the retina).
  function noiseMask(size) {
    const c = document.createElement("canvas");
    c.width = c.height = 32;
    const ctx = c.getContext("2d");
    for (let i = 0; i < 32; i++) {
      for (let j = 0; j < 32; j++) {
        const v = Math.floor(Math.random() * 256);
        ctx.fillStyle = `rgb(${v},${v},${v})`;
        ctx.fillRect(i, j, 1, 1);
      }
    }
    return c.toDataURL();
  }

  async function instructions() {
    show("instructions");
    const s = state.study;
    $("instr-max").textContent = s.max_display_ms > 0 ? ` for at most ${(s.max_display_ms / 1000).toFixed(1)} s` : "";
    $("instr-mouse").hidden = s.gaze_mode !== "mouse";
    $("instr-keys").innerHTML = s.design === "2afc"
      ? "Two images appear side by side: one is a photograph, the other was generated. Press <kbd>F</kbd> if the <b>left</b> one is real, <kbd>J</kbd> if the <b>right</b> one is, or use the buttons."
      : s.answer_scale === "binary"
      ? "Answer with the keys <kbd>F</kbd> = generated and <kbd>J</kbd> = real, or with the buttons. Answer as quickly and accurately as you can."
      : "Answer with the keys <kbd>1</kbd> (surely generated) to <kbd>5</kbd> (surely real), or with the buttons.";
    await waitClick($("instr-start"));
  }

  function loadImage(url) {
    return fetch(url, { headers: { "X-Participant-Token": state.token } }).then((r) => {
      if (!r.ok) throw new Error(`image ${url}: HTTP ${r.status}`);
      return r.blob();
    }).then((b) => URL.createObjectURL(b));
  }

  // One trial: cross, image (blinded; 2AFC: two images), gaze batches each second, answer by key
  // or button.  HYPE-time: the image goes after exposure_ms and a noise mask takes its place.
  async function runTrial(next) {
    const s = state.study;
    show("trial");
    const pair = Boolean(next.image_url2);
    const stages = [$("trial-stage"), $("trial-stage2")].slice(0, pair ? 2 : 1);
    const imgs = [[$("trial-sharp"), $("trial-blurred")], [$("trial-sharp2"), $("trial-blurred2")]];
    const masks = [$("trial-mask"), $("trial-mask2")];
    $("trial-stage2").hidden = !pair;
    const size = s.display_px;
    const radius = Math.max(24, Math.min(size / 4, degToPx(2)));
    for (const st of stages) {
      st.style.width = `${size}px`;
      st.style.height = `${size}px`;
      st.classList.toggle("mouse", s.gaze_mode === "mouse");
      st.classList.remove("showing");
      st.style.setProperty("--r", `${radius}px`);
      st.style.setProperty("--blur", `${Math.max(4, size / 48)}px`);
    }
    masks.forEach((m) => { m.hidden = true; m.style.backgroundImage = ""; });
    $("trial-progress").textContent = `Image ${next.index + 1} of ${next.n_trials}`;
    $("trial-warning").textContent = "";
    const answers = $("trial-answers");
    answers.innerHTML = "";
    const opts = answerOptions();
    for (const o of opts) {
      const b = document.createElement("button");
      b.textContent = o.label;
      b.dataset.answer = String(o.value);
      b.disabled = true;
      answers.appendChild(b);
    }
    const urls = await Promise.all([next.image_url, next.image_url2].slice(0, stages.length).map(loadImage));
    await Promise.all(urls.flatMap((u, k) => imgs[k].map((el) => { el.src = u; return el.decode(); })));

    const crossOn = pair ? $("trial-pair") : stages[0];
    crossOn.classList.add("fixating");
    await sleep(s.fixation_ms);
    crossOn.classList.remove("fixating");

    const onMove = () => {
      for (const st of stages) {
        const r = st.getBoundingClientRect();
        st.style.setProperty("--px", `${state.pointer.x - r.left}px`);
        st.style.setProperty("--py", `${state.pointer.y - r.top}px`);
      }
    };
    onMove();
    document.addEventListener("pointermove", onMove, { passive: true });
    stages.forEach((st) => st.classList.add("showing"));
    const onset = performance.now();
    const rects = stages.map((st) => st.getBoundingClientRect());
    const startBody = {
      image_rect: [rects[0].left, rects[0].top, rects[0].width, rects[0].height], client_onset_ms: onset,
      viewport: { width: window.innerWidth, height: window.innerHeight, dpr: window.devicePixelRatio || 1 },
    };
    if (pair) startBody.image_rect2 = [rects[1].left, rects[1].top, rects[1].width, rects[1].height];
    const started = apiPersist("POST", `/api/trials/${next.trial_id}/start`, startBody);
    const recorder = new Recorder(state.gazeSource);
    const uploader = new Uploader(next.trial_id, state.gazeSource.name);
    recorder.start();
    let timer = null;
    const flush = () => started.then(() => uploader.push(recorder.take()));
    timer = setInterval(flush, BATCH_MS);
    let timedOut = false, hideTimer = null, maskTimer = null;
    if (next.exposure_ms) {  // HYPE-time: exposure, then the mask; gaze is still recorded
      hideTimer = setTimeout(() => {
        masks[0].style.backgroundImage = `url(${noiseMask(size)})`;
        masks[0].hidden = false;
        state.lastExposure = next.exposure_ms;
        maskTimer = setTimeout(() => { masks[0].style.backgroundImage = ""; }, next.mask_ms || 0);
      }, next.exposure_ms);
    } else if (s.max_display_ms > 0) {
      hideTimer = setTimeout(() => {
        timedOut = true;
        stages.forEach((st, k) => { masks[k].hidden = false; });
        recorder.stop();
      }, s.max_display_ms);
    }
    answers.querySelectorAll("button").forEach((b) => { b.disabled = false; });

    const chosen = await new Promise((resolve) => {
      const onKey = (ev) => {
        const o = opts.find((x) => x.key === ev.key.toLowerCase());
        if (!o || ev.repeat) return;
        cleanup(); resolve({ value: o.value, t: performance.now() });
      };
      const onClick = (ev) => {
        const b = ev.target.closest("button[data-answer]");
        if (!b) return;
        cleanup(); resolve({ value: Number(b.dataset.answer), t: performance.now() });
      };
      function cleanup() {
        document.removeEventListener("keydown", onKey);
        answers.removeEventListener("click", onClick);
      }
      document.addEventListener("keydown", onKey);
      answers.addEventListener("click", onClick);
    });
    const rt = chosen.t - onset;
    clearInterval(timer);
    clearTimeout(hideTimer);
    clearTimeout(maskTimer);
    recorder.stop();
    document.removeEventListener("pointermove", onMove);
    stages.forEach((st) => st.classList.remove("showing"));
    answers.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    await started;
    await uploader.push(recorder.take());
    await uploader.retryFailed();
    urls.forEach((u) => URL.revokeObjectURL(u));
    const answerBody = { answer: chosen.value, rt_ms: rt, timed_out: timedOut, gaze_batches: uploader.seq };
    if (state.gazeSource.trialInfo) {  // webcam: the gaze model used, expression scores (numbers only)
      Object.assign(answerBody, state.gazeSource.trialInfo(onset, chosen.t));
      state.lastTrialInfo = { gaze_model: answerBody.gaze_model, expression: answerBody.expression };
    }
    await apiPersist("POST", `/api/trials/${next.trial_id}/answer`, answerBody);
    state.lastGazeMissing = uploader.pending.length;
    state.trialsDone += 1;
  }

  async function trials() {
    for (;;) {
      const next = await api("GET", "/api/me/next");
      if (next.done) return;
      if (next.drift_check) {
        show("calib");
        await driftCheck(next.index);
      }
      await runTrial(next);
    }
  }

  async function finish() {
    const r = await apiPersist("POST", "/api/me/complete");
    stopGaze();
    $("done-code").textContent = r.completion_code;
    show("done");
    if (r.redirect_url) {  // the platform's completion link (e.g. Prolific's, with the code)
      $("done-redirect").href = r.redirect_url;
      $("done-redirect-p").hidden = false;
      $("done-copy").hidden = true;
      state.redirectUrl = r.redirect_url;
      setTimeout(() => { location.href = r.redirect_url; }, 4000);
    }
  }

  async function main() {
    try {
      state.study = await api("GET", "/api/study");
      await consent();
      await cardCalibration();
      await blindSpot();
      await saveScreen();
      if (state.study.gaze_mode === "webcam") {
        show("calib");
        $("calib-title").textContent = "Starting the webcam";
        $("calib-text").textContent = "Please allow the use of your camera. The pictures stay on this computer.";
        state.gazeSource = await window.GazeWebcam.start($("webcam-video"), (msg) => { $("calib-result").textContent = msg; });
      } else {
        state.gazeSource = mouseSource;
      }
      await calibrate();
      await instructions();
      await trials();
      await finish();
    } catch (e) {
      fail(e && e.message ? e.message : String(e));
    }
  }

  window.addEventListener("DOMContentLoaded", main);
})();
