"""python -m cvexp.theory: print the demonstration tables behind docs/theory.md."""

from __future__ import annotations

from cvexp.theory.demos import render_all


def main() -> None:
    print(render_all())


if __name__ == "__main__":
    main()
