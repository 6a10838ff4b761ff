"""Exercise checks, one module per chapter (``ch03`` ... ``ch06``), one reporting style.

A notebook imports its chapter's module as ``checks`` and calls ``checks.check_...``. Every
check prints a verdict through ``report`` and never raises for a wrong answer.
"""
