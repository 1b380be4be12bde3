"""The ``bytepiece`` command line: thin typer commands over the library (installed as ``bytepiece_cli``)."""
