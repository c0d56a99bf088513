"""``python -m gazetune ...``: the same Typer app as the ``gazetune`` command (needed by
``torchrun -m gazetune ...``, see README "Several GPUs / processes")."""

from gazetune.cli import app

if __name__ == "__main__":  # pragma: no cover
    app(prog_name="gazetune")
