"""``python -m fasterapi run APP``: the same command as the ``fasterapi`` console script."""

from fasterapi.cli import main

if __name__ == "__main__":
    main(prog_name="fasterapi")
