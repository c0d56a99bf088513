// gazetune study: webcam gaze in the page.
// MediaPipe Face Mesh (npm @mediapipe/face_mesh 0.4.1633559619, refineLandmarks: 478 landmarks with
// irises), served by the study server from /vendor/face_mesh/, finds the eyes in each camera frame.
// The features of each frame (gaze_features.js: head pose from the landmarks, and where the lines
// of sight meet the screen's plane given that pose) are mapped to screen x, y by a ridge regression
// fitted on the calibration targets and re-fitted with each drift check's target.  The same
// landmarks give expression scores, averaged per trial.  Camera frames never leave the page: only
// the predicted screen positions and the per-trial scores are sent.
"use strict";

(function () {
  const NO_FACE_MS = 6000;       // no face for this long after the model is ready -> message
  const SETTLE_MS = 250;         // skip the first frames after a target appears (eyes still moving)
  const HISTORY_MS = 120000;     // frames kept (calibration targets, a trial's expression scores)
  const STALE_MS = 500;          // a prediction older than this counts as lost
  const GF = window.GazeFeatures;  // gaze_features.js: head pose, features, ridge, expression

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
      name: "webcam", frames: [], last: null, lastT: -1, faceSeen: false, models: null,
      calib: new GF.CalibrationSet(), modelVersion: 0, refits: 0,
      featureSource: { name: "webcam", current: () => null },
    };
    const aspect = () => (video.videoWidth && video.videoHeight ? video.videoWidth / video.videoHeight : 4 / 3);
    mesh.onResults((res) => {
      const t = performance.now();
      const lm = res.multiFaceLandmarks && res.multiFaceLandmarks[0];
      if (!lm || lm.length < 478) { g.last = null; return; }
      g.faceSeen = true;
      const f = GF.features(lm, { aspect: aspect() });
      if (!f.every(Number.isFinite)) { g.last = null; return; }
      g.last = f;
      g.lastT = t;
      g.frames.push({ t, f, e: GF.expression(lm, aspect()) });
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
    g.reset = () => { g.calib.reset(); g.models = null; };
    // Frames recorded while the participant looked at target (tx, ty) after clicking it
    // (kind "calibration", or "drift" for a drift check's target, see refit).
    g.addCalibration = (tx, ty, rec, kind = "calibration") => {
      const t = rec.t_ms;
      if (!t.length) return 0;
      const from = t[0] + SETTLE_MS, to = t[t.length - 1];
      const fs = g.frames.filter((fr) => fr.t >= from && fr.t <= to).map((fr) => fr.f);
      g.calib.add(tx, ty, fs, kind);
      return fs.length;
    };
    g.fit = () => {
      const n = g.calib.nFrames(), k = g.calib.nTargets();
      const m = g.calib.fit();
      if (!m) {
        return { ok: false, message: `Your face was not tracked during the calibration (${n} camera frames on ${k} dots). Keep your face in view of the camera and try again.` };
      }
      g.models = m;
      g.modelVersion += 1;
      return { ok: true, n, model: g.modelVersion };
    };
    // After a drift check: its target's frames joined the set (addCalibration(..., "drift")),
    // fit again.  The calibration targets stay, the drift targets weigh more, the newest most.
    g.refit = () => {
      const m = g.calib.drift.length ? g.calib.fit() : null;
      if (!m) return { ok: false, model: g.modelVersion };
      g.models = m;
      g.modelVersion += 1;
      g.refits += 1;
      return { ok: true, model: g.modelVersion, n_drift_targets: g.calib.drift.length };
    };
    // What a trial's answer carries: the model it was predicted with and the mean expression
    // scores of the frames between onset and answer (numbers only).
    g.trialInfo = (t0, t1) => ({
      gaze_model: g.modelVersion,
      expression: GF.meanExpression(g.frames.filter((fr) => fr.t >= t0 && fr.t <= t1).map((fr) => fr.e)),
    });
    g.current = () => {
      if (!g.models || !g.last || performance.now() - g.lastT > STALE_MS) return null;
      const x = g.models.fx(g.last), y = g.models.fy(g.last);
      return Number.isFinite(x) && Number.isFinite(y) ? { x, y } : null;
    };
    g.stop = shutdown;
    return g;
  }

  window.GazeWebcam = { start };
})();
