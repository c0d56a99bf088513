"""gazetune: make generative image models realistic where people look.

The package follows the data flow of the method (see README and docs):
``images`` -> ``study`` -> ``gaze`` -> ``saliency`` -> ``tune`` (with ``nets``) -> ``evaluate``,
with ``observers`` as simulated participants and ``loop`` for the periodic cycle.
"""

__version__ = "0.1.0"
