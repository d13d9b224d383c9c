"""The errors OrderHub raises, each carrying a reason a person can act on.

Entry points map them to HTTP statuses or exit codes in one place (`app.webhooks`, `app.api`,
`app.cli`); services and adapters only raise them.
"""


class OrderHubError(Exception):
    """Root of every error OrderHub raises on purpose."""


class ConfigError(OrderHubError):
    """A setting is missing or wrong; the service must not start."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class SignatureInvalid(OrderHubError):
    """A delivery's signature is missing or does not match: it is not from the platform."""


class PayloadInvalid(OrderHubError):
    """A correctly signed delivery whose content cannot be understood."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(OrderHubError):
    """The thing an operator named does not exist."""
