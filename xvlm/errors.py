"""The one exception type for bad input, and the one for a failed multi-process run.

``BadInput`` is what the library raises when the user can fix the problem: a missing or malformed file,
an unknown config key, a preset that does not exist. The CLI prints it as one line naming the file and
the fix and exits 2; anything else is a bug and keeps its traceback (exit 1), ``--verbose`` or not.
It subclasses ``ValueError`` so callers that caught ``ValueError`` before keep working.
``DistributedFailure`` is a training process stopping because another process of its run failed.
"""

from __future__ import annotations


class BadInput(ValueError):
    """Input the user can fix (a file, a config key, a preset, a command-line value)."""


class MissingInput(BadInput, FileNotFoundError):
    """A file or folder the command needs does not exist (also a ``FileNotFoundError``)."""


class OutputExists(BadInput, FileExistsError):
    """The output a command would write is already there (and it was not asked to replace it)."""


class OutputFault(BadInput):
    """A folder the command writes (lake, shards, work dir) is read-only, full or not permitted: the
    message names the path and the OS's reason (``xvlm.fsio.output_fault``). Not an ``OSError`` on
    purpose: retrying it cannot help (flows/retry.py), and the CLI prints it as one line, exit 2."""


class ResourceLimit(BadInput):
    """A stage ran out of the memory or temporary disk it was given (DuckDB's ``memory_limit``, its spill
    folder): the message names the stage, the limit and the folder, and how to give it more."""


class BadKey(BadInput, KeyError):
    """A name the user gave (a model config, a sample key, a checkpoint tensor) is not known (also a
    ``KeyError``). ``str()`` is the plain message, not KeyError's quoted repr."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DistributedFailure(RuntimeError):
    """A collective of a multi-process run failed or timed out: another rank crashed, hung or was stopped.
    The message names this rank and where it stopped; the cause is in the first failing rank's log."""
