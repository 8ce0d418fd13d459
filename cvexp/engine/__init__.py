"""What every entry point shares, one concept a module (only entry points and this package know Hydra):

- `rundir`:  a run directory's books: status.json, metrics.json, atomic writes, refusals that keep
             finished runs and foreign folders safe.
- `entry`:   the Hydra wrapper around a job: config checks, status, signals, exit codes.
- `schema`:  typed checks of a composed config before any work.
- `build`:   objects from config (data module, model, task, trainer), also from a checkpoint's
             stored config through the allow-list in `cvexp.io.checkpoint`.
- `results`: a finished run's files (metrics.json, tables, plots) and the console summary.
- `resume`:  continuing an interrupted run in its own directory.
"""
