"""Operator console (Textual); talks to the box only over its admin API."""
