"""Command-line group ``gazetune study`` (mounted by :mod:`gazetune.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Run a real-vs-fake study with gaze capture."""


@app.command("serve")
def serve(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="study.toml (see docs/study.md)."),
    demo: bool = typer.Option(False, "--demo", help="Built-in faces, demo synthetic images, no config file."),
    workdir: Path = typer.Option(Path("study_demo"), help="With --demo: folder for the database and data."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 to let other machines in)."),
    port: int = typer.Option(8000, help="TCP port."),
    database: Optional[str] = typer.Option(None, help="Override the config's database URL."),
) -> None:
    """Serve a study: participant page at /, dashboard at /admin?token=..."""
    import uvicorn

    from gazetune.study.app import create_app
    from gazetune.study.config import demo_config, load_study_config

    if (config is None) == (not demo):
        raise typer.BadParameter("give exactly one of --config study.toml or --demo")
    cfg = demo_config(workdir) if demo else load_study_config(config)
    if database:
        cfg.database = database
    token = cfg.ensure_admin_token()
    typer.echo("preparing stimuli and database ...", err=True)
    application = create_app(cfg)
    if cfg.gaze_mode == "tracker" or cfg.lsl_marker_streams:
        from gazetune.study.lsl import attach_lsl

        attach_lsl(application, cfg)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"participants: http://{shown}:{port}/?pid=PARTICIPANT_ID", err=True)
    typer.echo(f"dashboard:    http://{shown}:{port}/admin?token={token}", err=True)
    typer.echo(f"admin token:  {token}", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)
