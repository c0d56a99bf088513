// gazetune study: webcam gaze in the page.
// MediaPipe Face Mesh (npm @mediapipe/face_mesh 0.4.1633559619, refineLandmarks: 478 landmarks with
// irises), served by the study server from /vendor/face_mesh/, finds the eyes in each camera frame.
// Eye features (iris position inside each eye, head position and size in the frame) are mapped to
// screen x, y by a ridge regression fitted on the calibration targets.  Camera frames never leave
// the page: only the predicted screen positions are sent.
"use strict";

(function () {
  const NO_FACE_MS = 6000;       // no face for this long after the model is ready -> message
  const SETTLE_MS = 250;         // skip the first frames after a target appears (eyes still moving)
  const HISTORY_MS = 5000;       // feature frames kept for calibration
  const RIDGE_LAMBDA = 0.01;     // ridge penalty on standardised features
  const STALE_MS = 500;          // a prediction older than this counts as lost
  // Landmark indices of the refined face mesh.
  const EYE_R = { outer: 33, inner: 133, upper: 159, lower: 145, iris: 468 };
  const EYE_L = { outer: 263, inner: 362, upper: 386, lower: 374, iris: 473 };
  const NOSE = 1;

  function eyeFeatures(lm, e) {
    const o = lm[e.outer], i = lm[e.inner], c = lm[e.iris];
    const ax = o.x - i.x, ay = o.y - i.y;
    const w2 = ax * ax + ay * ay;
    const dx = c.x - i.x, dy = c.y - i.y;
    const u = (dx * ax + dy * ay) / w2;            // along the eye, 0 = inner corner, 1 = outer
    const v = (dx * -ay + dy * ax) / w2;           // across the eye
    const open = Math.hypot(lm[e.upper].x - lm[e.lower].x, lm[e.upper].y - lm[e.lower].y) / Math.sqrt(w2);
    return [u, v, open];
  }

  // Feature vector of one frame (length 9) from 478 normalised landmarks.
  function features(lm) {
    const r = eyeFeatures(lm, EYE_R), l = eyeFeatures(lm, EYE_L);
    const scale = Math.hypot(lm[EYE_R.outer].x - lm[EYE_L.outer].x, lm[EYE_R.outer].y - lm[EYE_L.outer].y);
    return [r[0], r[1], l[0], l[1], (r[2] + l[2]) / 2, lm[NOSE].x, lm[NOSE].y, scale, lm[NOSE].z || 0];
  }

  // Solve (A) w = b for a small dense symmetric positive definite A (Gaussian elimination).
  function solve(A, b) {
    const n = b.length;
    const M = A.map((row, k) => row.concat([b[k]]));
    for (let c = 0; c < n; c++) {
      let p = c;
      for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
      [M[c], M[p]] = [M[p], M[c]];
      for (let r = c + 1; r < n; r++) {
        const f = M[r][c] / M[c][c];
        for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
      }
    }
    const w = new Array(n).fill(0);
    for (let r = n - 1; r >= 0; r--) {
      let s = M[r][n];
      for (let k = r + 1; k < n; k++) s -= M[r][k] * w[k];
      w[r] = s / M[r][r];
    }
    return w;
  }

  // Ridge regression on standardised features with an unpenalised intercept.
  function fitRidge(X, ys) {
    const n = X.length, d = X[0].length;
    const mean = new Array(d).fill(0), sd = new Array(d).fill(0);
    X.forEach((x) => x.forEach((v, j) => { mean[j] += v / n; }));
    X.forEach((x) => x.forEach((v, j) => { sd[j] += (v - mean[j]) ** 2 / n; }));
    for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]) || 1;
    const Z = X.map((x) => x.map((v, j) => (v - mean[j]) / sd[j]));
    const A = Array.from({ length: d }, () => new Array(d).fill(0));
    Z.forEach((z) => { for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) A[a][b] += z[a] * z[b]; });
    for (let a = 0; a < d; a++) A[a][a] += RIDGE_LAMBDA * n;
    return ys.map((y) => {
      const ym = y.reduce((s, v) => s + v, 0) / n;
      const rhs = new Array(d).fill(0);
      Z.forEach((z, k) => { for (let a = 0; a < d; a++) rhs[a] += z[a] * (y[k] - ym); });
      const w = solve(A, rhs);
      return (x) => ym + x.reduce((s, v, j) => s + w[j] * (v - mean[j]) / sd[j], 0);
    });
  }

  async function start(video, say) {
    if (!window.FaceMesh) {
      await new Promise((resolve, reject) => {
        const s = document.createElement("script");
        s.src = "/vendor/face_mesh/face_mesh.js";
        s.onload = resolve;
        s.onerror = () => reject(new Error("The face tracker could not be loaded from this server " +
          "(run `npm ci --prefix web` where the server is installed)."));
        document.head.appendChild(s);
      });
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    } catch (e) {
      throw new Error(`The webcam could not be started (${e.name || e}). Allow the camera and reload the page.`);
    }
    window.GazeWebcam.lastStream = stream;  // for automated tests: are the camera tracks ended?
    video.srcObject = stream;
    video.hidden = false;
    await video.play();

    const mesh = new window.FaceMesh({ locateFile: (f) => `/vendor/face_mesh/${f}` });
    mesh.setOptions({ maxNumFaces: 1, refineLandmarks: true, minDetectionConfidence: 0.5, minTrackingConfidence: 0.5 });
    const g = {
      name: "webcam", frames: [], last: null, lastT: -1, faceSeen: false, models: null, calib: [],
      featureSource: { name: "webcam", current: () => null },
    };
    mesh.onResults((res) => {
      const t = performance.now();
      const lm = res.multiFaceLandmarks && res.multiFaceLandmarks[0];
      if (!lm || lm.length < 478) { g.last = null; return; }
      g.faceSeen = true;
      const f = features(lm);
      g.last = f;
      g.lastT = t;
      g.frames.push({ t, f });
      while (g.frames.length && g.frames[0].t < t - HISTORY_MS) g.frames.shift();
    });

    say("Loading the face tracker…");
    let ready = false, stopped = false;
    // Camera off and tracker closed: on every path that ends the tracking (no face, time-out,
    // tracker error, end of the study), so the camera light does not stay on.
    const shutdown = () => {
      stopped = true;
      stream.getTracks().forEach((tr) => tr.stop());
      video.srcObject = null;
      video.hidden = true;
      Promise.resolve().then(() => mesh.close()).catch(() => { /* already closed */ });
    };
    const loop = async () => {
      while (!stopped) {
        if (video.readyState >= 2) {
          await mesh.send({ image: video });
          ready = true;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    loop().catch((e) => { g.error = e; });

    const t0 = performance.now();
    let readyAt = null;
    while (!g.faceSeen) {
      if (g.error) { shutdown(); throw new Error(`The face tracker stopped: ${g.error.message || g.error}`); }
      if (ready && readyAt === null) { readyAt = performance.now(); say("Looking for your face…"); }
      if (readyAt !== null && performance.now() - readyAt > NO_FACE_MS) {
        shutdown();
        throw new Error("No face was found in the camera image. Sit facing the camera, in good light, " +
          "with your whole face visible, then reload this page.");
      }
      if (performance.now() - t0 > 120000) {
        shutdown();
        throw new Error("The face tracker did not start within two minutes.");
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    say("Face found.");

    g.framesSince = (t) => g.frames.reduce((n, fr) => n + (fr.t >= t ? 1 : 0), 0);
    g.featureSource.framesSince = g.framesSince;
    g.reset = () => { g.calib = []; g.models = null; };
    // Frames recorded while the participant looked at target (tx, ty) after clicking it.
    g.addCalibration = (tx, ty, rec) => {
      const t = rec.t_ms;
      if (!t.length) return;
      const from = t[0] + SETTLE_MS, to = t[t.length - 1];
      g.frames.filter((fr) => fr.t >= from && fr.t <= to).forEach((fr) => g.calib.push({ f: fr.f, x: tx, y: ty }));
    };
    g.fit = () => {
      const targets = new Set(g.calib.map((c) => `${c.x},${c.y}`));
      if (g.calib.length < 9 || targets.size < 5) {
        return { ok: false, message: `Your face was not tracked during the calibration (${g.calib.length} camera frames on ${targets.size} dots). Keep your face in view of the camera and try again.` };
      }
      const [fx, fy] = fitRidge(g.calib.map((c) => c.f), [g.calib.map((c) => c.x), g.calib.map((c) => c.y)]);
      g.models = { fx, fy };
      return { ok: true, n: g.calib.length };
    };
    g.current = () => {
      if (!g.models || !g.last || performance.now() - g.lastT > STALE_MS) return null;
      const x = g.models.fx(g.last), y = g.models.fy(g.last);
      return Number.isFinite(x) && Number.isFinite(y) ? { x, y } : null;
    };
    g.stop = shutdown;
    return g;
  }

  window.GazeWebcam = { start, features, fitRidge };
})();
