"""``gazetune loop``: the trainer node of the two-node loop (claims 10-11), run periodically.

Mount with ``app.command("loop", cls=LoopCommand)(loop_command)`` (:data:`LoopCommand` accepts the
old option names).

Example::

    gazetune loop --server http://study-host:8000 --token $T --init runs/gan --every 30m --state loop_state
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from gazetune.cli_options import renamed

console = Console()

#: The command class of ``gazetune loop``: ``--real-images`` is the old name of ``--images``.
LoopCommand = renamed({"--real-images": "--images"})


def loop_command(
    server: str = typer.Option(..., help="Study server URL, e.g. http://study-host:8000."),
    token: str = typer.Option(..., envvar="GAZETUNE_ADMIN_TOKEN",
                              help="Admin token of the study server (or $GAZETUNE_ADMIN_TOKEN)."),
    every: str = typer.Option("30m", help="Period between cycles: 45s, 30m, 2h, 1h30m."),
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit (exit code 1 when it fails)."),
    state: Path = typer.Option(Path("loop_state"), help="State folder: cursor, versions, checkpoints, M_saliency."),
    init: Optional[Path] = typer.Option(None, help="Training checkpoint (or run folder) of the generator the "
                                                   "server shows as --init-version; needed for a new state folder."),
    init_version: int = typer.Option(1, help="Server generator version that --init is."),
    real_images: Optional[str] = typer.Option(None, "--images", help="The study's real images (folder, .npz, builtin:faces)."),
    min_new: Optional[int] = typer.Option(None, help="Run a cycle only with at least this many new responses."),
    tune_steps: Optional[int] = typer.Option(None, help="Generator tuning steps per cycle."),
    saliency_epochs: Optional[int] = typer.Option(None, help="M_saliency epochs per cycle."),
    batch: Optional[int] = typer.Option(None, help="Tuning batch size."),
    device: Optional[str] = typer.Option(None, help="torch device: cpu or cuda."),
    max_cycles: Optional[int] = typer.Option(None, help="Stop after this many cycles (default: run until Ctrl-C)."),
) -> None:
    """Trainer node: every --every, pull new study responses over HTTP, build gaze maps, update
    M_saliency, tune the generator and publish the new version to the study server."""
    from gazetune.loop.participants import quiet_http_logs
    from gazetune.loop.trainer import LoopConfig, LoopError, Trainer, parse_duration, run_loop

    quiet_http_logs()

    try:
        period = parse_duration(every)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--every") from None
    override: dict[str, Any] = {k: v for k, v in dict(
        real_images=real_images, min_new=min_new, tune_steps=tune_steps, saliency_epochs=saliency_epochs,
        batch=batch, device=device).items() if v is not None}
    cfg = LoopConfig(init_checkpoint=str(init) if init else "", init_version=init_version, **override)
    try:
        trainer = Trainer(server, token, state, cfg, override=override, log=lambda m: console.print(m))
    except LoopError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code=2) from None
    console.print(f"trainer node: server {server}, state {state}, a cycle every {period:.0f} s"
                  + (" (once)" if once else ""))
    try:
        results = run_loop(trainer, period, once=once, max_cycles=max_cycles)
    except KeyboardInterrupt:
        console.print("stopped")
        return
    except Exception as e:  # noqa: BLE001 -- with --once every failure ends here; the state is intact
        what = "" if isinstance(e, LoopError) else f"{type(e).__name__}: "
        console.print(f"[red]cycle failed (state and served version unchanged):[/red] {what}{e}")
        raise typer.Exit(code=1) from None
    finally:
        trainer.close()
    for r in results:
        console.print(f"cycle: {r.status}, version {r.version}, {r.n_responses} responses "
                      f"(cursor {r.cursor_from} -> {r.cursor_to}) in {r.seconds:.1f} s")


def main() -> None:  # pragma: no cover -- `python -m gazetune.loop.cli`
    app = typer.Typer(add_completion=False)
    app.command(cls=LoopCommand)(loop_command)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
