"""FLARE's NumPy constants."""


class NPConstants:
    NUMPY_KEY = "numpy_key"
