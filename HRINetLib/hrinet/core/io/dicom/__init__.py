"""DICOM in and out: a series folder or study read (:mod:`.study` finds and chooses the series,
:mod:`.slice_geometry` orders and checks its slices, :mod:`.series` reads one), and a derived
series written for an interpolated volume (:mod:`.derived`)."""
