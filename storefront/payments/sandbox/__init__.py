"""A stand-in for the slice of Stripe the storefront uses (see the README, "Stripe sandbox").

``create_sandbox_app(SandboxConfig(...))`` gives the WSGI app; ``python -m
storefront.payments.sandbox --port N`` serves it as its own process.
"""

from .app import create_sandbox_app
from .config import LiveKeyError, SandboxConfig, looks_live, refuse_live_key

__all__ = ["create_sandbox_app", "SandboxConfig", "LiveKeyError", "looks_live", "refuse_live_key"]
