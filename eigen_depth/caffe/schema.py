"""BVLC Caffe's caffe.proto, the subset a port needs, declared in Python (field numbers, kinds, defaults).

Fields are listed in caffe.proto's declaration order, which is also the order the text writer uses.
Unknown fields in binary files are skipped (and kept for re-writing); in text files they are errors.
"""
from .message import Enum, Field, message_type

def opt(name, number, kind, default=None, type_name=None, enum=None):
    return Field(name, number, kind, default=default, type_name=type_name, enum=enum)


def rep(name, number, kind, type_name=None, enum=None):
    return Field(name, number, kind, repeated=True, type_name=type_name, enum=enum)


def msg(name, number, type_name):
    return Field(name, number, "message", type_name=type_name)


def rep_msg(name, number, type_name):
    return Field(name, number, "message", repeated=True, type_name=type_name)


Phase = Enum("Phase", [("TRAIN", 0), ("TEST", 1)])
Engine = Enum("Engine", [("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)])
VarianceNorm = Enum("VarianceNorm", [("FAN_IN", 0), ("FAN_OUT", 1), ("AVERAGE", 2)])
DB = Enum("DB", [("LEVELDB", 0), ("LMDB", 1)])
PoolMethod = Enum("PoolMethod", [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)])
RoundMode = Enum("RoundMode", [("CEIL", 0), ("FLOOR", 1)])
NormRegion = Enum("NormRegion", [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)])
EltwiseOp = Enum("EltwiseOp", [("PROD", 0), ("SUM", 1), ("MAX", 2)])
NormalizationMode = Enum("NormalizationMode", [("FULL", 0), ("VALID", 1), ("BATCH_SIZE", 2), ("NONE", 3)])
DimCheckMode = Enum("DimCheckMode", [("STRICT", 0), ("PERMISSIVE", 1)])
ReductionOp = Enum("ReductionOp", [("SUM", 1), ("ASUM", 2), ("SUMSQ", 3), ("MEAN", 4)])
HingeNorm = Enum("Norm", [("L1", 1), ("L2", 2)])
SnapshotFormat = Enum("SnapshotFormat", [("HDF5", 0), ("BINARYPROTO", 1)])
SolverMode = Enum("SolverMode", [("CPU", 0), ("GPU", 1)])
SolverType = Enum("SolverType", [("SGD", 0), ("NESTEROV", 1), ("ADAGRAD", 2), ("RMSPROP", 3),
                                 ("ADADELTA", 4), ("ADAM", 5)])
V1LayerType = Enum("LayerType", [
    ("NONE", 0), ("ABSVAL", 35), ("ACCURACY", 1), ("ARGMAX", 30), ("BNLL", 2), ("CONCAT", 3),
    ("CONTRASTIVE_LOSS", 37), ("CONVOLUTION", 4), ("DATA", 5), ("DECONVOLUTION", 39),
    ("DROPOUT", 6), ("DUMMY_DATA", 32), ("EUCLIDEAN_LOSS", 7), ("ELTWISE", 25), ("EXP", 38),
    ("FLATTEN", 8), ("HDF5_DATA", 9), ("HDF5_OUTPUT", 10), ("HINGE_LOSS", 28), ("IM2COL", 11),
    ("IMAGE_DATA", 12), ("INFOGAIN_LOSS", 13), ("INNER_PRODUCT", 14), ("LRN", 15),
    ("MEMORY_DATA", 29), ("MULTINOMIAL_LOGISTIC_LOSS", 16), ("MVN", 34), ("POOLING", 17),
    ("POWER", 26), ("RELU", 18), ("SIGMOID", 19), ("SIGMOID_CROSS_ENTROPY_LOSS", 27),
    ("SILENCE", 36), ("SOFTMAX", 20), ("SOFTMAX_LOSS", 21), ("SPLIT", 22), ("SLICE", 33),
    ("TANH", 23), ("WINDOW_DATA", 24), ("THRESHOLD", 31),
])

BlobShape = message_type("BlobShape", [rep("dim", 1, "int64")])
BlobProto = message_type("BlobProto", [
    msg("shape", 7, "BlobShape"),
    rep("data", 5, "float_array"),
    rep("diff", 6, "float_array"),
    rep("double_data", 8, "double_array"),
    rep("double_diff", 9, "double_array"),
    opt("num", 1, "int32"), opt("channels", 2, "int32"), opt("height", 3, "int32"), opt("width", 4, "int32"),
])
BlobProtoVector = message_type("BlobProtoVector", [rep_msg("blobs", 1, "BlobProto")])
Datum = message_type("Datum", [
    opt("channels", 1, "int32"), opt("height", 2, "int32"), opt("width", 3, "int32"),
    opt("data", 4, "bytes"), opt("label", 5, "int32"), rep("float_data", 6, "float"),
    opt("encoded", 7, "bool"),
])
FillerParameter = message_type("FillerParameter", [
    opt("type", 1, "string", "constant"), opt("value", 2, "float"), opt("min", 3, "float"),
    opt("max", 4, "float", 1.0), opt("mean", 5, "float"), opt("std", 6, "float", 1.0),
    opt("sparse", 7, "int32", -1), opt("variance_norm", 8, "enum", enum=VarianceNorm),
], enums=[VarianceNorm])
NetState = message_type("NetState", [
    opt("phase", 1, "enum", "TEST", enum=Phase), opt("level", 2, "int32"), rep("stage", 3, "string"),
])
NetStateRule = message_type("NetStateRule", [
    opt("phase", 1, "enum", enum=Phase), opt("min_level", 2, "int32"), opt("max_level", 3, "int32"),
    rep("stage", 4, "string"), rep("not_stage", 5, "string"),
])
ParamSpec = message_type("ParamSpec", [
    opt("name", 1, "string"), opt("share_mode", 2, "enum", enum=DimCheckMode),
    opt("lr_mult", 3, "float", 1.0), opt("decay_mult", 4, "float", 1.0),
], enums=[DimCheckMode])
TransformationParameter = message_type("TransformationParameter", [
    opt("scale", 1, "float", 1.0), opt("mirror", 2, "bool"), opt("crop_size", 3, "uint32"),
    opt("mean_file", 4, "string"), rep("mean_value", 5, "float"), opt("force_color", 6, "bool"),
    opt("force_gray", 7, "bool"),
])
LossParameter = message_type("LossParameter", [
    opt("ignore_label", 1, "int32"),
    opt("normalization", 3, "enum", "VALID", enum=NormalizationMode), opt("normalize", 2, "bool"),
], enums=[NormalizationMode])
AccuracyParameter = message_type("AccuracyParameter", [
    opt("top_k", 1, "uint32", 1), opt("axis", 2, "int32", 1), opt("ignore_label", 3, "int32"),
])
ArgMaxParameter = message_type("ArgMaxParameter", [
    opt("out_max_val", 1, "bool"), opt("top_k", 2, "uint32", 1), opt("axis", 3, "int32"),
])
ConcatParameter = message_type("ConcatParameter", [
    opt("axis", 2, "int32", 1), opt("concat_dim", 1, "uint32", 1),
])
BatchNormParameter = message_type("BatchNormParameter", [
    opt("use_global_stats", 1, "bool"), opt("moving_average_fraction", 2, "float", 0.999),
    opt("eps", 3, "float", 1e-5),
])
BiasParameter = message_type("BiasParameter", [
    opt("axis", 1, "int32", 1), opt("num_axes", 2, "int32", 1), msg("filler", 3, "FillerParameter"),
])
ContrastiveLossParameter = message_type("ContrastiveLossParameter", [
    opt("margin", 1, "float", 1.0), opt("legacy_version", 2, "bool"),
])
ConvolutionParameter = message_type("ConvolutionParameter", [
    opt("num_output", 1, "uint32"), opt("bias_term", 2, "bool", True),
    rep("pad", 3, "uint32"), rep("kernel_size", 4, "uint32"), rep("stride", 6, "uint32"),
    rep("dilation", 18, "uint32"),
    opt("pad_h", 9, "uint32"), opt("pad_w", 10, "uint32"), opt("kernel_h", 11, "uint32"),
    opt("kernel_w", 12, "uint32"), opt("stride_h", 13, "uint32"), opt("stride_w", 14, "uint32"),
    opt("group", 5, "uint32", 1),
    msg("weight_filler", 7, "FillerParameter"), msg("bias_filler", 8, "FillerParameter"),
    opt("engine", 15, "enum", enum=Engine), opt("axis", 16, "int32", 1),
    opt("force_nd_im2col", 17, "bool"),
], enums=[Engine])
CropParameter = message_type("CropParameter", [opt("axis", 1, "int32", 2), rep("offset", 2, "uint32")])
DataParameter = message_type("DataParameter", [
    opt("source", 1, "string"), opt("batch_size", 4, "uint32"), opt("rand_skip", 7, "uint32"),
    opt("backend", 8, "enum", enum=DB), opt("scale", 2, "float", 1.0), opt("mean_file", 3, "string"),
    opt("crop_size", 5, "uint32"), opt("mirror", 6, "bool"), opt("force_encoded_color", 9, "bool"),
    opt("prefetch", 10, "uint32", 4),
], enums=[DB])
DropoutParameter = message_type("DropoutParameter", [opt("dropout_ratio", 1, "float", 0.5)])
DummyDataParameter = message_type("DummyDataParameter", [
    rep_msg("data_filler", 1, "FillerParameter"), rep_msg("shape", 6, "BlobShape"),
    rep("num", 2, "uint32"), rep("channels", 3, "uint32"), rep("height", 4, "uint32"),
    rep("width", 5, "uint32"),
])
EltwiseParameter = message_type("EltwiseParameter", [
    opt("operation", 1, "enum", "SUM", enum=EltwiseOp), rep("coeff", 2, "float"),
    opt("stable_prod_grad", 3, "bool", True),
], enums=[EltwiseOp])
ELUParameter = message_type("ELUParameter", [opt("alpha", 1, "float", 1.0)])
EmbedParameter = message_type("EmbedParameter", [
    opt("num_output", 1, "uint32"), opt("input_dim", 2, "uint32"), opt("bias_term", 3, "bool", True),
    msg("weight_filler", 4, "FillerParameter"), msg("bias_filler", 5, "FillerParameter"),
])
ExpParameter = message_type("ExpParameter", [
    opt("base", 1, "float", -1.0), opt("scale", 2, "float", 1.0), opt("shift", 3, "float", 0.0),
])
FlattenParameter = message_type("FlattenParameter", [
    opt("axis", 1, "int32", 1), opt("end_axis", 2, "int32", -1),
])
HDF5DataParameter = message_type("HDF5DataParameter", [
    opt("source", 1, "string"), opt("batch_size", 2, "uint32"), opt("shuffle", 3, "bool"),
])
HDF5OutputParameter = message_type("HDF5OutputParameter", [opt("file_name", 1, "string")])
HingeLossParameter = message_type("HingeLossParameter", [
    opt("norm", 1, "enum", "L1", enum=HingeNorm),
], enums=[HingeNorm])
ImageDataParameter = message_type("ImageDataParameter", [
    opt("source", 1, "string"), opt("batch_size", 4, "uint32", 1), opt("rand_skip", 7, "uint32"),
    opt("shuffle", 8, "bool"), opt("new_height", 9, "uint32"), opt("new_width", 10, "uint32"),
    opt("is_color", 11, "bool", True), opt("scale", 2, "float", 1.0), opt("mean_file", 3, "string"),
    opt("crop_size", 5, "uint32"), opt("mirror", 6, "bool"), opt("root_folder", 12, "string"),
])
InfogainLossParameter = message_type("InfogainLossParameter", [
    opt("source", 1, "string"), opt("axis", 2, "int32", 1),
])
InnerProductParameter = message_type("InnerProductParameter", [
    opt("num_output", 1, "uint32"), opt("bias_term", 2, "bool", True),
    msg("weight_filler", 3, "FillerParameter"), msg("bias_filler", 4, "FillerParameter"),
    opt("axis", 5, "int32", 1), opt("transpose", 6, "bool"),
])
InputParameter = message_type("InputParameter", [rep_msg("shape", 1, "BlobShape")])
LogParameter = message_type("LogParameter", [
    opt("base", 1, "float", -1.0), opt("scale", 2, "float", 1.0), opt("shift", 3, "float", 0.0),
])
LRNParameter = message_type("LRNParameter", [
    opt("local_size", 1, "uint32", 5), opt("alpha", 2, "float", 1.0), opt("beta", 3, "float", 0.75),
    opt("norm_region", 4, "enum", enum=NormRegion), opt("k", 5, "float", 1.0),
    opt("engine", 6, "enum", enum=Engine),
], enums=[NormRegion, Engine])
MemoryDataParameter = message_type("MemoryDataParameter", [
    opt("batch_size", 1, "uint32"), opt("channels", 2, "uint32"), opt("height", 3, "uint32"),
    opt("width", 4, "uint32"),
])
MVNParameter = message_type("MVNParameter", [
    opt("normalize_variance", 1, "bool", True), opt("across_channels", 2, "bool"),
    opt("eps", 3, "float", 1e-9),
])
ParameterParameter = message_type("ParameterParameter", [msg("shape", 1, "BlobShape")])
PoolingParameter = message_type("PoolingParameter", [
    opt("pool", 1, "enum", enum=PoolMethod), opt("pad", 4, "uint32"), opt("pad_h", 9, "uint32"),
    opt("pad_w", 10, "uint32"), opt("kernel_size", 2, "uint32"), opt("kernel_h", 5, "uint32"),
    opt("kernel_w", 6, "uint32"), opt("stride", 3, "uint32", 1), opt("stride_h", 7, "uint32"),
    opt("stride_w", 8, "uint32"), opt("engine", 11, "enum", enum=Engine),
    opt("global_pooling", 12, "bool"), opt("round_mode", 13, "enum", enum=RoundMode),
    # `ceil_mode` of converted community models (OpenCV reads it): accepted in text; its number is not Caffe's
    # (BVLC's 13 is round_mode), so a binary file written here keeps it apart from round_mode
    opt("ceil_mode", 1013, "bool", True),
], enums=[PoolMethod, Engine, RoundMode])
PowerParameter = message_type("PowerParameter", [
    opt("power", 1, "float", 1.0), opt("scale", 2, "float", 1.0), opt("shift", 3, "float", 0.0),
])
PReLUParameter = message_type("PReLUParameter", [
    msg("filler", 1, "FillerParameter"), opt("channel_shared", 2, "bool"),
])
PythonParameter = message_type("PythonParameter", [
    opt("module", 1, "string"), opt("layer", 2, "string"), opt("param_str", 3, "string"),
    opt("share_in_parallel", 4, "bool"),
])
ReductionParameter = message_type("ReductionParameter", [
    opt("operation", 1, "enum", "SUM", enum=ReductionOp), opt("axis", 2, "int32"),
    opt("coeff", 3, "float", 1.0),
], enums=[ReductionOp])
ReLUParameter = message_type("ReLUParameter", [
    opt("negative_slope", 1, "float"), opt("engine", 2, "enum", enum=Engine),
], enums=[Engine])
ReshapeParameter = message_type("ReshapeParameter", [
    msg("shape", 1, "BlobShape"), opt("axis", 2, "int32"), opt("num_axes", 3, "int32", -1),
])
ScaleParameter = message_type("ScaleParameter", [
    opt("axis", 1, "int32", 1), opt("num_axes", 2, "int32", 1), msg("filler", 3, "FillerParameter"),
    opt("bias_term", 4, "bool"), msg("bias_filler", 5, "FillerParameter"),
])
SigmoidParameter = message_type("SigmoidParameter", [opt("engine", 1, "enum", enum=Engine)], enums=[Engine])
SoftmaxParameter = message_type("SoftmaxParameter", [
    opt("engine", 1, "enum", enum=Engine), opt("axis", 2, "int32", 1),
], enums=[Engine])
SliceParameter = message_type("SliceParameter", [
    opt("axis", 3, "int32", 1), rep("slice_point", 2, "uint32"), opt("slice_dim", 1, "uint32", 1),
])
TanHParameter = message_type("TanHParameter", [opt("engine", 1, "enum", enum=Engine)], enums=[Engine])
ThresholdParameter = message_type("ThresholdParameter", [opt("threshold", 1, "float")])
SwishParameter = message_type("SwishParameter", [opt("beta", 1, "float", 1.0)])
ClipParameter = message_type("ClipParameter", [opt("min", 1, "float"), opt("max", 2, "float")])
TileParameter = message_type("TileParameter", [opt("axis", 1, "int32", 1), opt("tiles", 2, "int32")])
SPPParameter = message_type("SPPParameter", [
    opt("pyramid_height", 1, "uint32"), opt("pool", 2, "enum", "MAX", enum=PoolMethod),
    opt("engine", 6, "enum", enum=Engine),
], enums=[PoolMethod, Engine])
RecurrentParameter = message_type("RecurrentParameter", [
    opt("num_output", 1, "uint32"), msg("weight_filler", 2, "FillerParameter"),
    msg("bias_filler", 3, "FillerParameter"), opt("debug_info", 4, "bool"), opt("expose_hidden", 5, "bool"),
])
WindowDataParameter = message_type("WindowDataParameter", [
    opt("source", 1, "string"), opt("scale", 2, "float", 1.0), opt("mean_file", 3, "string"),
    opt("batch_size", 4, "uint32"), opt("crop_size", 5, "uint32"), opt("mirror", 6, "bool"),
    opt("fg_threshold", 7, "float", 0.5), opt("bg_threshold", 8, "float", 0.5), opt("fg_fraction", 9, "float", 0.25),
    opt("context_pad", 10, "uint32"), opt("crop_mode", 11, "string", "warp"), opt("cache_images", 12, "bool"),
    opt("root_folder", 13, "string"),
])

# Layer-specific parameter messages: (field name, V2 number, message type, V1 number or None).
LAYER_PARAMS = [
    ("accuracy_param", 102, "AccuracyParameter", 27),
    ("argmax_param", 103, "ArgMaxParameter", 23),
    ("batch_norm_param", 139, "BatchNormParameter", None),
    ("bias_param", 141, "BiasParameter", None),
    ("concat_param", 104, "ConcatParameter", 9),
    ("contrastive_loss_param", 105, "ContrastiveLossParameter", 40),
    ("convolution_param", 106, "ConvolutionParameter", 10),
    ("crop_param", 144, "CropParameter", None),
    ("data_param", 107, "DataParameter", 11),
    ("dropout_param", 108, "DropoutParameter", 12),
    ("dummy_data_param", 109, "DummyDataParameter", 26),
    ("eltwise_param", 110, "EltwiseParameter", 24),
    ("elu_param", 140, "ELUParameter", None),
    ("embed_param", 137, "EmbedParameter", None),
    ("exp_param", 111, "ExpParameter", 41),
    ("flatten_param", 135, "FlattenParameter", None),
    ("hdf5_data_param", 112, "HDF5DataParameter", 13),
    ("hdf5_output_param", 113, "HDF5OutputParameter", 14),
    ("hinge_loss_param", 114, "HingeLossParameter", 29),
    ("image_data_param", 115, "ImageDataParameter", 15),
    ("infogain_loss_param", 116, "InfogainLossParameter", 16),
    ("inner_product_param", 117, "InnerProductParameter", 17),
    ("input_param", 143, "InputParameter", None),
    ("log_param", 134, "LogParameter", None),
    ("lrn_param", 118, "LRNParameter", 18),
    ("memory_data_param", 119, "MemoryDataParameter", 22),
    ("mvn_param", 120, "MVNParameter", 34),
    ("parameter_param", 145, "ParameterParameter", None),
    ("pooling_param", 121, "PoolingParameter", 19),
    ("power_param", 122, "PowerParameter", 21),
    ("prelu_param", 131, "PReLUParameter", None),
    ("python_param", 130, "PythonParameter", None),
    ("reduction_param", 136, "ReductionParameter", None),
    ("relu_param", 123, "ReLUParameter", 30),
    ("reshape_param", 133, "ReshapeParameter", None),
    ("scale_param", 142, "ScaleParameter", None),
    ("sigmoid_param", 124, "SigmoidParameter", 38),
    ("softmax_param", 125, "SoftmaxParameter", 39),
    ("slice_param", 126, "SliceParameter", 31),
    ("tanh_param", 127, "TanHParameter", 37),
    ("threshold_param", 128, "ThresholdParameter", 25),
    ("swish_param", 147, "SwishParameter", None),
    ("clip_param", 148, "ClipParameter", None),
    ("tile_param", 138, "TileParameter", None),
    ("spp_param", 132, "SPPParameter", None),
    ("recurrent_param", 146, "RecurrentParameter", None),
    ("window_data_param", 129, "WindowDataParameter", 20),
]

LayerParameter = message_type("LayerParameter", [
    opt("name", 1, "string"), opt("type", 2, "string"), rep("bottom", 3, "string"), rep("top", 4, "string"),
    opt("phase", 10, "enum", enum=Phase), rep("loss_weight", 5, "float"), rep_msg("param", 6, "ParamSpec"),
    rep_msg("blobs", 7, "BlobProto"), rep("propagate_down", 11, "bool"),
    rep_msg("include", 8, "NetStateRule"), rep_msg("exclude", 9, "NetStateRule"),
    msg("transform_param", 100, "TransformationParameter"), msg("loss_param", 101, "LossParameter"),
] + [msg(name, number, type_name) for name, number, type_name, _ in LAYER_PARAMS])

V1LayerParameter = message_type("V1LayerParameter", [
    rep("bottom", 2, "string"), rep("top", 3, "string"), opt("name", 4, "string"),
    rep_msg("include", 32, "NetStateRule"), rep_msg("exclude", 33, "NetStateRule"),
    opt("type", 5, "enum", enum=V1LayerType), rep_msg("blobs", 6, "BlobProto"),
    rep("param", 1001, "string"), rep("blobs_lr", 7, "float"), rep("weight_decay", 8, "float"),
    rep("loss_weight", 35, "float"),
] + [msg(name, v1, type_name) for name, _, type_name, v1 in LAYER_PARAMS if v1 is not None] + [
    msg("transform_param", 36, "TransformationParameter"), msg("loss_param", 42, "LossParameter"),
], enums=[V1LayerType])

NetParameter = message_type("NetParameter", [
    opt("name", 1, "string"), rep("input", 3, "string"), rep_msg("input_shape", 8, "BlobShape"),
    rep("input_dim", 4, "int32"), opt("force_backward", 5, "bool"), msg("state", 6, "NetState"),
    opt("debug_info", 7, "bool"), rep_msg("layer", 100, "LayerParameter"),
    rep_msg("layers", 2, "V1LayerParameter"),
])

SolverParameter = message_type("SolverParameter", [
    opt("net", 24, "string"), msg("net_param", 25, "NetParameter"),
    opt("train_net", 1, "string"), rep("test_net", 2, "string"),
    msg("train_net_param", 21, "NetParameter"), rep_msg("test_net_param", 22, "NetParameter"),
    msg("train_state", 26, "NetState"), rep_msg("test_state", 27, "NetState"),
    rep("test_iter", 3, "int32"), opt("test_interval", 4, "int32"),
    opt("test_compute_loss", 19, "bool"), opt("test_initialization", 32, "bool", True),
    opt("base_lr", 5, "float"), opt("display", 6, "int32"), opt("average_loss", 33, "int32", 1),
    opt("max_iter", 7, "int32"), opt("iter_size", 36, "int32", 1), opt("lr_policy", 8, "string"),
    opt("gamma", 9, "float"), opt("power", 10, "float"), opt("momentum", 11, "float"),
    opt("weight_decay", 12, "float"), opt("regularization_type", 29, "string", "L2"),
    opt("stepsize", 13, "int32"), rep("stepvalue", 34, "int32"),
    opt("clip_gradients", 35, "float", -1.0), opt("snapshot", 14, "int32"),
    opt("snapshot_prefix", 15, "string"), opt("snapshot_diff", 16, "bool"),
    opt("snapshot_format", 37, "enum", "BINARYPROTO", enum=SnapshotFormat),
    opt("solver_mode", 17, "enum", "GPU", enum=SolverMode), opt("device_id", 18, "int32"),
    opt("random_seed", 20, "int64", -1), opt("type", 40, "string", "SGD"),
    opt("delta", 31, "float", 1e-8), opt("momentum2", 39, "float", 0.999),
    opt("rms_decay", 38, "float", 0.99), opt("debug_info", 23, "bool"),
    opt("snapshot_after_train", 28, "bool", True),
    opt("solver_type", 30, "enum", "SGD", enum=SolverType), opt("layer_wise_reduce", 41, "bool", True),
    rep("weights", 42, "string"),
], enums=[SnapshotFormat, SolverMode, SolverType])

SolverState = message_type("SolverState", [
    opt("iter", 1, "int32"), opt("learned_net", 2, "string"), rep_msg("history", 3, "BlobProto"),
    opt("current_step", 4, "int32"),
])

TRAIN, TEST = Phase.by_name["TRAIN"], Phase.by_name["TEST"]
