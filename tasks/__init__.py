"""Background work: the Huey instance, the sending engine and the send-API client.

The API imports only :mod:`tasks.hooks`.
"""
