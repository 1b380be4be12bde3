"""Exception hierarchy: catch ``BytePieceError`` for anything this library raises on purpose."""

from __future__ import annotations


class BytePieceError(Exception):
    """Base class of every error bytepiece raises deliberately."""


class ModelFormatError(BytePieceError, ValueError):
    """A model file or dict is not a valid bytepiece model (the message names the problem)."""


class ModelNotFoundError(ModelFormatError, FileNotFoundError):
    """A model file that does not exist: a ``ModelFormatError`` as every problem with a model
    file is, and a ``FileNotFoundError`` for code that handles missing files as such."""


class InputError(BytePieceError, ValueError):
    """An argument or input text that bytepiece cannot process (the message names the fix)."""


class TrainingError(BytePieceError, ValueError):
    """A corpus or option combination from which no model can be trained."""


class WorkerLost(BytePieceError, RuntimeError):
    """A worker process ended without its result: killed, out of memory, or crashed."""
