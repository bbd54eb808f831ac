"""Payments: the gateway over Stripe (``gateway``) and the Stripe sandbox (``sandbox``)."""
