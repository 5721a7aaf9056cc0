"""classicvision: classical computer-vision features."""
__version__ = "0.1.0"
