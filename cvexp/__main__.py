"""`python -m cvexp ...` is the training entry point (cvexp.train)."""

from cvexp.train import main

if __name__ == "__main__":
    main()
