"""``python -m ddpm_course.cli ...``: the ``ddpm-course`` command (as torchrun and ``make`` run it)."""
from .main import main

raise SystemExit(main())
