"""Fuzzing the readers: whatever text or bytes come in, the only exception is the project's own error,
and valid random messages survive text and binary round trips. Bounded to run in seconds."""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eigen_depth.caffe import NetParameter, SolverParameter, array_to_blob, load_weights, parse_text, to_text
from eigen_depth.caffe.message import ARRAY_DTYPES, INT_RANGES, MESSAGE_TYPES
from eigen_depth.caffe.wire import decode_message
from eigen_depth.errors import CaffemodelError, PrototxtError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID_TEXT = """# a valid net with most syntax in it
name: 'fuzz'
input: "data" input_dim: [1, 3, 8, 8]
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { lr_mult: 1 decay_mult: 1 } param: { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 0x4 kernel_size: 3 pad: 1 weight_filler < type: "gaussian" std: .01 > } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"; pooling_param { pool: MAX kernel_size: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "pool" bottom: "label" loss_weight: 1e-3
  include { phase: TRAIN } }
"""
VALID_SOLVER = 'net: "n" base_lr: 1e-4 gamma: -inf lr_policy: "step" solver_mode: CPU stepvalue: [1, 2]\n'
# characters that make up prototxt syntax, so that random text reaches deep into the parser
SYNTAX = list("{}<>[]:;,\"'\\#\n\t .-+0123456789eExXfinaNMAXlyrtop_") + ["layer", "name", "dim", "inf", "nan",
                                                                         "input_param", "shape", "pool", "true"]


def valid_caffemodel():
    net = parse_text(NetParameter, VALID_TEXT.replace('input: "data" input_dim: [1, 3, 8, 8]', ""))
    net.layer[0].blobs.append(array_to_blob(np.arange(4 * 3 * 9, dtype=np.float32).reshape(4, 3, 3, 3)))
    net.layer[0].blobs.append(array_to_blob(np.ones(4, np.float32), legacy=True))
    return net.SerializeToString()


VALID_BYTES = valid_caffemodel()


def parses_or_raises_prototxt_error(text, cls=NetParameter):
    try:
        parse_text(cls, text)
    except PrototxtError:
        pass


def decodes_or_raises_caffemodel_error(data):
    try:
        decode_message(NetParameter, data)
    except CaffemodelError:
        pass


# ---------------------------------------------------------------------------------------------- text
@FUZZ
@given(st.text(max_size=200))
def test_random_text_gives_a_message_or_a_prototxt_error(text):
    parses_or_raises_prototxt_error(text)


@FUZZ
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=20))
def test_random_strings_with_any_code_point_give_a_message_or_a_prototxt_error(body):
    parses_or_raises_prototxt_error(f'name: "{body}"')


@FUZZ
@given(st.lists(st.sampled_from(SYNTAX), max_size=60).map("".join))
def test_random_syntax_soup_gives_a_message_or_a_prototxt_error(text):
    parses_or_raises_prototxt_error(text)
    parses_or_raises_prototxt_error(text, SolverParameter)


@FUZZ
@given(st.integers(0, len(VALID_TEXT)), st.integers(0, 12), st.text(max_size=8) | st.sampled_from(SYNTAX))
def test_mutated_valid_prototxt_gives_a_message_or_a_prototxt_error(position, deleted, inserted):
    parses_or_raises_prototxt_error(VALID_TEXT[:position] + inserted + VALID_TEXT[position + deleted:])


@FUZZ
@given(st.integers(0, len(VALID_SOLVER)), st.integers(0, 6), st.sampled_from(SYNTAX))
def test_mutated_valid_solver_gives_a_message_or_a_prototxt_error(position, deleted, inserted):
    parses_or_raises_prototxt_error(VALID_SOLVER[:position] + inserted + VALID_SOLVER[position + deleted:],
                                    SolverParameter)


# -------------------------------------------------------------------------------------------- binary
@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_give_a_message_or_a_caffemodel_error(data):
    decodes_or_raises_caffemodel_error(data)


@FUZZ
@given(st.lists(st.integers(0, len(VALID_BYTES) * 8 - 1), min_size=1, max_size=8))
def test_bit_flipped_caffemodel_gives_a_message_or_a_caffemodel_error(flips):
    data = bytearray(VALID_BYTES)
    for bit in flips:
        data[bit // 8] ^= 1 << (bit % 8)
    decodes_or_raises_caffemodel_error(bytes(data))


@FUZZ
@given(st.integers(0, len(VALID_BYTES)))
def test_truncated_caffemodel_gives_a_message_or_a_caffemodel_error(length):
    decodes_or_raises_caffemodel_error(VALID_BYTES[:length])


@FUZZ
@given(st.integers(0, len(VALID_BYTES)), st.binary(min_size=1, max_size=12), st.integers(0, 4))
def test_caffemodel_with_inserted_or_deleted_bytes_gives_a_message_or_a_caffemodel_error(position, inserted,
                                                                                         deleted):
    decodes_or_raises_caffemodel_error(VALID_BYTES[:position] + inserted + VALID_BYTES[position + deleted:])


# ---------------------------------------------------------------------------- round trips of messages
def scalar_values(field):
    kind = field.kind
    if kind in INT_RANGES:
        return st.integers(*INT_RANGES[kind])
    if kind == "bool":
        return st.booleans()
    if kind == "enum":
        return st.sampled_from(sorted(field.enum.by_number))
    if kind == "float":
        return st.floats(width=32)
    if kind == "double":
        return st.floats()
    if kind == "string":
        return st.text(max_size=6)
    if kind == "bytes":
        return st.binary(max_size=6)
    return st.lists(st.floats(width=32 if kind == "float_array" else 64), max_size=4).map(
        lambda values: np.array(values, ARRAY_DTYPES[kind]))


@st.composite
def messages(draw, type_name, depth=0):
    cls = MESSAGE_TYPES[type_name]
    message = cls()
    fields = draw(st.lists(st.sampled_from(list(cls.FIELDS_BY_NAME.values())), max_size=4,
                           unique_by=lambda field: field.name))
    for field in fields:
        if field.kind == "message":
            if depth < 3:
                for _ in range(draw(st.integers(1, 2)) if field.repeated else 1):
                    child = draw(messages(field.type_name, depth + 1))
                    if field.repeated:
                        getattr(message, field.name).append(child)
                    else:
                        setattr(message, field.name, child)
        elif field.repeated and field.kind not in ARRAY_DTYPES:
            getattr(message, field.name).extend(draw(st.lists(scalar_values(field), max_size=3)))
        else:
            setattr(message, field.name, draw(scalar_values(field)))
    return message


ANY_MESSAGE = st.sampled_from(["NetParameter", "SolverParameter", "BlobProto", "Datum", "SolverState",
                               "V1LayerParameter"]).flatmap(messages)


@FUZZ
@given(ANY_MESSAGE)
def test_random_message_survives_a_text_round_trip(message):
    assert parse_text(type(message), to_text(message)) == message


@FUZZ
@given(ANY_MESSAGE)
def test_random_message_survives_a_binary_round_trip(message):
    assert decode_message(type(message), message.SerializeToString()) == message


@FUZZ
@given(st.floats(width=32))
def test_every_float32_survives_a_text_round_trip(value):
    back = parse_text(SolverParameter, to_text(SolverParameter(base_lr=value))).base_lr
    assert back == value or (math.isnan(back) and math.isnan(value))


def valid_v1_caffemodel():
    net = parse_text(NetParameter, 'name: "v1" input: "data" input_dim: [1, 3, 4, 4] '
                                   'layers { name: "conv" type: CONVOLUTION blobs_lr: 1 weight_decay: 0 '
                                   'convolution_param { num_output: 2 kernel_size: 1 } } '
                                   'layers { name: "data" type: DATA data_param { scale: 0.5 mirror: true } }')
    net.layers[0].blobs.append(array_to_blob(np.ones((2, 3, 1, 1), np.float32), legacy=True))
    return net.SerializeToString()


VALID_V1_BYTES = valid_v1_caffemodel()


@FUZZ
@given(st.sampled_from([VALID_BYTES, VALID_V1_BYTES]), st.integers(0, 10 ** 6), st.binary(max_size=6),
       st.integers(0, 4))
def test_mutated_caffemodel_file_loads_or_raises_a_caffemodel_error(tmp_path_factory, original, seed, inserted,
                                                                     deleted):
    position = seed % (len(original) + 1)
    path = tmp_path_factory.mktemp("fuzz") / "m.caffemodel"
    path.write_bytes(original[:position] + inserted + original[position + deleted:])
    try:
        load_weights(path)
    except CaffemodelError:
        pass
