"""The jobs: each plans its work, calls the Ray layer (``acoustic_env.distributed``), and writes its
run record, tables and reports. ``acoustic_env.api`` is their Python front door, ``acoustic_env.cli``
their command line.
"""
