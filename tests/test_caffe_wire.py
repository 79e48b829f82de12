"""Binary protobuf: hand-assembled bytes decode to the expected values, encoding gives exactly the bytes
protobuf writes (derived by hand from the wire format: key = field_number << 3 | wire_type), and the
file readers and writers round-trip.
"""
import mmap
import struct

import numpy as np
import pytest

from eigen_depth.caffe import (BlobProto, BlobShape, LayerParameter, NetParameter, SolverState, array_to_blob,
                               blob_shape, blob_to_array, load_weights, read_binaryproto, read_caffemodel,
                               read_solverstate, write_binaryproto, write_caffemodel, write_solverstate)
from eigen_depth.caffe import schema
from eigen_depth.caffe.wire import decode_message
from eigen_depth.errors import CaffemodelError

# 1.0, -2.0, 0.5 as little-endian IEEE float32: 0x3f800000, 0xc0000000, 0x3f000000
FLOATS = b"\x00\x00\x80\x3f" + b"\x00\x00\x00\xc0" + b"\x00\x00\x00\x3f"


def decode(cls, data):
    return decode_message(cls, data)


# -------------------------------------------------------------------------------------------- decoding
def test_length_delimited_string_decodes():
    assert decode(NetParameter, b"\x0a\x03abc").name == "abc"


def test_packed_floats_decode_to_an_array():
    blob = decode(BlobProto, b"\x2a\x0c" + FLOATS)  # field 5, wire type 2, 12 bytes
    assert blob.data.dtype == np.float32 and blob.data.tolist() == [1.0, -2.0, 0.5]


def test_unpacked_floats_decode_to_the_same_array():
    unpacked = b"".join(b"\x2d" + FLOATS[i:i + 4] for i in range(0, 12, 4))  # field 5, wire type 5, per value
    assert decode(BlobProto, unpacked).data.tolist() == [1.0, -2.0, 0.5]


def test_packed_and_unpacked_pieces_of_one_array_concatenate_in_file_order():
    data = b"\x2a\x04" + FLOATS[:4] + b"\x2d" + FLOATS[4:8] + b"\x08\x01" + b"\x2a\x04" + FLOATS[8:]
    assert decode(BlobProto, data).data.tolist() == [1.0, -2.0, 0.5]


def test_legacy_four_d_shape_becomes_the_blob_shape():
    data = b"\x08\x01\x10\x01\x18\x01\x20\x03" + b"\x2a\x0c" + FLOATS  # num=1 channels=1 height=1 width=3
    blob = decode(BlobProto, data)
    assert blob_shape(blob) == (1, 1, 1, 3)
    assert blob_to_array(blob).tolist() == [[[[1.0, -2.0, 0.5]]]]


def test_legacy_shape_wins_over_shape_dim_as_in_caffe():
    data = b"\x3a\x02\x08\x03" + b"\x20\x03" + b"\x2a\x0c" + FLOATS  # shape {dim: 3}, width=3
    assert blob_shape(decode(BlobProto, data)) == (0, 0, 0, 3)


def test_shape_dim_gives_an_nd_blob():
    data = b"\x3a\x04\x0a\x02\x01\x03" + b"\x2a\x0c" + FLOATS  # shape { dim: [1, 3] } (packed)
    assert blob_to_array(decode(BlobProto, data)).tolist() == [[1.0, -2.0, 0.5]]


def test_unpacked_shape_dims_decode_like_packed_ones():
    data = b"\x3a\x04\x08\x01\x08\x03" + b"\x2a\x0c" + FLOATS  # shape { dim: 1 dim: 3 } one tag each
    assert list(decode(BlobProto, data).shape.dim) == [1, 3]


def test_double_data_is_accepted_as_float32():
    # field 8, packed doubles 1.5 (0x3ff8000000000000) and -0.25 (0xbfd0000000000000), shape {dim: 2}
    data = b"\x3a\x03\x0a\x01\x02" + b"\x42\x10" + struct.pack("<dd", 1.5, -0.25)
    array = blob_to_array(decode(BlobProto, data))
    assert array.dtype == np.float32 and array.tolist() == [1.5, -0.25]


def test_negative_int32_decodes_from_a_ten_byte_varint():
    param = decode(schema.FillerParameter, b"\x38" + b"\xfe" + b"\xff" * 8 + b"\x01")  # sparse = -2
    assert param.sparse == -2


def test_two_byte_key_decodes():
    param = decode(schema.ConvolutionParameter, b"\x80\x01\x02")  # field 16 (axis): key 128 -> 80 01
    assert param.axis == 2


def test_later_singular_value_overrides_earlier_one():
    assert decode(NetParameter, b"\x0a\x01a\x0a\x01b").name == "b"


def test_repeated_singular_message_occurrences_merge():
    # layer { convolution_param { num_output: 3 } convolution_param { group: 2 } }
    layer = decode(LayerParameter, b"\xd2\x06\x02\x08\x03" + b"\xd2\x06\x02\x28\x02")
    assert (layer.convolution_param.num_output, layer.convolution_param.group) == (3, 2)


def test_bool_and_enum_varints_decode():
    state = decode(schema.NetState, b"\x08\x00")  # phase TRAIN given explicitly
    assert state.phase == 0 and state.HasField("phase")
    assert decode(NetParameter, b"\x28\x01").force_backward is True


def test_unknown_fields_are_skipped():
    data = b"\x0a\x01x" + b"\xb8\x3e\x05" + b"\x92\x03\x02hi" + b"\x59" + b"\x00" * 8  # fields 999, 50, 11
    assert decode(NetParameter, data).name == "x"


def test_unknown_fields_are_preserved_on_re_encode():
    data = b"\x0a\x01x" + b"\xb8\x3e\x05" + b"\x92\x03\x02hi"
    assert decode(NetParameter, data).SerializeToString() == data


def test_field_with_a_wrong_wire_type_is_kept_as_unknown():
    data = b"\x0d" + b"\x00" * 4  # field 1 (name, a string) as a fixed32
    net = decode(NetParameter, data)
    assert net.name == "" and net.SerializeToString() == data


# -------------------------------------------------------------------------------------------- encoding
def test_blob_shape_dims_are_written_packed():
    assert BlobShape(dim=[2, 3]).SerializeToString() == b"\x0a\x02\x02\x03"


def test_blob_data_is_written_as_packed_floats():
    blob = BlobProto(data=[1.0, -2.0, 0.5])
    assert blob.SerializeToString() == b"\x2a\x0c" + FLOATS


def test_layer_is_written_in_field_number_order():
    layer = LayerParameter(top=["x"], bottom=["x"], type="ReLU", name="a")
    assert layer.SerializeToString() == b"\x0a\x01a\x12\x04ReLU\x1a\x01x\x22\x01x"


def test_net_layer_field_100_has_a_two_byte_key():
    net = NetParameter(name="n")
    net.layer.add(name="a")
    assert net.SerializeToString() == b"\x0a\x01n" + b"\xa2\x06\x03" + b"\x0a\x01a"


def test_repeated_scalars_other_than_dim_are_written_unpacked():
    param = schema.ConvolutionParameter(kernel_size=[3, 5], bias_term=False)
    assert param.SerializeToString() == b"\x10\x00\x20\x03\x20\x05"


def test_explicitly_set_default_values_are_written():
    spec = schema.ParamSpec(lr_mult=2.0, decay_mult=1.0)  # 1.0 is the default, still present
    assert spec.SerializeToString() == b"\x1d\x00\x00\x00\x40" + b"\x25\x00\x00\x80\x3f"


def test_negative_int32_is_written_as_a_ten_byte_varint():
    assert schema.FillerParameter(sparse=-2).SerializeToString() == b"\x38\xfe" + b"\xff" * 8 + b"\x01"


def test_legacy_blob_writes_num_channels_height_width():
    blob = array_to_blob(np.array([[1.0, -2.0, 0.5]], np.float32), legacy=True)
    assert blob.SerializeToString() == b"\x08\x01\x10\x01\x18\x01\x20\x03" + b"\x2a\x0c" + FLOATS


def test_empty_message_encodes_to_no_bytes():
    assert NetParameter().SerializeToString() == b""


def test_reading_a_sub_message_does_not_make_it_present():
    layer = LayerParameter()
    assert layer.convolution_param.num_output == 0
    assert layer.SerializeToString() == b""


def test_present_empty_sub_message_is_written_with_zero_length():
    layer = LayerParameter()
    layer.convolution_param.MergeFrom(schema.ConvolutionParameter())  # protobuf's SetInParent
    assert layer.SerializeToString() == b"\xd2\x06\x00"  # field 106: key 850 -> d2 06


# ------------------------------------------------------------------------------- files: round trips
def small_net():
    """A two-layer net with weights: conv (2x1x3x3 + 2) and a legacy-shaped fc (1x1x4x18 + 1x1x1x4)."""
    rng = np.random.default_rng(7)
    net = NetParameter(name="small")
    conv = net.layer.add(name="conv", type="Convolution", bottom=["data"], top=["conv"])
    conv.convolution_param.num_output = 2
    conv.convolution_param.kernel_size.append(3)
    conv.blobs.append(array_to_blob(rng.standard_normal((2, 1, 3, 3)).astype(np.float32)))
    conv.blobs.append(array_to_blob(rng.standard_normal(2).astype(np.float32)))
    fc = net.layer.add(name="fc", type="InnerProduct", bottom=["conv"], top=["fc"])
    fc.inner_product_param.num_output = 4
    fc.blobs.append(array_to_blob(rng.standard_normal((4, 18)).astype(np.float32), legacy=True))
    fc.blobs.append(array_to_blob(rng.standard_normal(4).astype(np.float32), legacy=True))
    return net


def test_caffemodel_write_read_round_trip(tmp_path):
    net = small_net()
    write_caffemodel(net, tmp_path / "m.caffemodel")
    assert read_caffemodel(tmp_path / "m.caffemodel") == net


def test_caffemodel_round_trip_without_mmap(tmp_path):
    net = small_net()
    write_caffemodel(net, tmp_path / "m.caffemodel")
    assert read_caffemodel(tmp_path / "m.caffemodel", use_mmap=False) == net


def test_caffemodel_file_is_the_message_encoding(tmp_path):
    net = small_net()
    write_caffemodel(net, tmp_path / "m.caffemodel")
    assert (tmp_path / "m.caffemodel").read_bytes() == net.SerializeToString()


def test_solverstate_write_read_round_trip(tmp_path):
    state = SolverState(iter=1000, learned_net="snap_iter_1000.caffemodel", current_step=2)
    state.history.append(array_to_blob(np.arange(6, dtype=np.float32).reshape(2, 3)))
    state.history.append(array_to_blob(np.array([0.5], np.float32)))
    write_solverstate(state, tmp_path / "s.solverstate")
    assert read_solverstate(tmp_path / "s.solverstate") == state


def test_solverstate_bytes_start_with_iter_and_learned_net(tmp_path):
    write_solverstate(SolverState(iter=100, learned_net="a"), tmp_path / "s.solverstate")
    assert (tmp_path / "s.solverstate").read_bytes() == b"\x08\x64\x12\x01a"


def test_binaryproto_write_read_round_trip(tmp_path):
    mean = np.random.default_rng(1).random((1, 3, 4, 5), dtype=np.float32)
    write_binaryproto(mean, tmp_path / "mean.binaryproto")
    array = blob_to_array(read_binaryproto(tmp_path / "mean.binaryproto"))
    assert array.shape == (1, 3, 4, 5) and np.array_equal(array, mean)


def test_load_weights_returns_arrays_in_file_order_with_their_shapes(tmp_path):
    net = small_net()
    write_caffemodel(net, tmp_path / "m.caffemodel")
    weights = load_weights(tmp_path / "m.caffemodel")
    assert list(weights) == ["conv", "fc"]
    assert [a.shape for a in weights["conv"]] == [(2, 1, 3, 3), (2,)]
    assert [a.shape for a in weights["fc"]] == [(1, 1, 4, 18), (1, 1, 1, 4)]
    for layer in net.layer:
        for blob, array in zip(layer.blobs, weights[layer.name]):
            assert np.array_equal(array.reshape(-1), blob.data)


def test_load_weights_skips_layers_without_blobs(tmp_path):
    net = small_net()
    net.layer.add(name="relu", type="ReLU")
    write_caffemodel(net, tmp_path / "m.caffemodel")
    assert "relu" not in load_weights(tmp_path / "m.caffemodel")


def test_later_layer_of_the_same_name_wins_in_load_weights(tmp_path):
    net = NetParameter()
    net.layer.add(name="a").blobs.append(array_to_blob(np.zeros(2, np.float32)))
    net.layer.add(name="a").blobs.append(array_to_blob(np.ones(3, np.float32)))
    write_caffemodel(net, tmp_path / "m.caffemodel")
    assert load_weights(tmp_path / "m.caffemodel")["a"][0].tolist() == [1.0, 1.0, 1.0]


def _owner(array):
    """The object at the end of an array's base chain (through numpy bases and memoryviews)."""
    while True:
        if isinstance(array, np.ndarray) and array.base is not None:
            array = array.base
        elif isinstance(array, memoryview):
            array = array.obj
        else:
            return array


def test_loaded_weights_are_views_into_the_mapped_file(tmp_path):
    write_caffemodel(small_net(), tmp_path / "m.caffemodel")
    array = load_weights(tmp_path / "m.caffemodel")["conv"][0]
    assert array.base is not None and not array.flags.owndata
    assert isinstance(_owner(array), mmap.mmap)


def test_writing_to_a_loaded_array_never_changes_the_file(tmp_path):
    path = tmp_path / "m.caffemodel"
    write_caffemodel(small_net(), path)
    before = path.read_bytes()
    load_weights(path)["conv"][0][...] = 42.0
    assert path.read_bytes() == before


def test_packed_blob_data_is_decoded_without_a_copy():
    data = bytearray(b"\x2a\x0c" + FLOATS)
    blob = decode(BlobProto, data)
    data[2:6] = struct.pack("<f", 7.0)  # the array is a view into the buffer
    assert blob.data[0] == 7.0


def test_writer_streams_arrays_with_the_same_bytes_as_tobytes(tmp_path):
    values = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    write_binaryproto(BlobProto(data=values), tmp_path / "b.binaryproto")
    assert (tmp_path / "b.binaryproto").read_bytes() == b"\x2a\xa0\x1f" + values.tobytes()  # 4000 = a0 1f


# ------------------------------------------------------------------------------------------- errors
def test_truncated_caffemodel_names_the_byte_offset(tmp_path):
    path = tmp_path / "m.caffemodel"
    write_caffemodel(small_net(), path)
    path.write_bytes(path.read_bytes()[:20])
    # name "small" is bytes 0-6 (0a 05 s m a l l); the first layer's key is at byte 7, and its length
    # says more bytes follow than the 20 kept
    with pytest.raises(CaffemodelError, match=f"{path}: byte 7: truncated field 100 of NetParameter"):
        read_caffemodel(path)


def test_truncated_varint_is_an_error_at_its_offset():
    with pytest.raises(CaffemodelError, match="byte 4: truncated varint"):
        decode(NetParameter, b"\x0a\x01a\x28\x80")  # force_backward's value starts at byte 4, unfinished


def test_overlong_varint_is_an_error():
    with pytest.raises(CaffemodelError, match="byte 1: malformed varint"):
        decode(NetParameter, b"\x28" + b"\xff" * 11)


def test_group_wire_type_is_an_error():
    with pytest.raises(CaffemodelError, match="byte 0: protobuf groups"):
        decode(NetParameter, b"\x0b")


def test_field_number_zero_is_an_error():
    with pytest.raises(CaffemodelError, match="field number 0"):
        decode(NetParameter, b"\x00\x00")


def test_packed_floats_with_a_partial_value_are_an_error():
    with pytest.raises(CaffemodelError, match="not a multiple of 4"):
        decode(BlobProto, b"\x2a\x03\x00\x00\x00")


def test_invalid_utf8_name_is_an_error():
    with pytest.raises(CaffemodelError, match="byte 2: field name of NetParameter is not valid UTF-8"):
        decode(NetParameter, b"\x0a\x01\xff")


def test_prototxt_read_as_caffemodel_gives_a_hint(tmp_path):
    path = tmp_path / "deploy.caffemodel"
    path.write_text('name: "net"\nlayer {\n  name: "a"\n  type: "ReLU"\n}\n')
    with pytest.raises(CaffemodelError, match="looks like text: is it a prototxt"):
        read_caffemodel(path)


def test_text_that_happens_to_decode_is_still_refused_as_a_caffemodel(tmp_path):
    path = tmp_path / "text.caffemodel"
    path.write_bytes(b"hx")  # 'h' = key of field 13 (unknown), varint 'x' = 120: valid protobuf, all unknown
    with pytest.raises(CaffemodelError, match="looks[ ]like text: is it a prototxt"):
        read_caffemodel(path)


def test_empty_caffemodel_is_an_error(tmp_path):
    (tmp_path / "empty.caffemodel").write_bytes(b"")
    with pytest.raises(CaffemodelError, match="empty"):
        read_caffemodel(tmp_path / "empty.caffemodel")


def test_missing_caffemodel_is_a_caffemodel_error(tmp_path):
    with pytest.raises(CaffemodelError, match="no such file"):
        read_caffemodel(tmp_path / "absent.caffemodel")


def test_blob_with_too_few_values_for_its_shape_is_an_error():
    blob = BlobProto(data=[1.0, 2.0])
    blob.shape.dim.extend([3])
    with pytest.raises(CaffemodelError, match=r"shape \(3,\) needs 3 values but the file holds 2"):
        blob_to_array(blob)


def test_blob_with_a_huge_corrupt_shape_is_an_error_not_a_wraparound():
    blob = BlobProto(data=[1.0])
    blob.shape.dim.extend([1 << 32, 1 << 32])  # 2**64 values: wraps to 0 in int64
    with pytest.raises(CaffemodelError, match="needs"):
        blob_to_array(blob)


def _resident_kib_of_map(address):
    """The Rss (KiB) of this process's mapping that contains `address`, from /proc/self/smaps."""
    with open("/proc/self/smaps") as smaps:
        inside = False
        for line in smaps:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                low, high = (int(x, 16) for x in head.split("-"))
                inside = low <= address < high
            elif inside and head == "Rss:":
                return int(line.split()[1])
    raise AssertionError("no mapping holds the array")


def test_release_pages_drops_a_files_pages_from_memory_and_keeps_its_values(tmp_path):
    from eigen_depth.caffe.io import read_bytes, release_pages
    values = np.arange(4 << 20, dtype="<f4")  # 16 MiB
    path = tmp_path / "weights.bin"
    path.write_bytes(values.tobytes())
    mapping = read_bytes(path)
    array = np.frombuffer(memoryview(mapping).cast("B"), "<f4")[1:]  # not page-aligned: whole pages inside go
    assert array.sum(dtype=np.float64) == values[1:].sum(dtype=np.float64)  # every page read
    resident = _resident_kib_of_map(array.ctypes.data)
    assert resident >= 15 << 10
    release_pages(array)
    assert _resident_kib_of_map(array.ctypes.data) <= 8  # at most the two partial pages at the ends
    np.testing.assert_array_equal(array, values[1:])   # read again from the file


def test_release_pages_leaves_arrays_that_view_no_file_alone():
    from eigen_depth.caffe.io import release_pages
    heap = np.arange(1 << 20, dtype=np.float32)
    release_pages(heap)
    release_pages(heap[::2])
    in_bytes = np.frombuffer(bytearray(heap.tobytes()), np.float32)
    release_pages(in_bytes)
    np.testing.assert_array_equal(heap, np.arange(1 << 20, dtype=np.float32))
    np.testing.assert_array_equal(in_bytes, heap)
