"""Train, register and version scikit-learn models: ``python -m training``, or
``from training import register`` to register a pipeline fitted in a notebook."""

from training.register import RegisterError, RegisterResult, register

__all__ = ["RegisterError", "RegisterResult", "register"]
