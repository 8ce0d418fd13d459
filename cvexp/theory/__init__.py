"""The theory behind the framework as runnable, tested code.

The stable loss functions (`cvexp.theory.losses`, also what the tasks train with), the
L2-regularisation experiments (`cvexp.theory.regularization`) and the demonstration tables
(`cvexp.theory.demos`) printed by `python -m cvexp.theory`. docs/theory.md explains them.
"""
