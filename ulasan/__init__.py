"""ulasan: the command line and the settings shared by every process."""

__version__ = "0.1.0"
