"""Writes the prototxt files of the thesis's successors (docs/successors.md): `python -m
eigen_depth.prototxt.successors` regenerates fcrn/net_deploy.prototxt and fcrn/net_train.prototxt.

FCRN (Laina et al. 2016): ResNet-50 with the layer names of the public ResNet-50 deploy prototxt (conv1,
bn_conv1, scale_conv1, res2a_branch1, ..., res5c), so a converted ImageNet caffemodel loads by name; then a
1x1 convolution to 1024 channels and four up-projection blocks (each: 2x unpooling, a 5x5 convolution, ReLU,
a 3x3 convolution, summed with a 5x5 projection of the unpooled input, ReLU; batch normalisation after each
convolution), and a 3x3 convolution to the depth map: input 304x228, output 160x128 (depth in metres).
The unpooling is a Deconvolution (kernel 2, stride 2, one group per channel, no bias, learning rate 0) whose
Caffe bilinear filler gives exactly the kernel [[1, 0], [0, 0]]: each value goes to the top-left of its 2x2
block, the rest 0, as the paper's unpooling.
"""
import os

FCRN_INPUT = (228, 304)      # height, width
FCRN_OUTPUT = (128, 160)
RESNET50_STAGES = [(2, "abc", 64, 1), (3, "abcd", 128, 2), (4, "abcdef", 256, 2), (5, "abc", 512, 2)]


class _Writer:
    def __init__(self, train):
        self.lines, self.train = [], train

    def layer(self, text):
        self.lines.append("layer { " + text + " }")

    def conv(self, name, bottom, outputs, kernel, stride=1, pad=0, bias=False, filler='type: "msra"'):
        bias_text = "" if bias else " bias_term: false"
        params = ' param { lr_mult: 1 decay_mult: 1 }' + (' param { lr_mult: 2 decay_mult: 0 }' if bias else "")
        self.layer(f'name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"{params} '
                   f'convolution_param {{ num_output: {outputs} kernel_size: {kernel} stride: {stride} pad: {pad}'
                   f'{bias_text} weight_filler {{ {filler} }} }}')
        return name

    def batch_norm(self, top, bn_name, scale_name):
        """Batch normalisation in place: BatchNorm (running statistics in deploy, batch statistics in
        training) then Scale with a bias, as the public ResNet-50 prototxt."""
        stats = "false" if self.train else "true"
        self.layer(f'name: "{bn_name}" type: "BatchNorm" bottom: "{top}" top: "{top}" '
                   f'batch_norm_param {{ use_global_stats: {stats} }}')
        self.layer(f'name: "{scale_name}" type: "Scale" bottom: "{top}" top: "{top}" '
                   f'scale_param {{ bias_term: true }}')

    def relu(self, name, top):
        self.layer(f'name: "{name}" type: "ReLU" bottom: "{top}" top: "{top}"')


def _resnet50(w, bottom):
    w.conv("conv1", bottom, 64, 7, 2, 3)
    w.batch_norm("conv1", "bn_conv1", "scale_conv1")
    w.relu("conv1_relu", "conv1")
    w.layer('name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" '
            'pooling_param { pool: MAX kernel_size: 3 stride: 2 }')
    previous = "pool1"
    for stage, blocks, width, stride in RESNET50_STAGES:
        for index, block in enumerate(blocks):
            name = f"res{stage}{block}"
            first_stride = stride if index == 0 else 1
            if index == 0:
                shortcut = w.conv(f"{name}_branch1", previous, 4 * width, 1, first_stride)
                w.batch_norm(shortcut, f"bn{stage}{block}_branch1", f"scale{stage}{block}_branch1")
            else:
                shortcut = previous
            top = w.conv(f"{name}_branch2a", previous, width, 1, first_stride)
            w.batch_norm(top, f"bn{stage}{block}_branch2a", f"scale{stage}{block}_branch2a")
            w.relu(f"{name}_branch2a_relu", top)
            top = w.conv(f"{name}_branch2b", top, width, 3, 1, 1)
            w.batch_norm(top, f"bn{stage}{block}_branch2b", f"scale{stage}{block}_branch2b")
            w.relu(f"{name}_branch2b_relu", top)
            top = w.conv(f"{name}_branch2c", top, 4 * width, 1)
            w.batch_norm(top, f"bn{stage}{block}_branch2c", f"scale{stage}{block}_branch2c")
            w.layer(f'name: "{name}" type: "Eltwise" bottom: "{shortcut}" bottom: "{top}" top: "{name}" '
                    f'eltwise_param {{ operation: SUM }}')
            w.relu(f"{name}_relu", name)
            previous = name
    return previous


def _up_projection(w, index, bottom, channels):
    """FCRN's up-projection: unpool, then (5x5 conv, BN, ReLU, 3x3 conv, BN) + (5x5 conv, BN), ReLU."""
    name = f"up{index}"
    w.layer(f'name: "{name}_unpool" type: "Deconvolution" bottom: "{bottom}" top: "{name}_unpool" '
            f'param {{ lr_mult: 0 decay_mult: 0 }} convolution_param {{ num_output: {channels} group: {channels} '
            f'kernel_size: 2 stride: 2 bias_term: false weight_filler {{ type: "bilinear" }} }}')
    out = channels // 2
    top = w.conv(f"{name}_conv5", f"{name}_unpool", out, 5, 1, 2)
    w.batch_norm(top, f"{name}_conv5_bn", f"{name}_conv5_scale")
    w.relu(f"{name}_conv5_relu", top)
    top = w.conv(f"{name}_conv3", top, out, 3, 1, 1)
    w.batch_norm(top, f"{name}_conv3_bn", f"{name}_conv3_scale")
    projection = w.conv(f"{name}_proj", f"{name}_unpool", out, 5, 1, 2)
    w.batch_norm(projection, f"{name}_proj_bn", f"{name}_proj_scale")
    w.layer(f'name: "{name}" type: "Eltwise" bottom: "{top}" bottom: "{projection}" top: "{name}" '
            f'eltwise_param {{ operation: SUM }}')
    w.relu(f"{name}_relu", name)
    return name, out


def fcrn_prototxt(kind):
    """The text of fcrn/net_<kind>.prototxt, kind "deploy" or "train"."""
    train = kind == "train"
    w = _Writer(train)
    height, width = FCRN_INPUT
    header = [f"# FCRN (Laina et al. 2016), written by eigen_depth/prototxt/successors.py; see docs/successors.md.",
              f'name: "fcrn_{kind}"']
    if train:
        crop = 'transform_param { mean_value: 104 mean_value: 117 mean_value: 123 }'
        w.layer(f'name: "data-color" type: "Data" top: "X" include {{ phase: TRAIN }} {crop} '
                f'data_param {{ source: "train_color_{width}x{height}" backend: LMDB batch_size: 8 }}')
        w.layer(f'name: "data-depth" type: "Data" top: "depth-gt" include {{ phase: TRAIN }} '
                f'transform_param {{ scale: 0.0392157 }} '
                f'data_param {{ source: "train_depth_{FCRN_OUTPUT[1]}x{FCRN_OUTPUT[0]}" backend: LMDB batch_size: 8 }}')
        w.layer(f'name: "data-color" type: "Data" top: "X" include {{ phase: TEST }} {crop} '
                f'data_param {{ source: "test_color_{width}x{height}" backend: LMDB batch_size: 8 }}')
        w.layer(f'name: "data-depth" type: "Data" top: "depth-gt" include {{ phase: TEST }} '
                f'transform_param {{ scale: 0.0392157 }} '
                f'data_param {{ source: "test_depth_{FCRN_OUTPUT[1]}x{FCRN_OUTPUT[0]}" backend: LMDB batch_size: 8 }}')
    else:
        w.layer(f'name: "input" type: "Input" top: "X" input_param {{ shape {{ dim: 1 dim: 3 dim: {height} '
                f'dim: {width} }} }}')
    top = _resnet50(w, "X")
    top = w.conv("layer1", top, 1024, 1)
    w.batch_norm(top, "layer1_bn", "layer1_scale")
    channels = 1024
    for index in range(1, 5):
        top, channels = _up_projection(w, index, top, channels)
    w.conv("depth", top, 1, 3, 1, 1, bias=True, filler='type: "gaussian" std: 0.001')
    if train:
        w.layer('name: "loss" type: "BerHuLoss" bottom: "depth" bottom: "depth-gt" top: "loss"')
    return "\n".join(header + w.lines) + "\n"


def main():
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fcrn")
    os.makedirs(folder, exist_ok=True)
    for kind in ("deploy", "train"):
        with open(os.path.join(folder, f"net_{kind}.prototxt"), "w", encoding="utf-8") as handle:
            handle.write(fcrn_prototxt(kind))


if __name__ == "__main__":
    main()
