"""alignlab: measure and improve how language models behave."""

from alignlab.errors import AlignlabError

__version__ = "0.1.0"
__all__ = ["AlignlabError", "__version__"]
