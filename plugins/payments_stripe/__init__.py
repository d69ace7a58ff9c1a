"""Payment collection through Stripe for the billing plugin's statements (entry point
``payments_stripe``); see README.md."""
