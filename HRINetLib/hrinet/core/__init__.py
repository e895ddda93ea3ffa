"""The bottom layer: volumes and their geometry, reading and writing, atomic files, padding
and slab profiles, constants and errors. NumPy, SciPy and SimpleITK only."""
