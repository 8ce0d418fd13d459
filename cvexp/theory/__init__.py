"""The theory behind the framework as runnable, tested code."""
