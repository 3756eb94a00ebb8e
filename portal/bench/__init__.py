"""Evaluation harnesses that span apps (`manage.py eval_egress`), kept out of the request path."""
