"""Prototxt text format: the quirks real Caffe files contain, round trips, old-style inputs, errors.

Expected values are written out by hand; float fields hold the float32 nearest to the text, as protobuf
stores them (computed here with struct, not with eigen_depth).
"""
import math
import struct

import pytest

from eigen_depth.caffe import NetParameter, SolverParameter, parse_text, read_prototxt, to_text, write_prototxt
from eigen_depth.caffe.text_format import merge_text
from eigen_depth.errors import PrototxtError


def f32(value):
    """The float32 nearest to value, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def conv(text):
    """The convolution_param of a one-layer net whose convolution_param body is `text`."""
    return parse_text(NetParameter, f"layer {{ convolution_param {{ {text} }} }}").layer[0].convolution_param


def solver(text):
    return parse_text(SolverParameter, text)


# A deploy-style net with every quirk at once; its values are checked field by field below.
QUIRKY_NET = """# a comment line
name: 'quirky'   # trailing comment
\tforce_backward: true
layer {
\tname: "data"  type: "Input"  top: "data"
  input_param { shape: { dim: [1, 3, 4, 5] } }
}
layer <
  name: "conv" "1"; type: 'Convolution', bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param: {
    num_output: 0x10 kernel_size: 3 pad: 1 stride: 2 group: 1
    weight_filler { type: "gaussian" std: .01 }
    bias_filler < type: "constant" value: 1e-4 >
  }
>
layer { name: "pool" type: "Pooling" bottom: "conv1" top: "pool" pooling_param { pool: AVE kernel_size: 2 } }
layer { name: "pool2" type: "Pooling" bottom: "pool" top: "pool2" pooling_param { pool: 2 kernel_size: 2 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "pool2" bottom: "pool2" top: "loss" loss_weight: -inf
        include { phase: TRAIN } }
"""

QUIRKY_SOLVER = """
net: "train.prototxt"   # the net
test_iter: 10 test_iter: 20
test_interval: 1000
base_lr: 1e-4
lr_policy: "step"
gamma: .5
momentum: 0.9
weight_decay: 0.0005
stepsize: 0x100
stepvalue: [100, 200]
display: 20
max_iter: 1000000
snapshot: 5000
snapshot_prefix: 'snapshots/net'
solver_mode: CPU
random_seed: -1
clip_gradients: nan
delta: -inf
snapshot_format: 0
type: "Nesterov"
"""


# ------------------------------------------------------------------------------------- round trips
def test_net_text_round_trip_gives_an_equal_message(tmp_path):
    net = parse_text(NetParameter, QUIRKY_NET)
    write_prototxt(net, tmp_path / "net.prototxt")
    assert read_prototxt(tmp_path / "net.prototxt", NetParameter) == net


def test_solver_text_round_trip_gives_an_equal_message(tmp_path):
    message = solver(QUIRKY_SOLVER)
    write_prototxt(message, tmp_path / "solver.prototxt")
    assert read_prototxt(tmp_path / "solver.prototxt", SolverParameter) == message


def test_round_trip_keeps_nan_and_infinities():
    message = solver("clip_gradients: nan delta: -inf momentum: inf")
    back = solver(to_text(message))
    assert math.isnan(back.clip_gradients) and back.delta == -math.inf and back.momentum == math.inf


def test_round_trip_keeps_float32_max_finite():
    # "3.4028235e38", the shortest float32 text of FLT_MAX, is above FLT_MAX as a double and protobuf
    # reads it as inf; the writer must print a text that reads back as FLT_MAX.
    flt_max = f32(3.4028234663852886e38)
    message = solver(f"base_lr: {flt_max!r} gamma: {-flt_max!r}")
    back = solver(to_text(message))
    assert back.base_lr == flt_max and back.gamma == -flt_max


def test_writer_output_is_protobuf_text_in_declaration_order():
    net = parse_text(NetParameter, 'layer { top: "y" bottom: "x" type: "ReLU" name: "r" '
                                   'relu_param { negative_slope: 0.1 } } name: "n"')
    assert to_text(net) == ('name: "n"\n'
                            'layer {\n'
                            '  name: "r"\n'
                            '  type: "ReLU"\n'
                            '  bottom: "x"\n'
                            '  top: "y"\n'
                            '  relu_param {\n'
                            '    negative_slope: 0.1\n'
                            '  }\n'
                            '}\n')


def test_writer_escapes_quotes_backslashes_and_non_ascii():
    net = NetParameter(name='a"b\\c\n\u00e9')
    assert to_text(net) == 'name: "a\\"b\\\\c\\n\\303\\251"\n'


# ------------------------------------------------------------------------------------- quirks parse
def test_hash_comments_and_tabs_are_ignored():
    net = parse_text(NetParameter, "# first\n\tname:\t\"n\" # second\n#last")
    assert net.name == "n"


def test_colon_before_a_message_is_allowed():
    assert conv("weight_filler: { type: 'xavier' }").weight_filler.type == "xavier"


def test_angle_brackets_delimit_a_message():
    assert conv("weight_filler < type: 'msra' >").weight_filler.type == "msra"


def test_single_quoted_strings_parse():
    assert parse_text(NetParameter, "name: 'single'").name == "single"


def test_string_escapes_parse():
    net = parse_text(NetParameter, r'name: "q\"b\\s\n\tA\101\x41\'"')
    assert net.name == "q\"b\\s\n\tAAA'"


def test_adjacent_strings_concatenate():
    assert parse_text(NetParameter, "name: \"ab\" 'cd'\n  \"ef\"").name == "abcdef"


def test_utf8_strings_parse():
    assert parse_text(NetParameter, 'name: "tiefe \u00e9"').name == "tiefe \u00e9"


def test_bare_enum_value_parses_to_its_number():
    assert parse_text(NetParameter, "layer { pooling_param { pool: AVE } }").layer[0].pooling_param.pool == 1


def test_numeric_enum_value_parses():
    assert parse_text(NetParameter, "layer { pooling_param { pool: 2 } }").layer[0].pooling_param.pool == 2


def test_exponent_number_is_rounded_to_float32():
    assert solver("base_lr: 1e-4").base_lr == f32(1e-4) == 9.999999747378752e-05


def test_leading_dot_number_parses_exactly():
    assert solver("gamma: .5").gamma == 0.5


def test_decimal_float_is_rounded_to_float32():
    assert solver("momentum: 0.9").momentum == f32(0.9) == 0.8999999761581421


def test_float_suffix_f_is_accepted():
    assert solver("gamma: 2.5f").gamma == 2.5


def test_negative_infinity_parses():
    assert solver("delta: -inf").delta == -math.inf


def test_nan_parses():
    assert math.isnan(solver("delta: nan").delta)


def test_integer_literal_in_a_float_field_parses():
    assert solver("base_lr: 2").base_lr == 2.0


def test_hex_integer_parses():
    assert conv("num_output: 0x1F").num_output == 31


def test_leading_zero_integer_is_octal_as_in_protobuf():
    assert conv("num_output: 011").num_output == 9


def test_negative_int64_parses():
    assert solver("random_seed: -12345678901").random_seed == -12345678901


def test_list_syntax_fills_a_repeated_field():
    net = parse_text(NetParameter, "layer { input_param { shape { dim: [1, 3, 4] } } }")
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 4]


def test_list_syntax_for_repeated_messages():
    net = parse_text(NetParameter, 'layer: [{ name: "a" }, { name: "b" }]')
    assert [layer.name for layer in net.layer] == ["a", "b"]


def test_empty_list_leaves_the_field_empty():
    assert list(conv("pad: []").pad) == []


def test_semicolons_and_commas_separate_fields():
    net = parse_text(NetParameter, 'name: "n"; layer { name: "a", type: "ReLU"; top: "x", };')
    assert (net.name, net.layer[0].name, net.layer[0].type, list(net.layer[0].top)) == ("n", "a", "ReLU", ["x"])


def test_bool_spellings_parse():
    values = [parse_text(NetParameter, f"force_backward: {text}").force_backward
              for text in ("true", "True", "t", "1", "false", "False", "f", "0")]
    assert values == [True] * 4 + [False] * 4


def test_repeated_scalar_fields_accumulate_in_order():
    assert list(conv("kernel_size: 3 kernel_size: 5 kernel_size: 1").kernel_size) == [3, 5, 1]


def test_quirky_net_values():
    net = parse_text(NetParameter, QUIRKY_NET)
    assert net.name == "quirky" and net.force_backward is True
    assert [layer.name for layer in net.layer] == ["data", "conv1", "pool", "pool2", "loss"]
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 4, 5]
    conv1 = net.layer[1]
    assert conv1.type == "Convolution" and list(conv1.bottom) == ["data"] and list(conv1.top) == ["conv1"]
    assert [(p.lr_mult, p.decay_mult) for p in conv1.param] == [(1.0, 1.0), (2.0, 0.0)]
    param = conv1.convolution_param
    assert (param.num_output, list(param.kernel_size), list(param.pad), list(param.stride)) == (16, [3], [1], [2])
    assert param.weight_filler.type == "gaussian" and param.weight_filler.std == f32(0.01)
    assert param.bias_filler.value == f32(1e-4)
    assert net.layer[2].pooling_param.pool == 1 and net.layer[3].pooling_param.pool == 2
    assert list(net.layer[4].loss_weight) == [-math.inf] and net.layer[4].include[0].phase == 0


def test_quirky_solver_values():
    message = solver(QUIRKY_SOLVER)
    assert message.net == "train.prototxt" and list(message.test_iter) == [10, 20]
    assert message.base_lr == f32(1e-4) and message.gamma == 0.5 and message.weight_decay == f32(0.0005)
    assert message.stepsize == 256 and list(message.stepvalue) == [100, 200]
    assert message.snapshot_prefix == "snapshots/net" and message.solver_mode == 0
    assert message.random_seed == -1 and math.isnan(message.clip_gradients) and message.delta == -math.inf
    assert message.snapshot_format == 0 and message.type == "Nesterov"


def test_unset_fields_read_as_caffe_defaults():
    message = solver("")
    assert (message.type, message.solver_mode, message.iter_size, message.clip_gradients,
            message.snapshot_format, message.random_seed) == ("SGD", 1, 1, -1.0, 1, -1)
    assert conv("").group == 1 and conv("").bias_term is True


def test_merge_text_lets_a_later_singular_field_win():
    net = merge_text(NetParameter(name="old"), 'name: "a" name: "b"')
    assert net.name == "b"


# ------------------------------------------------------------------------------ old-style net inputs
def test_input_with_four_input_dims_becomes_a_first_input_layer(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text('name: "n"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 228\ninput_dim: 304\n'
                    'layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }\n')
    net = read_prototxt(path, NetParameter)
    first = net.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", ["data"])
    assert [list(shape.dim) for shape in first.input_param.shape] == [[1, 3, 228, 304]]
    assert [layer.name for layer in net.layer] == ["input", "relu"]
    assert len(net.input) == len(net.input_dim) == len(net.input_shape) == 0


def test_input_with_input_shape_becomes_a_first_input_layer(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text('layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }\n'
                    'input: "a" input_shape { dim: 2 dim: 3 }\ninput: "b" input_shape { dim: [5] }\n')
    net = read_prototxt(path, NetParameter)
    assert net.layer[0].type == "Input" and list(net.layer[0].top) == ["a", "b"]
    assert [list(shape.dim) for shape in net.layer[0].input_param.shape] == [[2, 3], [5]]
    assert net.layer[1].name == "relu"


def test_input_without_enough_input_dims_is_an_error(tmp_path):
    path = tmp_path / "deploy.prototxt"
    path.write_text('input: "data"\ninput_dim: 1\ninput_dim: 3\n')
    with pytest.raises(PrototxtError, match="4 input_dim"):
        read_prototxt(path, NetParameter)


def test_read_prototxt_tells_a_solver_from_a_net(tmp_path):
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "x.prototxt"\nbase_lr: 0.01\n')
    assert isinstance(read_prototxt(path), SolverParameter)


# -------------------------------------------------------------------------------------------- errors
def test_syntax_error_names_file_line_column_and_token(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "n"\nlayer {\n  bottom: data\n}\n')
    with pytest.raises(PrototxtError) as caught:
        read_prototxt(path, NetParameter)
    assert f"{path}:3:11" in str(caught.value) and "'data'" in str(caught.value)


def test_unknown_field_suggests_the_nearest_field_name():
    with pytest.raises(PrototxtError, match=r"unknown field 'num_ouput'.*did you mean num_output"):
        conv("num_ouput: 3")


def test_unknown_enum_value_suggests_the_nearest_value():
    with pytest.raises(PrototxtError, match="did you mean MAX"):
        parse_text(NetParameter, "layer { pooling_param { pool: MAXX } }")


def test_unclosed_message_reports_the_end_of_the_file():
    with pytest.raises(PrototxtError, match=r"<string>:2:1: missing '}'"):
        parse_text(NetParameter, "layer {\n")


def test_unexpected_character_is_reported_with_its_position():
    with pytest.raises(PrototxtError, match=r"<string>:1:7: unexpected character\(s\) '@'"):
        parse_text(NetParameter, "name: @")


def test_out_of_range_integer_is_an_error():
    with pytest.raises(PrototxtError, match="cannot hold -1"):
        conv("num_output: -1")


def test_decimal_number_in_an_integer_field_is_an_error():
    with pytest.raises(PrototxtError, match="takes an integer"):
        conv("num_output: 1.5")


def test_list_for_a_singular_field_is_an_error():
    with pytest.raises(PrototxtError, match="not repeated"):
        conv("num_output: [1, 2]")


def test_singular_field_given_twice_is_an_error_as_in_protobuf():
    with pytest.raises(PrototxtError, match=r"1:11: non-repeated field 'name'"):
        parse_text(NetParameter, 'name: "a" name: "b"')


def test_singular_message_given_twice_is_an_error_as_in_protobuf():
    with pytest.raises(PrototxtError, match="non-repeated field 'weight_filler'"):
        conv("weight_filler { type: 'a' } weight_filler { std: 2 }")


def test_octal_literal_with_digit_8_is_an_error():
    with pytest.raises(PrototxtError, match="octal"):
        conv("num_output: 08")


def test_invalid_escape_is_an_error():
    with pytest.raises(PrototxtError, match=r"invalid escape '\\q'"):
        parse_text(NetParameter, r'name: "a\q"')


def test_unquoted_string_is_an_error():
    with pytest.raises(PrototxtError, match="takes a quoted string"):
        parse_text(NetParameter, "name: net")


def test_binary_file_read_as_prototxt_gives_a_hint(tmp_path):
    path = tmp_path / "model.prototxt"
    path.write_bytes(b"\x0a\x01n\xa2\x06\x80\xff")
    with pytest.raises(PrototxtError, match="not UTF-8 text.*caffemodel"):
        read_prototxt(path, NetParameter)


def test_missing_prototxt_is_a_prototxt_error(tmp_path):
    with pytest.raises(PrototxtError, match="no such file"):
        read_prototxt(tmp_path / "absent.prototxt", NetParameter)


def test_string_with_a_lone_surrogate_is_a_prototxt_error():
    with pytest.raises(PrototxtError, match="not valid UTF-8"):
        parse_text(NetParameter, 'name: "\ud800"')
