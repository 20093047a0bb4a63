"""hookline: self-hostable webhook delivery. This package is the kernel the apps share."""

__version__ = "0.1.0"
