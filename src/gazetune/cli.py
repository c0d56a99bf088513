"""The ``gazetune`` command line: one Typer app, each sub-command a thin call into a package.

Sub-command groups live beside the code they drive (``gazetune/<stage>/cli.py``) and are
mounted here, so the command tree follows the data flow.
"""

from __future__ import annotations

import typer

from gazetune import __version__
from gazetune.evaluate.cli import app as eval_app
from gazetune.gaze.cli import app as gaze_app
from gazetune.guide.cli import app as guide_app
from gazetune.saliency.cli import app as saliency_app
from gazetune.study.cli import app as study_app
from gazetune.tune.cli import app as gan_app
from gazetune.human.cli import app as human_app
from gazetune.demo import demo_command
from gazetune.loop.cli import LoopCommand, loop_command
from gazetune.refine.cli import app as refine_app

app = typer.Typer(
    name="gazetune",
    help="Make generative image models realistic where people look.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(gaze_app, name="gaze", help="Gaze samples -> fixations -> heatmaps, scanpaths, overlays.")
app.add_typer(saliency_app, name="saliency", help="Train and evaluate the saliency model M_saliency (eq 4-8).")
app.add_typer(gan_app, name="gan", help="Pretrain a GAN and tune it with gaze maps (eq 1-2, 9a-10b).")
app.add_typer(human_app, name="human", help="Model of the human judge: gaze + real/fake verdict (FIG. 5, eq 11-15).")
app.add_typer(study_app, name="study", help="Run a real-vs-fake study with gaze capture.")
app.add_typer(eval_app, name="eval", help="Evaluate generators and studies.")
app.add_typer(refine_app, name="refine", help="Refine the outputs of a generator you cannot tune (SimGAN, gaze-weighted).")
app.add_typer(guide_app, name="guide", help="Gaze guidance: change an image so people look where you want (seed 001).")
app.command("demo")(demo_command)
app.command("loop", cls=LoopCommand)(loop_command)


@app.command("version")
def version() -> None:
    """Print the gazetune version."""
    typer.echo(__version__)


if __name__ == "__main__":  # pragma: no cover
    app()
