"""One-shot imitation learning for block stacking (Duan et al., NeurIPS 2017), in PyBullet.

The simulation lives in the sibling package ``envs``; this package holds the learning side and the
``imitate`` command-line interface.
"""

__version__ = "0.8.0"
