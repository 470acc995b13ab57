"""The flows of seed 002, as functions of (context, input) that tests call without a server."""
