"""What an interpolated volume records about how it was made, so that a synthesised slice can
never pass for an acquired one.

A run's record (:func:`.record.record`) is a flat, ordered mapping of short text fields: the
software and its version, the method and the model with its sha256, the factor and the output
spacing, the input's file name (and for DICOM its SeriesInstanceUID), the slab thickness used,
and which output slices are acquired and which synthesised, written compactly
(:func:`.slices.format_indices`). The writers put it in every output file (:mod:`.files`): NRRD
key/value fields and the ``content`` field, MetaImage header keys, and in NIfTI the 80-character
``descrip`` plus the whole record as JSON in a comment extension (code 6); a derived DICOM series
holds it in its DerivationDescription. :func:`.files.read_provenance` reads it back from any of
them, and :func:`.record.describe_lines` words it for ``hrinet info``.

The engine may also leave a per-slice estimate of the error of what it synthesised in
``result.metadata["slice_error_hu"]`` (:data:`.slices.SLICE_ERROR_KEY`): a list aligned with the
output slices, mean predicted absolute error in HU, None (or absent) where there is no estimate.
:func:`.slices.worst_slices` and :func:`.slices.report_worst_slices` name the synthesised slices
a reader should look at first.
"""
