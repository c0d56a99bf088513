"""``python -m gazetune.study serve ...`` (same as ``gazetune study serve``)."""

from gazetune.study.cli import app

app(prog_name="gazetune study")
