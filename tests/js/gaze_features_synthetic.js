// Synthetic checks of src/gazetune/study/static/gaze_features.js, run by
// tests/test_study_gaze_features.py with node.  Prints one JSON object of measurements; the
// Python test holds the thresholds.
//
// The synthetic face: a rigid set of the landmarks the module reads (millimetres, head frame:
// x to the subject's left, y down, z into the head), two eyeballs (radius 12 mm) whose iris
// points at a gaze target, and optional expression changes.  It is placed in front of a camera
// (pinhole, f = 600 px, 640 x 480) mounted at the top centre of a screen, and turned into Face
// Mesh-like normalised landmarks.
"use strict";

const path = require("path");
const GF = require(path.join(__dirname, "../../src/gazetune/study/static/gaze_features.js"));

// ---------------------------------------------------------------- a seeded random source
let seed = 12345;
function rand() { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; }
function gauss() { return Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand()); }

// ---------------------------------------------------------------- the face
const EYE_BALL_R = 12;
function template(expr = {}) {
  const brow = expr.brow || 0, smile = expr.smile || 0, open = expr.mouthOpen || 0;
  const T = {
    33: [-45, 0, 0], 133: [-15, 0, 0], 263: [45, 0, 0], 362: [15, 0, 0],
    159: [-30, -5, -2], 145: [-30, 5, -2], 386: [30, -5, -2], 374: [30, 5, -2],
    127: [-68, -25, 45], 356: [68, -25, 45], 234: [-72, 15, 50], 454: [72, 15, 50],
    10: [0, -75, -5], 152: [0, 85, -5], 168: [0, -5, -15], 1: [0, 35, -30],
    105: [-30, -22 - brow, -5], 334: [30, -22 - brow, -5], 107: [-12, -20 - brow, -8], 336: [12, -20 - brow, -8],
    61: [-25 - 3 * smile, 55 - smile, -8], 291: [25 + 3 * smile, 55 - smile, -8],
    13: [0, 52 - open / 2, -12], 14: [0, 56 + open / 2, -12],
  };
  return T;
}
const EYE_CENTRE = { 468: [-30, 0, EYE_BALL_R - 2], 473: [30, 0, EYE_BALL_R - 2] };  // eyeball centres

function rotation(yaw, pitch, roll) {  // Ry(yaw) Rx(pitch) Rz(roll)
  const mm = (A, B) => A.map((r) => B[0].map((_, j) => r.reduce((s, v, k) => s + v * B[k][j], 0)));
  const cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
  const cr = Math.cos(roll), sr = Math.sin(roll);
  return mm(mm([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], [[1, 0, 0], [0, cp, -sp], [0, sp, cp]]),
    [[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]]);
}
const apply = (R, v) => R.map((r) => r[0] * v[0] + r[1] * v[1] + r[2] * v[2]);
const applyT = (R, v) => [0, 1, 2].map((j) => R[0][j] * v[0] + R[1][j] * v[1] + R[2][j] * v[2]);

// Landmarks of the face at head pose (R, T mm, camera frame), looking at screen point (sx, sy) mm
// (camera at the origin, screen in the plane z = 0, y down).  proj: "perspective" or "ortho".
function landmarks(R, T, target, opts = {}) {
  const f = 600, W = 640, H = 480, noise = opts.noise || 0;
  const pts = Object.assign({}, template(opts.expr));
  if (target) {
    for (const [iris, c] of Object.entries(EYE_CENTRE)) {
      const E = apply(R, c).map((v, k) => v + T[k]);
      const g = [target[0] - E[0], target[1] - E[1], -E[2]];
      const n = Math.hypot(...g);
      const gh = applyT(R, g.map((v) => v / n));
      pts[iris] = c.map((v, k) => v + EYE_BALL_R * gh[k]);
    }
  } else {
    pts[468] = [-30, 0, -2]; pts[473] = [30, 0, -2];
  }
  const lm = new Array(478).fill(null).map(() => ({ x: 0.5, y: 0.5, z: 0 }));
  for (const [i, p] of Object.entries(pts)) {
    const C = apply(R, p).map((v, k) => v + T[k]);
    let x, y, z;
    if (opts.proj === "ortho") {
      x = (C[0] * f / T[2] + W / 2) / W; y = (C[1] * f / T[2] + H / 2) / H; z = (C[2] - T[2]) * f / T[2] / W;
    } else {
      x = (C[0] * f / C[2] + W / 2) / W; y = (C[1] * f / C[2] + H / 2) / H; z = (C[2] - T[2]) * f / T[2] / W;
    }
    lm[i] = { x: x + noise * gauss(), y: y + noise * gauss() * W / H, z: z + noise * gauss() };
  }
  return lm;
}

const DEG = Math.PI / 180;
const out = {};

// ---------------------------------------------------------------- 1. head pose is recovered
{
  const cases = [[0, 0, 0], [20, 0, 0], [0, 15, 0], [0, 0, -12], [-25, 10, 8], [15, -12, -20], [30, 20, 15]];
  const errOrtho = [], errPersp = [];
  for (const [y, p, r] of cases) {
    const R = rotation(y * DEG, p * DEG, r * DEG);
    // orthographic: the face on the camera's axis (no perspective to undo); perspective: the
    // face 150 mm below the camera, seen from 14 degrees above
    for (const [proj, T, errs] of [["ortho", [0, 0, 600], errOrtho], ["perspective", [0, 150, 600], errPersp]]) {
      const pose = GF.headPose(landmarks(R, T, null, { proj }), 640 / 480);
      errs.push(Math.max(Math.abs(pose.yaw / DEG - y), Math.abs(pose.pitch / DEG - p), Math.abs(pose.roll / DEG - r)));
    }
  }
  out.pose_max_err_deg_ortho = Math.max(...errOrtho);
  out.pose_max_err_deg_perspective = Math.max(...errPersp);
  // translation and scale move with the head
  const R0 = rotation(0, 0, 0);
  const a = GF.headPose(landmarks(R0, [0, 150, 600], null), 4 / 3);
  const b = GF.headPose(landmarks(R0, [50, 150, 600], null), 4 / 3);
  const c = GF.headPose(landmarks(R0, [0, 150, 450], null), 4 / 3);
  out.tx_moves_right = b.tx > a.tx;
  out.scale_ratio_closer = c.scale / a.scale;  // about 600 / 450
}

// ---------------------------------------------------------------- 2. regression across head positions
// Screen: 520 x 320 mm below the camera (top edge 10 mm below it), 3.78 px/mm.
const PPM = 3.78;
const SCREEN = { left: -260, top: 10, w: 520, h: 320 };
const toPx = (t) => [(t[0] - SCREEN.left) * PPM, (t[1] - SCREEN.top) * PPM];
const CAL = [[0.1, 0.1], [0.5, 0.1], [0.9, 0.1], [0.1, 0.5], [0.5, 0.5], [0.9, 0.5], [0.1, 0.9], [0.5, 0.9], [0.9, 0.9]];
const mmOf = ([fx, fy]) => [SCREEN.left + fx * SCREEN.w, SCREEN.top + fy * SCREEN.h];
const HOME = { T: [0, 180, 600], yaw: 0, pitch: 0, roll: 0 };

// A head pose near `base`, jittered (mm and degrees), as people sit still during a calibration.
function near(base, jmm, jdeg) {
  return {
    T: base.T.map((v) => v + jmm * gauss()), yaw: base.yaw + jdeg * gauss(),
    pitch: base.pitch + jdeg * gauss(), roll: base.roll + jdeg * gauss(),
  };
}
function frame(pose, targetMm, set) {
  const R = rotation(pose.yaw * DEG, pose.pitch * DEG, pose.roll * DEG);
  return GF.features(landmarks(R, pose.T, targetMm, { noise: 0.0004 }), { aspect: 4 / 3, set });
}

function calibrate(cset, fset, base, frames = 12) {
  for (const t of CAL) {
    const pose = near(base, 12, 2.5);  // the head wanders a little from target to target
    const mm = mmOf(t);
    const fs = [];
    for (let k = 0; k < frames; k++) fs.push(frame(near(pose, 1, 0.3), mm, fset));
    const [px, py] = toPx(mm);
    cset.add(px, py, fs);
  }
}

function meanError(model, pose, fset, n = 40) {
  let s = 0;
  for (let k = 0; k < n; k++) {
    const mm = [SCREEN.left + (0.1 + 0.8 * rand()) * SCREEN.w, SCREEN.top + (0.1 + 0.8 * rand()) * SCREEN.h];
    const f = frame(near(pose, 1, 0.3), mm, fset);
    const [px, py] = toPx(mm);
    s += Math.hypot(model.fx(f) - px, model.fy(f) - py);
  }
  return s / n;
}

const SHIFTS = {
  home: HOME,
  left_60mm: { T: [-60, 180, 600], yaw: 0, pitch: 0, roll: 0 },
  closer_100mm_yaw8: { T: [20, 170, 500], yaw: 8, pitch: 0, roll: 0 },
  down_40mm_pitch6_roll5: { T: [0, 220, 620], yaw: 0, pitch: 6, roll: 5 },
};
const REPS = 5;
out.regression = {};
for (const fset of ["sight", "pose", "plane"]) {
  const errs = {};
  const acc = (k, v) => { errs[k] = (errs[k] || 0) + v / REPS; };
  for (let rep = 0; rep < REPS; rep++) {
    const cset = new GF.CalibrationSet();
    calibrate(cset, fset, HOME);
    const model = cset.fit();
    for (const [name, pose] of Object.entries(SHIFTS)) acc(name, meanError(model, pose, fset));
    // drift check at the shifted position: the centre target's frames join the set, re-fit
    const shifted = SHIFTS.closer_100mm_yaw8;
    const centre = mmOf([0.5, 0.5]);
    const fs = [];
    for (let k = 0; k < 10; k++) fs.push(frame(near(shifted, 1, 0.3), centre, fset));
    const [cx, cy] = toPx(centre);
    cset.add(cx, cy, fs, "drift");
    const refit = cset.fit();
    acc("closer_100mm_yaw8_after_refit", meanError(refit, shifted, fset));
    acc("home_after_refit", meanError(refit, HOME, fset));
    errs.fits = cset.fits;
  }
  out.regression[fset] = errs;
}

// ---------------------------------------------------------------- 3. the calibration set's cap and weights
{
  const set = new GF.CalibrationSet({ maxDrift: 3 });
  for (const t of CAL) set.add(t[0], t[1], [[1, 2]]);
  for (let k = 0; k < 5; k++) set.add(k, k, [[k, k]], "drift");
  const g = set.groups();
  out.cap = { groups: g.length, drift_x: g.slice(9).map((d) => d.x), weights: g.slice(8).map((d) => d.weight) };
}

// ---------------------------------------------------------------- 4. expression scores
{
  const R = rotation(0, 0, 0), Rt = rotation(20 * DEG, -10 * DEG, 8 * DEG);
  const T = [0, 0, 600];  // on the camera's axis: orthographic projection needs no perspective undone
  const e0 = GF.expression(landmarks(R, T, null, { proj: "ortho" }), 4 / 3);
  const eTurned = GF.expression(landmarks(Rt, T, null, { proj: "ortho" }), 4 / 3);
  const eBrow = GF.expression(landmarks(R, T, null, { proj: "ortho", expr: { brow: 6 } }), 4 / 3);
  const eSmile = GF.expression(landmarks(R, T, null, { proj: "ortho", expr: { smile: 4 } }), 4 / 3);
  const eOpen = GF.expression(landmarks(R, T, null, { proj: "ortho", expr: { mouthOpen: 15 } }), 4 / 3);
  out.expression = {
    neutral: e0,
    max_change_when_turned: Math.max(...GF.EXPRESSION_NAMES.map((k) => Math.abs(eTurned[k] - e0[k]))),
    brow_raise_up: eBrow.brow_raise - e0.brow_raise,
    smile_up: eSmile.smile - e0.smile,
    mouth_width_up: eSmile.mouth_width - e0.mouth_width,
    mouth_open_up: eOpen.mouth_open - e0.mouth_open,
    brow_raise_unchanged_by_smile: Math.abs(eSmile.brow_raise - e0.brow_raise),
    mean: GF.meanExpression([e0, eBrow]),
  };
}

process.stdout.write(JSON.stringify(out));
