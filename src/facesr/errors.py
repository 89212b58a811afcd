"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class FacesrError(Exception):
    """A problem the user can fix (bad input, missing file, wrong option)."""


class InputError(FacesrError):
    """A bad input file: the message names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
