"""The errors a user can cause; the CLI prints them as one clear line and exits non-zero."""

from __future__ import annotations


class DmlsweepError(Exception):
    """Bad input or an unusable environment; the message names the problem."""


class SpaceError(DmlsweepError):
    """A malformed or unknown search-space file."""


class ResourceError(DmlsweepError):
    """A resource request the cluster cannot satisfy."""
