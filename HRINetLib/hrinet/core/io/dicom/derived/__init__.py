"""A derived DICOM series for an interpolated volume: what a PACS shows as a new series of the
same study, marked as derived and never as an acquisition.

Each output slice is a CT Image (PS3.3 A.3) with the input series' patient, study, frame of
reference, equipment and acquisition attributes copied as they are (never invented; an absent
type 2 attribute stays empty), and new SeriesInstanceUID and SOPInstanceUIDs. ImageType is
DERIVED\\SECONDARY, DerivationDescription names the software, method, model, factor and which
slices are acquired (:mod:`hrinet.core.io.provenance`), DerivationCodeSequence is DCM 113085
"Spatial resampling", and SourceImageSequence references the acquired slices each output slice
was made from. ContributingEquipmentSequence names hrinet as the processing equipment.

The input's SOP instances are read here with pydicom (header only) from the folder or files the
volume was read from, matched to the volume's slices by position. The series is written into a
hidden folder beside the output, read back and compared, and moved into place in one step.

One module a step: :mod:`.checks` (the output and input checked before any work),
:mod:`.sources` (the input's instances matched to the volume's slices), :mod:`.attributes`
(what each output slice says), :mod:`.writer` (written, verified and moved into place) and
:mod:`.reader` (the record read back).
"""
