"""The confidence map as an overlay: a volume node of expected absolute error (HU) shown over the
interpolated volume in a colour lookup with a legend, on or off by the panel's checkbox.

No Qt here: the widget and the interpolation job call these functions, and the tests call them
against the real MRML library. The map itself comes from ``hrinet interpolate --confidence``
(:mod:`hrinet.methods.confidence`).
"""

from __future__ import annotations

from typing import Optional

import slicer
import vtk
from hrinet import Volume

from .mrml import node_from_volume

#: The attribute of an interpolated node naming its confidence node.
CONFIDENCE_ATTRIBUTE = "HRINet.confidenceNodeID"
#: Name of the colour lookup (one per scene, shared by every confidence node).
COLOR_NODE_NAME = "HRINet expected error"
LEGEND_TITLE = "expected |error| (HU)"
#: The lookup's range: 0 (acquired, or trusted) to this many HU and above (look here).
MAX_HU = 200.0
#: (HU, r, g, b) stops of the lookup: dark where trusted, through yellow to red at >= MAX_HU.
STOPS = ((0.0, 0.0, 0.0, 0.0), (20.0, 0.1, 0.35, 0.1), (50.0, 0.9, 0.85, 0.1),
         (100.0, 1.0, 0.45, 0.0), (MAX_HU, 1.0, 0.0, 0.0))
#: Opacity of the overlay in the slice views.
OPACITY = 0.45


def color_node(scene):
    """The scene's expected-error lookup (created once, then reused)."""
    existing = scene.GetFirstNodeByName(COLOR_NODE_NAME)
    if existing is not None:
        return existing
    node = scene.AddNewNodeByClass("vtkMRMLProceduralColorNode", COLOR_NODE_NAME)
    ctf = vtk.vtkColorTransferFunction()
    for hu, r, g, b in STOPS:
        ctf.AddRGBPoint(hu, r, g, b)
    node.SetAndObserveColorTransferFunction(ctf)
    node.SetAttribute("Category", "HRINet")
    return node


def add_confidence_overlay(output_node, confidence: Volume, visible: bool = True):
    """A new node ``"<output> expected error"`` holding ``confidence`` (the map of
    ``output_node``), in the expected-error lookup from 0 to :data:`MAX_HU` with a legend, tied
    to ``output_node`` by :data:`CONFIDENCE_ATTRIBUTE`; shown when ``visible``."""
    scene = output_node.GetScene()
    node = node_from_volume(confidence, f"{output_node.GetName()} expected error", scene)
    node.SetAttribute("HRINet.content", "expected absolute error (HU) of the interpolated "
                      "values; acquired slices 0")
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID(color_node(scene).GetID())
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, MAX_HU)
    # created directly: a scene registers this class only once the Colors module has loaded
    legend = scene.AddNode(slicer.vtkMRMLColorLegendDisplayNode())
    legend.SetTitleText(LEGEND_TITLE)
    legend.SetAndObservePrimaryDisplayNode(display)
    node.AddAndObserveDisplayNodeID(legend.GetID())
    output_node.SetAttribute(CONFIDENCE_ATTRIBUTE, node.GetID())
    set_overlay_visible(output_node, visible)
    return node


def confidence_node(output_node):
    """The confidence node of ``output_node``, or None (none made, or since removed)."""
    if output_node is None or output_node.GetScene() is None:
        return None
    return output_node.GetScene().GetNodeByID(output_node.GetAttribute(CONFIDENCE_ATTRIBUTE) or "")


def legend_node(node):
    """The colour legend display node of a confidence node (None if it has none)."""
    for i in range(node.GetNumberOfDisplayNodes()):
        display = node.GetNthDisplayNode(i)
        if display is not None and display.IsA("vtkMRMLColorLegendDisplayNode"):
            return display
    return None


def set_overlay_visible(output_node, visible: bool) -> Optional[object]:
    """Show (over ``output_node``, with its legend) or hide its confidence map; returns the
    confidence node, or None when ``output_node`` has none (then nothing changes)."""
    node = confidence_node(output_node)
    if node is None:
        return None
    legend = legend_node(node)
    if legend is not None:
        legend.SetVisibility(bool(visible))
    node.SetAttribute("HRINet.overlayShown", "1" if visible else "0")
    if getattr(slicer, "app", None) is not None:  # the application's slice views
        slicer.util.setSliceViewerLayers(background=output_node,
                                         foreground=node if visible else None,
                                         foregroundOpacity=OPACITY if visible else 0.0)
    return node
