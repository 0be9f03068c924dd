"""TorchServe handlers for the sentiment models.

This package is copied whole into every .mar (see scripts/packaging/build_archive.py), so
`handlers.contract` imports identically inside a TorchServe worker and in tests.
"""
