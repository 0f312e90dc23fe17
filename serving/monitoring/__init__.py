"""Monitoring: is the model still right, and has the world it sees changed?

From the prediction log (and the labels sent for it) and each version's metadata:
``quality`` (live metrics per version beside the held-out ones), ``drift`` (each feature
and the prediction against the version's reference profile), ``report`` (one
self-contained HTML file with pictures) and the ``monitor`` CLI. The functions take a
``LiveSource`` (``queries``) and return pydantic models, so HTTP routes can call them as
the CLI does. docs/monitoring.md explains what is measured and why.
"""
