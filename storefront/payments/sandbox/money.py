"""The sandbox counts, checks and shows money as Stripe does: ``storefront.money``."""

from storefront.money import STRIPE_CURRENCIES, format_amount, minimum_charge

__all__ = ["STRIPE_CURRENCIES", "format_amount", "minimum_charge"]
