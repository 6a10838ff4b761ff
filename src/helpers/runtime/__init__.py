"""Runtime: what the machine has and how code runs on it.

Environment and devices (``env``, ``gpu``), seeding, child processes (``processes``) and the
distributed launchers built on them (``distributed``), file integrity and verified
downloads (``integrity``), and timing (``timing``). Nothing here teaches a chapter's
lesson; everything else in the package may import from here.
"""
