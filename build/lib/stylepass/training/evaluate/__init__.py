"""Image-quality metrics and the held-out evaluation behind ``stylepass evaluate``."""
