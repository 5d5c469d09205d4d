"""Development tools that production does not install, hidden from the processes under test.

``rich`` and ``pygments`` come with the development tools (schemathesis), not
with the service (``requirements.prod.lock`` has neither). structlog and
httpx import them whenever they are installed, which cost every process the
suite starts about a quarter of a second of CPU that a production process
never spends, hundreds of times a run. ``start_command`` puts this directory
first on the path of the processes it starts (the modules here raise
ImportError, as absent ones do), so they import what production imports.
"""
