"""Operator console (Textual); talks to the box only over its admin API, through
``appliance.control.client.AsyncControlClient`` (the one module of ``appliance`` it imports)."""
