"""``python -m pauserec`` = the ``pauserec`` command (for environments where the package is not installed)."""

from .cli import main

main()
