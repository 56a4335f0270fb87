"""The console's screens: one module per screen, plus the forms they open."""
