"""Training data of the human-response model straight from a running study server.

``gazetune human train --server URL --token T`` reads the same records as the trainer node of
``gazetune loop`` (the trainer API, :class:`gazetune.study.client.TrainerClient`): every answered
trial with its gaze samples (image pixels), its participant's viewing geometry and the shown
image, which the server returns as the exact PNG the participant saw.  Fixations are detected here
(I-VT or I-DT in each participant's own geometry, :func:`gazetune.study.client.responses_to_fixations`),
so a live server and an export (``gazetune study`` ``fixations.csv``) give the model the same
kind of targets.  Nothing is written to the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gazetune.gaze.geometry import ScreenGeometry
from gazetune.trials import TrialTable


@dataclass
class LiveStudyData:
    """What :func:`trials_from_server` read.

    Attributes
    ----------
    trials : gazetune.trials.TrialTable
        One row per answered trial (images named as in fixation tables: real file name or
        ``synthetic/<server version>/<seed>``; participants by server id).
    images : float32 ``(N, C, H, W)`` in [-1, 1]
        The shown images, in the pixels the fixations are in.
    names : list of str
        Name of each image in ``images``.
    answer_scale : str
        ``binary`` or ``1-5`` (from the server's study config; the real end is high).
    info : dict
        Counts: responses, trials without an answer (timed out), trials without gaze, trials on
        the fallback geometry, fixations, images, participants, last cursor.
    """

    trials: TrialTable
    images: np.ndarray
    names: list[str]
    answer_scale: str
    info: dict[str, Any] = field(default_factory=dict)


def trials_from_server(server: str, token: str, *, geometry: ScreenGeometry | None = None, method: str = "ivt",
                       page_size: int = 500, timeout_s: float = 300.0, progress: bool = False) -> LiveStudyData:
    """Every answered trial of a live study server, with fixations and the shown images.

    Parameters
    ----------
    server, token
        Base URL (``http://host:port``) and the admin token the server printed at start.
    geometry
        Fallback viewing geometry for participants whose browser measured nothing (default
        :class:`ScreenGeometry`).
    method
        Fixation detection: ``ivt`` or ``idt``.
    page_size
        Responses per request (1..1000).
    progress
        Show a progress bar while the images are fetched.

    Raises
    ------
    gazetune.study.client.TrainerError
        Server unreachable, token refused, or an inconsistent record (the message says which).
    ValueError
        No answered trial, or shown images of different sizes.
    """
    from rich.progress import track

    from gazetune.images import decode_png
    from gazetune.study.client import TrainerClient, image_name, responses_to_fixations, trial_table_from_responses

    client = TrainerClient(server, token, timeout_s=timeout_s)
    try:
        responses, cursor = client.responses(0, page_size)
        answered = [r for r in responses if r.get("answer") is not None]
        if not answered:
            raise ValueError(f"the study server at {server} has no answered trial yet "
                             f"({len(responses)} response(s), none with an answer)")
        table, fstats = responses_to_fixations(answered, geometry or ScreenGeometry(), method)
        stimulus_of: dict[str, str] = {}
        for r in answered:
            stimulus_of.setdefault(image_name(r), r["stimulus_id"])
        names = sorted(stimulus_of)
        it = track(names, description="fetching shown images") if progress else names
        arrays = [decode_png(client.stimulus(stimulus_of[n])) for n in it]
    finally:
        client.close()
    shapes = {a.shape[1:] for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"the shown images differ in size ({sorted(shapes)}); the human model needs one size")
    channels = max(a.shape[0] for a in arrays)
    images = np.stack([np.repeat(a, channels, axis=0) if a.shape[0] != channels else a for a in arrays])
    trials = trial_table_from_responses(answered, table)
    info = {"responses": len(responses), "without_answer": len(responses) - len(answered),
            "trials_without_gaze": fstats["trials_without_gaze"],
            "trials_default_geometry": fstats["trials_default_geometry"], "fixations": fstats["fixations"],
            "fixations_off_image": fstats["fixations_off_image"], "images": len(names),
            "participants": len(set(trials.participant)), "cursor": int(cursor)}
    return LiveStudyData(trials, images.astype(np.float32), names, trials.scale.name, info)
