"""``python -m envfence``: the command line."""

from envfence.cli import main

if __name__ == "__main__":
    main()
