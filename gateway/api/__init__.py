"""The gateway's HTTP routes, one module per kind of caller; every handler declares who may call it."""
