"""User-facing errors.

Anything a user can cause (bad file, bad option, corrupt stream) raises a subclass of
:class:`JaxcodecError`. The CLI prints its message on one line and exits non-zero; any
other exception is a bug in jaxcodec and keeps its traceback.
"""


class JaxcodecError(Exception):
    """An error caused by user input; the message must say what is wrong and where."""

    exit_code = 2


class ConfigError(JaxcodecError):
    """A configuration name, key or value that does not exist or is out of range."""


class InputError(JaxcodecError):
    """A video file that cannot be read (missing, bad header, unsupported format)."""


class BitstreamError(JaxcodecError):
    """A bitstream that is truncated, corrupt, or of an unsupported version."""


class ModelError(JaxcodecError):
    """A model file that is missing, of the wrong version, shape or checksum."""


class CodecUnavailableError(JaxcodecError):
    """A standard codec that the installed FFmpeg does not provide."""
