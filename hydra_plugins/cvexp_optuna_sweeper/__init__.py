"""cvexp's Hydra sweeper plugin: hyperparameter search with the Optuna library (`hydra/sweeper=optuna`).

It keeps the interface of Hydra's own `hydra-optuna-sweeper` (`hydra.sweeper.n_trials`, `direction`,
`sampler`, `storage`, `study_name`, `n_jobs`, `max_failure_rate`, and `params` in the override
syntax: `interval(1e-4, 1e-2)`, `tag(log, interval(...))`, `choice(a, b)`, `range(1, 5)`), which
pins optuna<3 and so cannot share an environment with a current Optuna, and adds pruning of
hopeless trials (`hydra/sweeper/pruner=median`, reported to by `cvexp.engine.callbacks.OptunaPruning`).
Why and how: docs/scaling.md.

Hydra imports every module here whose name does not start with "_" when it looks for plugins, so
those modules import only Hydra and OmegaConf; Optuna is imported when a sweep runs (`_impl`).
"""


def make_discoverable() -> None:
    """Let Hydra's plugin scan find this package in an editable install (`pip install -e .`).

    There, setuptools serves the package through an import hook, and `hydra_plugins.__path__` holds
    a placeholder for it that pkgutil (Hydra's scan) cannot list, so outside the repository's root
    `hydra/sweeper=optuna` is "not found". Adding the package's real folder to the namespace path
    fixes that; in a regular install (or when run from the repository's root) it is there already.
    Call before Hydra starts (cvexp's entry points do)."""
    import os

    import hydra_plugins

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = hydra_plugins.__path__
    if here not in [str(p) for p in path]:
        path.append(here)
