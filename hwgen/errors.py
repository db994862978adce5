"""The one error type users see: the CLI prints its message on one line and exits non-zero."""


class HwgenError(Exception):
    """A problem with the user's input (file, layer, parameters), stated in one line."""

    exit_code = 2
