"""Label tables as data: class ids, names, colours, counts. One place for every dataset."""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Russian Wildlife Dataset (classification). The order is the course's, NOT alphabetical.
# --------------------------------------------------------------------------------------------
WILDLIFE_CLASSES: tuple[str, ...] = (
    "amur_leopard",  # 0
    "amur_tiger",  # 1
    "birds",  # 2
    "black_bear",  # 3
    "brown_bear",  # 4
    "dog",  # 5
    "roe_deer",  # 6
    "sika_deer",  # 7
    "wild_boar",  # 8
    "people",  # 9
)
# images per class in the full dataset (11,668 in all): imbalanced, so report macro and weighted F1
WILDLIFE_COUNTS: dict[str, int] = dict(
    zip(WILDLIFE_CLASSES, (978, 1049, 1446, 975, 1209, 1213, 1124, 1539, 1435, 700))
)


def normalize_class_name(name: str) -> str:
    """Folder names in the wild vary in case and separators: `Amur Leopard` -> `amur_leopard`."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())
