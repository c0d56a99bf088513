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
    workers: int = typer.Option(1, min=1, help="Server processes (not with gaze_mode tracker / LSL streams)."),
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
    uses_lsl = cfg.gaze_mode == "tracker" or bool(cfg.lsl_marker_streams)
    if workers > 1:
        if uses_lsl:
            raise typer.BadParameter("--workers > 1 cannot be used with LSL (gaze_mode tracker or "
                                     "lsl_marker_streams): one process must own the streams")
        _serve_workers(cfg, host, port, workers)
        return
    application = create_app(cfg)
    if uses_lsl:
        from gazetune.study.lsl import attach_lsl

        attach_lsl(application, cfg)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    typer.echo(f"participants: http://{shown}:{port}/?pid=PARTICIPANT_ID", err=True)
    typer.echo(f"dashboard:    http://{shown}:{port}/admin?token={token}", err=True)
    typer.echo(f"admin token:  {token}", err=True)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=False)


def _serve_workers(cfg, host: str, port: int, workers: int) -> None:  # noqa: ANN001
    """Prepare the database once, then let uvicorn start ``workers`` processes on it."""
    import os

    import uvicorn

    from gazetune.config import save_config
    from gazetune.study.app import CONFIG_ENV
    from gazetune.study.store import StudyStore

    StudyStore(cfg).db.dispose()  # migrations and stimuli, before the workers race for them
    path = Path(cfg.data_dir) / "resolved_study.toml"
    save_config(cfg, path)
    os.environ[CONFIG_ENV] = str(path.resolve())
    uvicorn.run("gazetune.study.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)


@app.command("import")
def import_(
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Recording: .asc, Tobii .tsv, Pupil Labs .csv, CSV."),
    format: Optional[str] = typer.Option(None, "--format", help="asc | tobii | pupil | csv"),
    participant: Optional[str] = typer.Option(None, "--participant", "-p", help="Participant id or external id."),
    trial: Optional[int] = typer.Option(None, "--trial", "-t", help="Trial index of that participant (0-based)."),
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="CSV: file, participant, trial[, format, start_ms, end_ms]."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The study's study.toml."),
    database: Optional[str] = typer.Option(None, help="Database URL (instead of, or overriding, --config)."),
    screen_px: Optional[tuple[int, int]] = typer.Option(None, "--screen-px", help="Pupil Labs: screen size W H in px."),
    start_ms: Optional[float] = typer.Option(None, help="Keep samples from this time (file clock, ms)."),
    end_ms: Optional[float] = typer.Option(None, help="Keep samples before this time (file clock, ms)."),
) -> None:
    """Store gaze recorded elsewhere with the study's trials (see docs/study.md)."""
    from gazetune.study.config import StudyConfig, load_study_config
    from gazetune.study.importing import ImportJob, import_file, read_mapping
    from gazetune.study.store import StudyError, StudyStore

    if config is None and database is None:
        raise typer.BadParameter("give --config study.toml or --database URL")
    if (mapping is None) == (file is None):
        raise typer.BadParameter("give either --file (with --participant and --trial) or --mapping")
    if mapping is not None:
        jobs = read_mapping(mapping, format)
    else:
        if not format or participant is None or trial is None:
            raise typer.BadParameter("--file needs --format, --participant and --trial")
        jobs = [ImportJob(file, format, participant, trial, start_ms, end_ms)]
    cfg = load_study_config(config) if config else StudyConfig(database=database)
    if database:
        cfg.database = database
    store = StudyStore(cfg)
    failed = 0
    for job in jobs:
        try:
            r = import_file(store, job, screen_px)
        except (StudyError, ValueError, FileNotFoundError) as e:
            failed += 1
            typer.echo(f"{job.file}: not imported: {getattr(e, 'message', e)}", err=True)
            continue
        what = "stored" if r["stored"] else "already stored"
        typer.echo(f"{job.file}: {r['n']} samples {what} with trial_id {r['trial_id']} "
                   f"(participant {job.participant}, trial {job.trial})")
    store.db.dispose()
    if failed:
        raise typer.Exit(1)
