"""User-facing error types: each message names the file, the item and the fix."""


class SdscmError(Exception):
    """Base class for errors that the CLI and the pytest plugin print without a traceback."""


class SpecError(SdscmError):
    """A spec file is malformed or describes an invalid SD-SCM."""

    def __init__(self, path: str, item: str, problem: str) -> None:
        self.path, self.item, self.problem = path, item, problem
        super().__init__(f"{path}: {item}: {problem}")


class CacheError(SdscmError):
    """A cached dataset cannot be read or written."""


class ModelLoadError(SdscmError):
    """A language model could not be resolved or loaded."""


class InterventionError(SdscmError):
    """An intervention names an unknown or exogenous variable, or a value outside its candidates."""
