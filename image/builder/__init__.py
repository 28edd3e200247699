"""The appliance image builder behind `make image`, `make vm` and `make flash`.

Standard library only: it runs with the build host's own Python 3 before any venv exists.
"""
