"""The package version: a leaf module, so every module can import it without importing
the package face (``hpmkd/__init__.py`` imports the engine, which imports this)."""

__version__ = "0.2.0.dev0"
