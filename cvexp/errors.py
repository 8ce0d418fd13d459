"""Errors a user can cause. Entry points print them as one line and exit non-zero."""


class CvexpError(Exception):
    """A problem with the user's data, files or config; the message names the file or key and the fix."""


class DataError(CvexpError):
    """Missing or malformed dataset."""


class CheckpointError(CvexpError):
    """A checkpoint or weights file that cannot be used as asked."""


class ConfigError(CvexpError):
    """A config value that cannot work."""


class RunDirError(CvexpError):
    """Refusal to write into a finished run's directory."""


class DivergenceError(CvexpError):
    """Training produced a non-finite loss; the run stops and keeps its earlier checkpoints."""
