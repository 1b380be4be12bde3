"""Files: outputs that appear complete or not at all (``atomic``, with the commit ``journal``
and its ``recovery``), reads that trust nothing about the path they are given (``read``), the
user's ``secret`` that authenticates what bytepiece leaves on disk for itself, and the removal
of what killed runs left behind (``stale``)."""
