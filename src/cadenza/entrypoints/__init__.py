"""How people and programs start Cadenza: the ``cadenza`` command line (``cli``, one module
per group of commands) and the external worker's client (``client``, ``client_http``).

Nothing here names a concrete adapter: the commands get what they run from
``cadenza.bootstrap``, imported inside each command so that ``cadenza --help`` builds nothing.
"""
