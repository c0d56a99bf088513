// gazetune study: what the webcam gaze model reads from one frame of face landmarks.  Pure
// functions (no DOM, no camera), loaded by the page as window.GazeFeatures and by node's
// require() in the tests.
//
// Landmarks are MediaPipe Face Mesh's (478 with irises, refineLandmarks): x, y normalised by the
// image width and height, z relative depth on the scale of x (smaller = closer to the camera).
// Everything here first converts them to one unit, the image height: X = x * aspect, Y = y,
// Z = z * aspect (aspect = image width / height).  Axes: X right in the image, Y down, Z away
// from the camera (a right-handed frame).
//
// Head pose (no face model file needed): the head's axes are read from the landmarks themselves.
//   ex (the head's left-right axis) = sum of the vectors from the right-hand to the left-hand
//        landmark of 4 symmetric pairs (outer and inner eye corners, temples, face sides);
//   ey (down the face) = the vector from the top of the forehead to the chin, made orthogonal
//        to ex (Gram-Schmidt); ez = ex x ey (into the head).
// R = [ex ey ez] (columns) = Ry(yaw) Rx(pitch) Rz(roll), so
//   pitch = asin(-R[1][2]), yaw = atan2(R[0][2], R[2][2]), roll = atan2(R[1][0], R[1][1]).
// For a face looking straight into the camera with its eye line level all three are 0; pitch
// carries a constant offset of the person's own forehead-chin line (harmless for the regression).
// Translation = centroid of the stable landmarks (X, Y), scale = mean 3D length of the pair
// vectors (invariant to rotation, grows as the head comes closer).
"use strict";

(function (root, factory) {
  const api = factory();
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.GazeFeatures = api;
})(typeof self !== "undefined" ? self : this, function () {
  // Landmark indices of the refined face mesh.
  const EYE_R = { outer: 33, inner: 133, upper: 159, lower: 145, iris: 468, brow: 105, browInner: 107 };
  const EYE_L = { outer: 263, inner: 362, upper: 386, lower: 374, iris: 473, brow: 334, browInner: 336 };
  const NOSE = 1;
  const FOREHEAD = 10, CHIN = 152;
  const PAIRS = [[33, 263], [133, 362], [127, 356], [234, 454]];  // subject's right, left
  const STABLE = [33, 263, 133, 362, 127, 356, 234, 454, 10, 152, 168, NOSE];
  const MOUTH = { right: 61, left: 291, upper: 13, lower: 14 };
  const EXPRESSION_NAMES = ["eye_open", "brow_raise", "brow_gap", "mouth_open", "mouth_width", "smile"];

  const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
  const add = (a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]];
  const mul = (a, s) => [a[0] * s, a[1] * s, a[2] * s];
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  const norm = (a) => Math.sqrt(dot(a, a));
  const unit = (a) => mul(a, 1 / (norm(a) || 1));
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const mid = (a, b) => mul(add(a, b), 0.5);

  const DEFAULT_FOV_DEG = 60;  // horizontal field of view assumed for the webcam (typical: 55-70)

  // Landmarks (objects {x, y, z}) to points in image-height units, corrected for the camera's
  // perspective: a face off the camera's axis is seen from the side (at the angle of the ray to
  // it), which shears the landmarks by (x_n, y_n) * depth, x_n, y_n = the ray's slope; the shear
  // is undone so that the pose is the pose in the camera's frame.  Also returns the centroid of
  // the stable landmarks and the focal length (image-height units).
  function points(lm, aspect, fovDeg) {
    const a = aspect || 4 / 3;
    const raw = (i) => [lm[i].x * a, lm[i].y, (lm[i].z || 0) * a];
    let c = [0, 0, 0];
    for (const i of STABLE) c = add(c, mul(raw(i), 1 / STABLE.length));
    const f = a / 2 / Math.tan(((fovDeg || DEFAULT_FOV_DEG) * Math.PI) / 360);
    const xn = (c[0] - a / 2) / f, yn = (c[1] - 0.5) / f;
    const P = (i) => { const p = raw(i); return [p[0] + xn * (p[2] - c[2]), p[1] + yn * (p[2] - c[2]), p[2]]; };
    return { P, c, f, xn, yn };
  }

  // Head pose of one frame: {yaw, pitch, roll} in radians, axes ex, ey, ez, translation tx, ty
  // (image-height units), scale, and the ray's slopes xn, yn and focal length f.
  function headPose(lm, aspect, fovDeg) {
    const { P, c, f, xn, yn } = points(lm, aspect, fovDeg);
    let sx = [0, 0, 0], scale = 0;
    for (const [r, l] of PAIRS) {
      const v = sub(P(l), P(r));
      sx = add(sx, v);
      scale += norm(v) / PAIRS.length;
    }
    const ex = unit(sx);
    const down = sub(P(CHIN), P(FOREHEAD));
    const ey = unit(sub(down, mul(ex, dot(down, ex))));
    const ez = cross(ex, ey);
    const pitch = Math.asin(Math.max(-1, Math.min(1, -ez[1])));
    const yaw = Math.atan2(ez[0], ez[2]);
    const roll = Math.atan2(ex[1], ey[1]);
    return { yaw, pitch, roll, ex, ey, ez, tx: c[0], ty: c[1], scale, xn, yn, f, P };
  }

  // A vector in the head's frame (x along ex, y along ey), divided by `len`.
  const inHead = (v, pose, len) => [dot(v, pose.ex) / len, dot(v, pose.ey) / len];

  // Iris of one eye relative to the eye's centre, in the head's frame, in eye widths; and the
  // eye's openness (lid distance / eye width).
  function eyeInHead(P, e, pose) {
    const o = P(e.outer), i = P(e.inner);
    const w = norm(sub(o, i)) || 1;
    const [hx, hy] = inHead(sub(P(e.iris), mid(o, i)), pose, w);
    const open = Math.abs(inHead(sub(P(e.lower), P(e.upper)), pose, w)[1]);
    return [hx, hy, open];
  }

  // Where the eye's line of sight meets the plane of the camera (the screen's plane), in mm of
  // the camera's frame (x right in the image, y down), from a model of the head and eye:
  //   * distance Z = f * FACE_MM / scale (FACE_MM: the mean length of the pair vectors of a
  //     typical adult face), the eye's position X, Y from its image position and Z;
  //   * the eye turned in the head by asin(iris offset * EYE_W_OVER_R) (eye width / eyeball
  //     radius, about 30 mm / 12 mm), then by the head's rotation.
  // A rough estimate (FACE_MM, EYE_W_OVER_R and the field of view are typical values, not the
  // participant's); the regression maps it to the screen, and it moves with the head the way
  // gaze does, so a calibration at one head position carries over to others.
  const FACE_MM = 100, EYE_W_OVER_R = 2.5;
  function sightOnScreen(P, e, pose, hx, hy) {
    const o = P(e.outer), i = P(e.inner);
    const c = mid(o, i);
    const Z = (pose.f * FACE_MM) / (pose.scale || 1e-9);
    const E = [((c[0] - pose.aspect / 2) / pose.f) * Z, ((c[1] - 0.5) / pose.f) * Z, Z];
    const clamp = (v) => Math.max(-0.95, Math.min(0.95, v));
    const sx = clamp(hx * EYE_W_OVER_R), sy = clamp(hy * EYE_W_OVER_R);
    const sz = -Math.sqrt(Math.max(0.05, 1 - sx * sx - sy * sy));
    const d = add(add(mul(pose.ex, sx), mul(pose.ey, sy)), mul(pose.ez, sz));
    const t = d[2] < -1e-3 ? -Z / d[2] : Z / 1e-3;
    return [E[0] + t * d[0], E[1] + t * d[1]];
  }

  // The feature vector of one frame, by `opts.set`:
  //   "sight" (default): where the lines of sight of the two eyes meet the screen's plane (x, y,
  //     mean of the eyes, mm; sightOnScreen, which reads the head's yaw, pitch, roll, position
  //     and distance) and the eyes' openness: 3 numbers;
  //   "pose": "sight" plus the raw pose and eye numbers as linear terms (iris of each eye in the
  //     head's frame, yaw, pitch, roll, tx, ty, scale): 13 numbers.  Fitted on 9 calibration
  //     dots these extra terms mostly fit the head's small wanderings during the calibration and
  //     extrapolate badly (tests/js/gaze_features_synthetic.js), hence not the default;
  //   "plane": the features gazetune used before head pose (iris along and across each eye in
  //     the image plane, openness, nose x, y, face size, nose depth): 9 numbers.
  // opts.aspect: image width / height; opts.fovDeg: the camera's horizontal field of view.
  function features(lm, opts = {}) {
    const aspect = opts.aspect || 4 / 3;
    const set = opts.set || "sight";
    if (set === "plane") return planeFeatures(lm);
    const pose = headPose(lm, aspect, opts.fovDeg);
    pose.aspect = aspect;
    const P = pose.P;
    const r = eyeInHead(P, EYE_R, pose), l = eyeInHead(P, EYE_L, pose);
    const gr = sightOnScreen(P, EYE_R, pose, r[0], r[1]), gl = sightOnScreen(P, EYE_L, pose, l[0], l[1]);
    const g = [(gr[0] + gl[0]) / 2, (gr[1] + gl[1]) / 2];
    const open = (r[2] + l[2]) / 2;
    if (set === "sight") return [g[0], g[1], open];
    if (set !== "pose") throw new Error(`unknown feature set ${set}`);
    return [g[0], g[1], r[0], r[1], l[0], l[1], open, pose.yaw, pose.pitch, pose.roll, pose.tx, pose.ty, pose.scale];
  }

  function planeEye(lm, e) {
    const o = lm[e.outer], i = lm[e.inner], c = lm[e.iris];
    const ax = o.x - i.x, ay = o.y - i.y;
    const w2 = ax * ax + ay * ay;
    const dx = c.x - i.x, dy = c.y - i.y;
    const open = Math.hypot(lm[e.upper].x - lm[e.lower].x, lm[e.upper].y - lm[e.lower].y) / Math.sqrt(w2);
    return [(dx * ax + dy * ay) / w2, (dx * -ay + dy * ax) / w2, open];
  }

  function planeFeatures(lm) {
    const r = planeEye(lm, EYE_R), l = planeEye(lm, EYE_L);
    const scale = Math.hypot(lm[EYE_R.outer].x - lm[EYE_L.outer].x, lm[EYE_R.outer].y - lm[EYE_L.outer].y);
    return [r[0], r[1], l[0], l[1], (r[2] + l[2]) / 2, lm[NOSE].x, lm[NOSE].y, scale, lm[NOSE].z || 0];
  }

  // Facial-expression scores of one frame, from landmark geometry in the head's frame (so head
  // rotation does not change them), lengths divided by the distance between the outer eye
  // corners (D) unless said otherwise:
  //   eye_open    lid distance / eye width, mean of both eyes
  //   brow_raise  height of the brow's middle (105, 334) above the eye's centre / D, mean of both
  //   brow_gap    distance between the inner ends of the brows (107, 336) / D (smaller = frown)
  //   mouth_open  distance between the inner lips (13, 14) / mouth width
  //   mouth_width distance between the mouth corners (61, 291) / D
  //   smile       height of the mouth corners above the middle of the lips / D (positive = the
  //               corners are raised)
  function expression(lm, aspect) {
    const pose = headPose(lm, aspect);
    const P = pose.P;
    const D = norm(sub(P(EYE_L.outer), P(EYE_R.outer))) || 1;
    const eye = (e) => eyeInHead(P, e, pose)[2];
    const browUp = (e) => -inHead(sub(P(e.brow), mid(P(e.outer), P(e.inner))), pose, D)[1];
    const mw = norm(sub(P(MOUTH.left), P(MOUTH.right))) || 1;
    const lips = mid(P(MOUTH.upper), P(MOUTH.lower));
    const corners = mid(P(MOUTH.left), P(MOUTH.right));
    return {
      eye_open: (eye(EYE_R) + eye(EYE_L)) / 2,
      brow_raise: (browUp(EYE_R) + browUp(EYE_L)) / 2,
      brow_gap: norm(sub(P(EYE_L.browInner), P(EYE_R.browInner))) / D,
      mouth_open: Math.abs(inHead(sub(P(MOUTH.lower), P(MOUTH.upper)), pose, mw)[1]),
      mouth_width: mw / D,
      smile: inHead(sub(lips, corners), pose, D)[1],
    };
  }

  // Mean of per-frame expression scores: {n_frames, <name>: mean} (names without frames: null).
  function meanExpression(list) {
    const out = { n_frames: list.length };
    for (const k of EXPRESSION_NAMES) {
      const v = list.map((e) => e[k]).filter(Number.isFinite);
      out[k] = v.length ? v.reduce((s, x) => s + x, 0) / v.length : null;
    }
    return out;
  }

  // Solve A w = b for a small dense symmetric positive definite A (Gaussian elimination with
  // partial pivoting).
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

  // Weighted ridge regression on standardised features with an unpenalised intercept:
  // minimises sum_k w_k (y_k - f(x_k))^2 + lambda * sum(w) * |beta|^2.  Returns one predictor
  // x -> y per target in ys.
  function fitRidge(X, ys, weights, lambda = 0.01) {
    const n = X.length, d = X[0].length;
    const w = weights || new Array(n).fill(1);
    const W = w.reduce((s, v) => s + v, 0);
    const mean = new Array(d).fill(0), sd = new Array(d).fill(0);
    X.forEach((x, k) => x.forEach((v, j) => { mean[j] += w[k] * v / W; }));
    X.forEach((x, k) => x.forEach((v, j) => { sd[j] += w[k] * (v - mean[j]) ** 2 / W; }));
    for (let j = 0; j < d; j++) sd[j] = Math.sqrt(sd[j]) > 1e-12 ? Math.sqrt(sd[j]) : 1;
    const Z = X.map((x) => x.map((v, j) => (v - mean[j]) / sd[j]));
    const A = Array.from({ length: d }, () => new Array(d).fill(0));
    Z.forEach((z, k) => { for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) A[a][b] += w[k] * z[a] * z[b]; });
    for (let a = 0; a < d; a++) A[a][a] += lambda * W;
    return ys.map((y) => {
      const ym = y.reduce((s, v, k) => s + w[k] * v, 0) / W;
      const rhs = new Array(d).fill(0);
      Z.forEach((z, k) => { for (let a = 0; a < d; a++) rhs[a] += w[k] * z[a] * (y[k] - ym); });
      const beta = solve(A, rhs);
      return (x) => ym + x.reduce((s, v, j) => s + beta[j] * (v - mean[j]) / sd[j], 0);
    });
  }

  // The samples the regression is fitted on, grouped by target.  Calibration targets have weight
  // 1.  Drift-check targets are added on top (re-fit), the newest with weight DRIFT_WEIGHT, each
  // older one with DRIFT_DECAY times the weight of the next newer one; at most MAX_DRIFT of them
  // are kept (the oldest go).  A target keeps at most MAX_FRAMES frames.
  class CalibrationSet {
    constructor(opts = {}) {
      this.maxDrift = opts.maxDrift || 8;
      this.driftWeight = opts.driftWeight || 3;
      this.driftDecay = opts.driftDecay || 0.7;
      this.maxFrames = opts.maxFrames || 40;
      this.lambda = opts.lambda || 0.01;
      this.reset();
    }
    reset() { this.calib = []; this.drift = []; this.fits = 0; }
    // group: {x, y, frames: [feature vectors]}
    add(x, y, frames, kind = "calibration") {
      if (!frames.length) return;
      const g = { x, y, frames: frames.slice(-this.maxFrames) };
      if (kind === "drift") {
        this.drift.push(g);
        while (this.drift.length > this.maxDrift) this.drift.shift();
      } else {
        this.calib.push(g);
      }
    }
    // [{x, y, frames, weight}] of every group in the fit
    groups() {
      const nd = this.drift.length;
      return this.calib.map((g) => ({ ...g, weight: 1 })).concat(
        this.drift.map((g, k) => ({ ...g, weight: this.driftWeight * this.driftDecay ** (nd - 1 - k) })));
    }
    nFrames() { return this.calib.concat(this.drift).reduce((s, g) => s + g.frames.length, 0); }
    nTargets() { return new Set(this.calib.concat(this.drift).map((g) => `${g.x},${g.y}`)).size; }
    // {fx, fy} predictors (or null when there are too few frames or targets)
    fit(minFrames = 9, minTargets = 5) {
      if (this.nFrames() < minFrames || this.nTargets() < minTargets) return null;
      const X = [], xs = [], ys = [], w = [];
      for (const g of this.groups()) {
        for (const f of g.frames) { X.push(f); xs.push(g.x); ys.push(g.y); w.push(g.weight / g.frames.length); }
      }
      const [fx, fy] = fitRidge(X, [xs, ys], w, this.lambda);
      this.fits += 1;
      return { fx, fy };
    }
  }

  return {
    headPose, features, expression, meanExpression, fitRidge, solve, CalibrationSet,
    EXPRESSION_NAMES, LANDMARKS: { EYE_R, EYE_L, NOSE, FOREHEAD, CHIN, PAIRS, STABLE, MOUTH },
  };
});
