"""The periodic two-node cycle (patent claims 10-11, ¶72, ¶121): the study server records
responses (node 1); the trainer node pulls them over HTTP, trains, and publishes a new generator.

* :mod:`gazetune.loop.trainer`: :class:`~gazetune.loop.trainer.Trainer` (one cycle: pull ->
  fixations -> maps -> M_saliency -> tune -> publish; crash-safe state folder),
  :func:`~gazetune.loop.trainer.run_loop`, :func:`~gazetune.loop.trainer.parse_duration`;
* :mod:`gazetune.loop.participants`: simulated participants that take part over real HTTP;
* :mod:`gazetune.loop.demo`: :func:`~gazetune.loop.demo.run_loop_demo`, the loop on loopback;
* :mod:`gazetune.loop.cli`: ``gazetune loop`` (:func:`~gazetune.loop.cli.loop_command`).

Submodules are imported on use (they pull in torch).
"""
