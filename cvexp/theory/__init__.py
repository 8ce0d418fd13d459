"""The theory behind the framework as runnable, tested code.

The loss functions live in `cvexp.losses`; this package holds the L2-regularisation experiments
(`cvexp.theory.regularization`) and the demonstration tables (`cvexp.theory.demos`) printed by
`python -m cvexp.theory`. docs/theory.md explains them.
"""
