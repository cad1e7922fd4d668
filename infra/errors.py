"""The one error type the platform raises for problems a user can fix."""


class PlatformError(Exception):
    """A problem with input or configuration: says what was wrong, where, and what to do.

    `featctl` prints these as one line (no traceback); everything else is a bug and keeps its traceback.
    """

    def __init__(self, what: str, fix: str | None = None):
        super().__init__(what if fix is None else f"{what} (fix: {fix})")
        self.what = what
        self.fix = fix
