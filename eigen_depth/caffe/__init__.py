"""Caffe's file formats without Caffe (and without torch): the schema, prototxt text, binary files.

    from eigen_depth.caffe import read_prototxt, read_caffemodel, load_weights
    net = read_prototxt("deploy.prototxt")           # NetParameter, upgraded to V2
    weights = load_weights("snapshot.caffemodel")   # {layer name: [numpy arrays]}
"""
from . import schema
from .datum import array_to_datum, datum_to_array, decode_datum, encode_datum, encoded_datum
from .io import (array_to_blob, blob_shape, blob_to_array, load_weights, read_binaryproto, read_caffemodel,
                 read_net, read_prototxt, read_solver, read_solverstate, write_binaryproto, write_caffemodel,
                 write_prototxt, write_solverstate)
from .schema import (BlobProto, BlobShape, Datum, LayerParameter, NetParameter, NetState, SolverParameter,
                     SolverState, V1LayerParameter)
from .text_format import merge_text, parse_text, to_text
from .upgrade import upgrade_net, upgrade_solver

__all__ = [
    "schema", "read_prototxt", "write_prototxt", "read_solver", "read_caffemodel", "write_caffemodel",
    "read_solverstate", "write_solverstate", "read_binaryproto", "write_binaryproto", "read_net",
    "load_weights", "blob_shape", "blob_to_array", "array_to_blob", "parse_text", "merge_text", "to_text",
    "upgrade_net", "upgrade_solver", "array_to_datum", "datum_to_array", "encode_datum", "decode_datum",
    "encoded_datum", "BlobProto", "BlobShape", "Datum", "LayerParameter", "NetParameter", "NetState",
    "SolverParameter", "SolverState", "V1LayerParameter",
]
