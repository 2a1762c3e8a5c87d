"""Read an otgrid .xmf with one of ParaView's readers and print what ParaView sees, as JSON.

Usage: pvpython check_xdmf.py FILE.xmf READER
READER is XDMFReader (legacy Xdmf2) or Xdmf3ReaderS.

Printed: bounds, cell count, time steps, each cell array's component count and range, and
for arrays named coord_x / coord_y / coord_z (scalar) and position (vector), the largest
difference between the array and ParaView's own cell-centre coordinate on that axis. A
field written as "x" must vary along ParaView's x axis: if the axis order were wrong the
error would be of the size of the box, not round-off.
"""
import json
import sys

import paraview.simple as pvs
from paraview import servermanager as sm
from vtk.numpy_interface import dataset_adapter as dsa
import numpy as np

path, reader_name = sys.argv[1], sys.argv[2]
factory = getattr(pvs, reader_name)
try:
    reader = factory(FileNames=[path])
except AttributeError:
    reader = factory(FileName=[path])
times = [float(t) for t in reader.TimestepValues]
result = {"reader": reader_name, "times": times, "steps": []}

for t in (times if times else [0.0]):
    reader.UpdatePipeline(t)
    info = reader.GetDataInformation()
    centers = pvs.CellCenters(Input=reader)
    centers.UpdatePipeline(t)
    data = dsa.WrapDataObject(sm.Fetch(centers))
    pts = np.asarray(data.Points)
    step = {
        "time": t,
        "bounds": list(info.GetBounds()),
        "cells": int(info.GetNumberOfCells()),
        "arrays": {},
        "axis_error": {},
    }
    for name in data.PointData.keys():
        arr = np.asarray(data.PointData[name])
        comps = 1 if arr.ndim == 1 else int(arr.shape[1])
        step["arrays"][name] = {
            "components": comps,
            "range": [float(arr.min()), float(arr.max())],
        }
        for axis, label in enumerate("xyz"):
            if name == "coord_" + label:
                step["axis_error"][name] = float(np.abs(arr - pts[:, axis]).max())
        if name == "position":
            for axis in range(min(comps, 3)):
                step["axis_error"]["position_%d" % axis] = float(
                    np.abs(arr[:, axis] - pts[:, axis]).max()
                )
    result["steps"].append(step)
    pvs.Delete(centers)

print("OTGRID_JSON " + json.dumps(result))
