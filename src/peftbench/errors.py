"""Errors peftbench raises on purpose, each naming what is wrong and how to fix it."""


class PeftbenchError(Exception):
    """Base class: the CLI prints these without a traceback."""


class ConfigError(PeftbenchError, ValueError):
    """A configuration value is missing, malformed or not allowed.

    `problems` holds one (field path, message) pair per fault so callers and tests can
    see every field at once instead of fixing them one run at a time.
    """

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        if len(problems) == 1:  # one fault, one line
            field, message = problems[0]
            super().__init__(f"invalid configuration{where}: {field}: {message}")
            return
        lines = [f"invalid configuration{where}:"]
        lines += [f"  - {field}: {message}" for field, message in problems]
        super().__init__("\n".join(lines))


class UnknownNameError(PeftbenchError, KeyError):
    """A registry was asked for a name it does not hold."""

    def __init__(self, kind: str, name: str, available: list[str]):
        self.kind, self.name, self.available = kind, name, available
        super().__init__(f"unknown {kind} {name!r}; available: {', '.join(available) or '(none)'}")

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return self.args[0]
