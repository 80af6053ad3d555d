"""wisecli: the `wise` command-line suite and its Python API."""

__version__ = "0.1.0"
