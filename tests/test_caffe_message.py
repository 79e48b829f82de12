"""The proto2 message model: defaults, presence, float32 storage, checks, merge and equality semantics."""
import math

import numpy as np
import pytest

from eigen_depth.caffe import BlobProto, LayerParameter, NetParameter, SolverParameter, schema


def test_unset_scalar_reads_as_its_default_and_is_absent():
    param = schema.ConvolutionParameter()
    assert param.group == 1 and param.bias_term is True and not param.HasField("group")


def test_setting_a_default_value_makes_the_field_present():
    param = schema.ConvolutionParameter(group=1)
    assert param.HasField("group")


def test_float_field_stores_the_nearest_float32():
    assert SolverParameter(base_lr=0.1).base_lr == 0.10000000149011612


def test_double_field_keeps_double_precision():
    assert schema.BlobProto(double_data=[0.1]).double_data.tolist() == [0.1]


def test_float_above_float32_range_saturates_to_infinity():
    assert SolverParameter(base_lr=1e39).base_lr == math.inf


def test_blob_data_can_be_given_to_the_constructor():
    assert BlobProto(data=[1, 2.5]).data.tolist() == [1.0, 2.5]


def test_blob_data_is_a_float32_array():
    blob = BlobProto()
    blob.data = [1, 2]
    assert blob.data.dtype == np.float32 and blob.data.tolist() == [1.0, 2.0]


def test_enum_field_accepts_a_value_name():
    param = schema.PoolingParameter(pool="AVE")
    assert param.pool == 1 == schema.PoolingParameter.AVE


def test_unknown_enum_name_is_refused():
    with pytest.raises(ValueError, match="not a value of PoolMethod"):
        schema.PoolingParameter(pool="MEDIAN")


def test_out_of_range_unsigned_value_is_refused():
    with pytest.raises(ValueError, match="cannot hold -1"):
        schema.ConvolutionParameter(num_output=-1)


def test_string_for_an_integer_field_is_refused():
    with pytest.raises(TypeError, match="takes an integer"):
        schema.ConvolutionParameter(num_output="3")


def test_unknown_field_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no field 'num_ouput'"):
        schema.ConvolutionParameter().num_ouput = 3


def test_setting_a_field_of_a_sub_message_makes_it_present():
    layer = LayerParameter()
    assert not layer.HasField("convolution_param")
    layer.convolution_param.num_output = 8
    assert layer.HasField("convolution_param") and layer.convolution_param.num_output == 8


def test_appending_to_a_repeated_field_of_a_sub_message_makes_it_present():
    layer = LayerParameter()
    layer.convolution_param.kernel_size.append(3)
    assert layer.HasField("convolution_param") and list(layer.convolution_param.kernel_size) == [3]


def test_add_appends_a_new_message_to_a_repeated_field():
    net = NetParameter()
    layer = net.layer.add(name="a", type="ReLU")
    assert len(net.layer) == 1 and net.layer[0] is layer and layer.type == "ReLU"


def test_merge_overwrites_scalars_and_appends_repeated_fields():
    a = LayerParameter(name="a", bottom=["x"])
    a.MergeFrom(LayerParameter(name="b", bottom=["y"]))
    assert a.name == "b" and list(a.bottom) == ["x", "y"]


def test_merge_joins_blob_arrays():
    blob = BlobProto(data=[1.0])
    blob.MergeFrom(BlobProto(data=[2.0, 3.0]))
    assert blob.data.tolist() == [1.0, 2.0, 3.0]


def test_copy_from_replaces_the_whole_message():
    a = LayerParameter(name="a", top=["t"])
    a.CopyFrom(LayerParameter(type="ReLU"))
    assert a.name == "" and a.type == "ReLU" and list(a.top) == []


def test_clear_field_makes_it_absent_again():
    net = NetParameter(name="n")
    net.ClearField("name")
    assert not net.HasField("name") and net == NetParameter()


def test_messages_with_nan_in_a_repeated_float_are_equal():
    assert LayerParameter(loss_weight=[math.nan, 1.0]) == LayerParameter(loss_weight=[math.nan, 1.0])


def test_messages_with_different_repeated_floats_are_unequal():
    assert LayerParameter(loss_weight=[1.0, 2.0]) != LayerParameter(loss_weight=[1.0])


def test_absent_and_explicit_default_are_unequal_as_in_protobuf():
    assert schema.ConvolutionParameter(group=1) != schema.ConvolutionParameter()


def test_solver_parameter_field_numbers_match_caffe_proto():
    numbers = {name: SolverParameter.FIELDS_BY_NAME[name].number
               for name in ("net", "base_lr", "lr_policy", "type", "solver_type", "layer_wise_reduce", "weights",
                            "iter_size", "snapshot_format", "random_seed")}
    assert numbers == {"net": 24, "base_lr": 5, "lr_policy": 8, "type": 40, "solver_type": 30,
                       "layer_wise_reduce": 41, "weights": 42, "iter_size": 36, "snapshot_format": 37,
                       "random_seed": 20}


def test_layer_parameter_field_numbers_match_caffe_proto():
    expected = {"name": 1, "type": 2, "bottom": 3, "top": 4, "phase": 10, "loss_weight": 5, "param": 6,
                "blobs": 7, "propagate_down": 11, "include": 8, "exclude": 9, "transform_param": 100,
                "loss_param": 101, "concat_param": 104, "convolution_param": 106, "crop_param": 144,
                "data_param": 107, "dropout_param": 108, "eltwise_param": 110, "flatten_param": 135,
                "inner_product_param": 117, "input_param": 143, "log_param": 134, "lrn_param": 118,
                "mvn_param": 120, "pooling_param": 121, "power_param": 122, "relu_param": 123,
                "reshape_param": 133, "scale_param": 142, "bias_param": 141, "batch_norm_param": 139,
                "slice_param": 126, "softmax_param": 125}
    assert {name: LayerParameter.FIELDS_BY_NAME[name].number for name in expected} == expected


def test_v1_layer_parameter_field_numbers_match_caffe_proto():
    expected = {"bottom": 2, "top": 3, "name": 4, "type": 5, "blobs": 6, "blobs_lr": 7, "weight_decay": 8,
                "param": 1001, "include": 32, "exclude": 33, "loss_weight": 35, "concat_param": 9,
                "convolution_param": 10, "data_param": 11, "dropout_param": 12, "eltwise_param": 24,
                "inner_product_param": 17, "lrn_param": 18, "mvn_param": 34, "pooling_param": 19,
                "power_param": 21, "relu_param": 30, "slice_param": 31, "transform_param": 36, "loss_param": 42}
    fields = schema.V1LayerParameter.FIELDS_BY_NAME
    assert {name: fields[name].number for name in expected} == expected


def test_an_absent_sub_message_is_the_same_object_on_each_access():
    layer = LayerParameter()
    assert layer.pooling_param is layer.pooling_param


def test_a_sub_message_reference_taken_before_its_parent_is_set_still_writes_into_it():
    layer = LayerParameter()
    filler = layer.convolution_param.weight_filler
    layer.convolution_param.num_output = 3
    filler.type = "xavier"
    assert (layer.convolution_param.num_output, layer.convolution_param.weight_filler.type) == (3, "xavier")


def test_a_sub_message_reference_is_detached_by_clear_field():
    layer = LayerParameter()
    pooling = layer.pooling_param
    layer.ClearField("pooling_param")
    pooling.kernel_size = 2
    assert not layer.HasField("pooling_param")
