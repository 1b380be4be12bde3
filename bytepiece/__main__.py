"""``python -m bytepiece``: the ``bytepiece`` command, for environments where its script is not
on ``PATH`` (a virtual environment that is not activated, ``pipx run``, a notebook shell)."""

from bytepiece_cli.app import main

if __name__ == "__main__":
    main()
