"""Sales channels, one module each, behind the `Channel` protocol in `base`."""
