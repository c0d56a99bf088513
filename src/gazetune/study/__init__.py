"""gazetune.study: the blinded real-vs-fake study with gaze capture (patent FIG. 1-2, ¶51-58).

``gazetune study serve --config study.toml`` (or ``--demo``) runs the server of
:mod:`gazetune.study.app`; participants use the page it serves, researchers the dashboard and
exports, and the trainer node pulls responses and publishes generator versions over HTTP.
:class:`gazetune.study.runner.StudyServer` starts one as a child process (tests, benchmarks, demo).
"""
