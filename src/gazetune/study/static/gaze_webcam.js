// placeholder, replaced by the webcam gaze module
"use strict";
window.GazeWebcam = { start: async () => { throw new Error("webcam gaze is not available"); } };
