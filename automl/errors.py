"""User-facing errors: each carries one message that names the key, column or path."""


class AutomlError(Exception):
    """An error caused by the user's config, data or paths (shown without a traceback)."""


class ConfigError(AutomlError):
    """A config value that cannot be used."""


class DataError(AutomlError):
    """A data file or table that cannot be read or used."""


class ContractError(DataError):
    """Data that breaks the data set's contract."""

    def __init__(self, message: str, failures: "list[dict] | None" = None) -> None:
        super().__init__(message)
        self.failures = failures or []
