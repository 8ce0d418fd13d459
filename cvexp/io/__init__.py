"""Files and the console: atomic writes, the one reader/writer of weights and checkpoint files
(with its allow-list), progress bars."""
