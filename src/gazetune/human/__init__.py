"""The model of the human judge (patent FIG. 5, ¶104-120, eq 11-15): where people look and what
they answer, learned from study trials.

* :mod:`~gazetune.human.model`: the joint (eq 11) and separate (eq 14-15) human-response models,
  safetensors save/load;
* :mod:`~gazetune.human.losses`: answer targets, response-time weights, eq 11/14/15, CYBORG, and
  the eq 12 generator term :class:`~gazetune.human.losses.HumanModelTerm`;
* :mod:`~gazetune.human.train`: targets from trials, training with a held-out split, scores;
* :mod:`~gazetune.human.predict`: P(real) and gaze maps of new images;
* :mod:`~gazetune.human.live`: training data straight from a running study server;
* :mod:`~gazetune.human.cli`: the ``gazetune human`` commands.

Import from the modules (``from gazetune.human.train import train_from_trials``); this package
file loads nothing, so ``gazetune --help`` stays fast.
"""
