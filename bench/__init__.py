"""``make bench``: skship against a bare FastAPI ceiling and the tutorial app, on one core.

Every server runs as a uvicorn subprocess pinned to CPU 0, the load generator (wrk) to CPU 1;
each is checked for correct answers before it is measured. See docs/performance.md.
"""
