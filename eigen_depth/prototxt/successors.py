"""Writes the prototxt files of the thesis's successors (docs/successors.md): `python -m
eigen_depth.prototxt.successors` regenerates net_deploy.prototxt and net_train.prototxt in fcrn/ and densedepth/.

FCRN (Laina et al. 2016): ResNet-50 with the layer names of the public ResNet-50 deploy prototxt (conv1,
bn_conv1, scale_conv1, res2a_branch1, ..., res5c), so a converted ImageNet caffemodel loads by name; then a
1x1 convolution to 1024 channels and four up-projection blocks (each: 2x unpooling, a 5x5 convolution, ReLU,
a 3x3 convolution, summed with a 5x5 projection of the unpooled input, ReLU; batch normalisation after each
convolution), and a 3x3 convolution to the depth map: input 304x228, output 160x128 (depth in metres).
The unpooling is a Deconvolution (kernel 2, stride 2, one group per channel, no bias, learning rate 0) whose
Caffe bilinear filler gives exactly the kernel [[1, 0], [0, 0]]: each value goes to the top-left of its 2x2
block, the rest 0, as the paper's unpooling.

DenseDepth (Alhashim and Wonka 2018): DenseNet-169 with the layer names of the public Caffe DenseNet-169 deploy
prototxt (conv1, conv1/bn, conv1/scale, relu1, pool1, conv2_1/x1/bn, ..., concat_2_1, conv2_blk, pool2, ...,
conv5_blk/bn), so a converted ImageNet caffemodel loads by name; then the decoder of the paper and its released
Keras code, with the Keras layer names: a 1x1 convolution `conv2` keeping the encoder's 1664 channels, four
blocks up1..up4 (each: 2x bilinear upsampling, concatenation with the encoder's pool3, pool2, pool1 and relu'd
conv1 outputs, two 3x3 convolutions with LeakyReLU 0.2, halving the channels), and a 3x3 convolution `conv3`
to the output `depth`: input 640x480 (BGR / 255), output 320x240 in the paper's normalised depth 10 m / d.
The upsampling is a Deconvolution (kernel 4, stride 2, pad 1, one group per channel, no bias, learning rate 0)
with Caffe's bilinear filler: the kernel rows and columns are [1/4, 3/4, 3/4, 1/4].
"""
import os

FCRN_INPUT = (228, 304)      # height, width
FCRN_OUTPUT = (128, 160)
RESNET50_STAGES = [(2, "abc", 64, 1), (3, "abcd", 128, 2), (4, "abcdef", 256, 2), (5, "abc", 512, 2)]

DENSEDEPTH_INPUT = (480, 640)    # height, width
DENSEDEPTH_OUTPUT = (240, 320)
DENSENET169_BLOCKS = (6, 12, 32, 32)  # dense layers in the blocks named conv2_* .. conv5_*
DENSENET_GROWTH = 32                  # channels each dense layer adds
DENSENET_BOTTLENECK = 4 * DENSENET_GROWTH
# The encoder blobs the decoder's blocks up1..up4 concatenate (the Keras names: pool3_pool, pool2_pool, pool1,
# conv1/relu); conv1/bn holds conv1 after its BatchNorm, Scale and in-place ReLU.
DENSEDEPTH_SKIPS = ("pool3", "pool2", "pool1", "conv1/bn")
DENSEDEPTH_LEAKY_SLOPE = 0.2
XAVIER_AVERAGE = 'type: "xavier" variance_norm: AVERAGE'  # Keras's default glorot_uniform


class _Writer:
    """Collects one-line `layer { ... }` texts; `train` selects batch statistics in BatchNorm."""

    def __init__(self, train):
        self.lines, self.train = [], train

    def layer(self, text):
        self.lines.append("layer { " + text + " }")

    def conv(self, name, bottom, outputs, kernel, stride=1, pad=0, bias=False, filler='type: "msra"',
             bias_lr_mult=2, top=None):
        """A Convolution named `name` writing `top` (default: its name); the weight learns at the base rate
        with weight decay, the bias (if any) at `bias_lr_mult` times it without decay. Returns the top."""
        top = top or name
        bias_text = "" if bias else " bias_term: false"
        params = ' param { lr_mult: 1 decay_mult: 1 }'
        if bias:
            params += f' param {{ lr_mult: {bias_lr_mult} decay_mult: 0 }}'
        self.layer(f'name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{top}"{params} '
                   f'convolution_param {{ num_output: {outputs} kernel_size: {kernel} stride: {stride} pad: {pad}'
                   f'{bias_text} weight_filler {{ {filler} }} }}')
        return top

    def batch_norm(self, top, bn_name, scale_name, bottom=None):
        """Batch normalisation: BatchNorm (running statistics in deploy, batch statistics in training) from
        `bottom` (default: in place) to `top`, then Scale with a bias in place on `top`, as the public ResNet-50
        and DenseNet prototxts."""
        stats = "false" if self.train else "true"
        self.layer(f'name: "{bn_name}" type: "BatchNorm" bottom: "{bottom or top}" top: "{top}" '
                   f'batch_norm_param {{ use_global_stats: {stats} }}')
        self.layer(f'name: "{scale_name}" type: "Scale" bottom: "{top}" top: "{top}" '
                   f'scale_param {{ bias_term: true }}')

    def relu(self, name, top, negative_slope=0):
        """ReLU in place; with a negative_slope, the leaky form max(x, 0) + slope * min(x, 0)."""
        slope = f" relu_param {{ negative_slope: {negative_slope:g} }}" if negative_slope else ""
        self.layer(f'name: "{name}" type: "ReLU" bottom: "{top}" top: "{top}"{slope}')

    def pool(self, name, bottom, method, kernel, stride, pad=0, ceil=True):
        """Pooling (method MAX or AVE) to the top `name`. Caffe rounds the output size up (ceil); ceil=False
        writes `ceil_mode: false` (rounding down), the spelling of the public DenseNet prototxt, which OpenCV
        and eigen_depth read. Returns the top."""
        extra = (f" pad: {pad}" if pad else "") + ("" if ceil else " ceil_mode: false")
        self.layer(f'name: "{name}" type: "Pooling" bottom: "{bottom}" top: "{name}" '
                   f'pooling_param {{ pool: {method} kernel_size: {kernel} stride: {stride}{extra} }}')
        return name

    def concat(self, name, bottoms):
        """Concat of `bottoms` along the channels, in their order, to the top `name`. Returns the top."""
        listed = " ".join(f'bottom: "{bottom}"' for bottom in bottoms)
        self.layer(f'name: "{name}" type: "Concat" {listed} top: "{name}"')
        return name

    def fixed_bilinear(self, name, bottom, channels, kernel, stride, pad=0):
        """A Deconvolution with one group per channel, no bias and Caffe's bilinear filler, frozen (lr_mult and
        decay_mult 0): kernel 2, stride 2 is FCRN's unpooling, kernel 4, stride 2, pad 1 a 2x bilinear
        upsampling. Returns the top `name`."""
        pad_text = f" pad: {pad}" if pad else ""
        self.layer(f'name: "{name}" type: "Deconvolution" bottom: "{bottom}" top: "{name}" '
                   f'param {{ lr_mult: 0 decay_mult: 0 }} convolution_param {{ num_output: {channels} '
                   f'group: {channels} kernel_size: {kernel} stride: {stride}{pad_text} bias_term: false '
                   f'weight_filler {{ type: "bilinear" }} }}')
        return name

    def input(self, height, width):
        """The deploy nets' Input layer: blob X of shape (1, 3, height, width)."""
        self.layer(f'name: "input" type: "Input" top: "X" input_param {{ shape {{ dim: 1 dim: 3 dim: {height} '
                   f'dim: {width} }} }}')

    def data(self, input_size, output_size, batch, color_transform):
        """The training nets' Data layers, a TRAIN and a TEST copy each: X from <split>_color_<W>x<H> with
        `color_transform`, depth-gt from <split>_depth_<w>x<h> scaled by 10/255 (8-bit depth to metres)."""
        height, width = input_size
        depth_height, depth_width = output_size
        for phase in ("TRAIN", "TEST"):
            split = phase.lower()
            self.layer(f'name: "data-color" type: "Data" top: "X" include {{ phase: {phase} }} {color_transform} '
                       f'data_param {{ source: "{split}_color_{width}x{height}" backend: LMDB batch_size: {batch} }}')
            self.layer(f'name: "data-depth" type: "Data" top: "depth-gt" include {{ phase: {phase} }} '
                       f'transform_param {{ scale: 0.0392157 }} '
                       f'data_param {{ source: "{split}_depth_{depth_width}x{depth_height}" backend: LMDB '
                       f'batch_size: {batch} }}')


def _resnet50(w, bottom):
    w.conv("conv1", bottom, 64, 7, 2, 3)
    w.batch_norm("conv1", "bn_conv1", "scale_conv1")
    w.relu("conv1_relu", "conv1")
    w.pool("pool1", "conv1", "MAX", 3, 2)
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
    w.fixed_bilinear(f"{name}_unpool", bottom, channels, 2, 2)
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
    header = ["# FCRN (Laina et al. 2016), written by eigen_depth/prototxt/successors.py; see docs/successors.md.",
              f'name: "fcrn_{kind}"']
    if train:
        w.data(FCRN_INPUT, FCRN_OUTPUT, 8, 'transform_param { mean_value: 104 mean_value: 117 mean_value: 123 }')
    else:
        w.input(height, width)
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


def _densenet169(w, bottom):
    """DenseNet-169 (Huang et al. 2017) without its classifier, as the public Caffe deploy prototxt: every
    convolution without bias and preceded by BatchNorm + Scale + ReLU (the first one followed by them); each
    dense layer a 1x1 bottleneck convolution to 128 channels and a 3x3 convolution to 32, concatenated to its
    input; each transition a 1x1 convolution halving the channels and 2x2 average pooling. Returns the last
    blob (BatchNorm + Scale + ReLU of the last block: 1664 channels at 1/32 of the input) and its channels."""
    w.conv("conv1", bottom, 64, 7, 2, 3)
    w.batch_norm("conv1/bn", "conv1/bn", "conv1/scale", bottom="conv1")
    w.relu("relu1", "conv1/bn")
    previous = w.pool("pool1", "conv1/bn", "MAX", 3, 2, pad=1, ceil=False)
    channels = 64
    for block, layers in enumerate(DENSENET169_BLOCKS, start=2):
        for index in range(1, layers + 1):
            name = f"conv{block}_{index}"
            w.batch_norm(f"{name}/x1/bn", f"{name}/x1/bn", f"{name}/x1/scale", bottom=previous)
            w.relu(f"relu{block}_{index}/x1", f"{name}/x1/bn")
            w.conv(f"{name}/x1", f"{name}/x1/bn", DENSENET_BOTTLENECK, 1)
            w.batch_norm(f"{name}/x2/bn", f"{name}/x2/bn", f"{name}/x2/scale", bottom=f"{name}/x1")
            w.relu(f"relu{block}_{index}/x2", f"{name}/x2/bn")
            w.conv(f"{name}/x2", f"{name}/x2/bn", DENSENET_GROWTH, 3, 1, 1)
            previous = w.concat(f"concat_{block}_{index}", [previous, f"{name}/x2"])
            channels += DENSENET_GROWTH
        w.batch_norm(f"conv{block}_blk/bn", f"conv{block}_blk/bn", f"conv{block}_blk/scale", bottom=previous)
        w.relu(f"relu{block}_blk", f"conv{block}_blk/bn")
        if block == 1 + len(DENSENET169_BLOCKS):
            return f"conv{block}_blk/bn", channels
        channels //= 2  # compression 0.5
        w.conv(f"conv{block}_blk", f"conv{block}_blk/bn", channels, 1)
        previous = w.pool(f"pool{block}", f"conv{block}_blk", "AVE", 2, 2)


def _densedepth_decoder(w, bottom, channels):
    """DenseDepth's decoder on the encoder output (`channels` channels): conv2 (1x1, as many channels), then
    up1..up4, each a 2x bilinear upsampling, a concatenation with the skip of DENSEDEPTH_SKIPS, and two 3x3
    convolutions (convA, convB) to half the channels of the block's input, each followed by LeakyReLU 0.2;
    then conv3 (3x3) to the one-channel top `depth`. Convolutions with biases learning at the weights' rate
    and Keras's glorot-uniform initialisation (Caffe's xavier with variance_norm AVERAGE)."""
    def conv(name, bottom, outputs, kernel, top=None):
        return w.conv(name, bottom, outputs, kernel, 1, kernel // 2, bias=True, filler=XAVIER_AVERAGE,
                      bias_lr_mult=1, top=top)

    top = conv("conv2", bottom, channels, 1)
    for index, skip in enumerate(DENSEDEPTH_SKIPS, start=1):
        name = f"up{index}"
        upsampled = w.fixed_bilinear(f"{name}_upsampling2d", top, channels, 4, 2, pad=1)
        joined = w.concat(f"{name}_concat", [upsampled, skip])
        channels //= 2
        top = conv(f"{name}_convA", joined, channels, 3)
        w.relu(f"{name}_convA_relu", top, DENSEDEPTH_LEAKY_SLOPE)
        top = conv(f"{name}_convB", top, channels, 3)
        w.relu(f"{name}_convB_relu", top, DENSEDEPTH_LEAKY_SLOPE)
    return conv("conv3", top, 1, 3, top="depth")


def densedepth_prototxt(kind):
    """The text of densedepth/net_<kind>.prototxt, kind "deploy" or "train". Deploy: input X (1, 3, 480, 640),
    BGR / 255; output depth (1, 1, 240, 320), 10 m / depth. Train: the sized LMDBs at batch 4, the ground truth
    turned into 10 m / depth by a Power layer, and DenseDepthLoss."""
    train = kind == "train"
    w = _Writer(train)
    height, width = DENSEDEPTH_INPUT
    header = ["# DenseDepth (Alhashim and Wonka 2018), written by eigen_depth/prototxt/successors.py; "
              "see docs/successors.md.",
              f'name: "densedepth_{kind}"']
    if train:
        w.data(DENSEDEPTH_INPUT, DENSEDEPTH_OUTPUT, 4, 'transform_param { scale: 0.00392157 }')
    else:
        w.input(height, width)
    top, channels = _densenet169(w, "X")
    top = _densedepth_decoder(w, top, channels)
    if train:
        # depth-gt in metres -> (0.1 depth)^-1 = 10 m / depth; a hole (0) becomes inf, which the loss leaves out
        w.layer('name: "depth-gt-norm" type: "Power" bottom: "depth-gt" top: "depth-gt-norm" '
                'power_param { power: -1 scale: 0.1 }')
        w.layer(f'name: "loss" type: "DenseDepthLoss" bottom: "{top}" bottom: "depth-gt-norm" top: "loss"')
    return "\n".join(header + w.lines) + "\n"


GENERATORS = {"fcrn": fcrn_prototxt, "densedepth": densedepth_prototxt}


def main():
    """Writes net_deploy.prototxt and net_train.prototxt of every family in GENERATORS into its folder."""
    for family, generate in GENERATORS.items():
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), family)
        os.makedirs(folder, exist_ok=True)
        for kind in ("deploy", "train"):
            with open(os.path.join(folder, f"net_{kind}.prototxt"), "w", encoding="utf-8") as handle:
                handle.write(generate(kind))


if __name__ == "__main__":
    main()
