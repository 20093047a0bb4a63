"""The composition root: the one package that puts hookline together.

It alone imports the API (``api/``), the dashboard (``dashboard/``) and the delivery
worker (``delivery/``), which depend only on the kernel (``hookline/``) and never on each
other (``lint-imports`` checks it): the ``hookline`` command (``cli``), the development
mode with embedded Postgres and Redis (``dev``, ``embedded``), the process supervisor of
``--workers`` and ``--processes``, and the web app that serves the API and the dashboard
side by side (``web``).
"""
