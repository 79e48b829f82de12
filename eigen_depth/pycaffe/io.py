"""pycaffe's `caffe.io`: images in and out of the nets' layout, and conversions between arrays and Caffe's
BlobProto / Datum messages, with pycaffe's semantics (python/caffe/io.py of BVLC Caffe)."""
import numpy as np

from .proto import caffe_pb2


# Images ---------------------------------------------------------------------------------------------------
def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True, preserve_range=False,
           anti_aliasing=False, **kwargs):
    """scikit-image's resize with the defaults of the 2016 releases pycaffe scripts relied on: bilinear,
    mode 'constant', no anti-aliasing (later releases anti-alias by default and give other numbers)."""
    import skimage.transform
    return skimage.transform.resize(image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
                                    preserve_range=preserve_range, anti_aliasing=anti_aliasing, **kwargs)


def load_image(filename, color=True):
    """An image as float32 in [0, 1], H x W x 3 (or x 1 when color=False); gray is tiled to 3 channels and
    alpha dropped."""
    import skimage.io
    from skimage import img_as_float
    image = img_as_float(skimage.io.imread(filename, as_gray=not color)).astype(np.float32)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
        if color:
            image = np.tile(image, (1, 1, 3))
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return image


def resize_image(im, new_dims, interp_order=1):
    """H x W x K resized to new_dims: through scikit-image (scaled to [0, 1] and back) for 1 or 3 channels,
    scipy's zoom otherwise."""
    if im.shape[-1] == 1 or im.shape[-1] == 3:
        im_min, im_max = im.min(), im.max()
        if im_max > im_min:
            im_std = (im - im_min) / (im_max - im_min)
            resized_std = resize(im_std, new_dims, order=interp_order)
            resized_im = resized_std * (im_max - im_min) + im_min
        else:
            resized_im = np.empty((new_dims[0], new_dims[1], im.shape[-1]), dtype=np.float32)
            resized_im.fill(im_min)
    else:
        from scipy.ndimage import zoom
        scale = tuple(np.array(new_dims, dtype=float) / np.array(im.shape[:2]))
        resized_im = zoom(im, scale + (1,), order=interp_order)
    return resized_im.astype(np.float32)


def oversample(images, crop_dims):
    """The 4 corner crops, the centre crop and their mirrors of every image: (10 * N, h, w, K)."""
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    im_center = im_shape[:2] / 2.0
    h_indices = (0, im_shape[0] - crop_dims[0])
    w_indices = (0, im_shape[1] - crop_dims[1])
    crops_ix = np.empty((5, 4), dtype=int)
    curr = 0
    for i in h_indices:
        for j in w_indices:
            crops_ix[curr] = (i, j, i + crop_dims[0], j + crop_dims[1])
            curr += 1
    crops_ix[4] = np.tile(im_center, (1, 2)) + np.concatenate([-crop_dims / 2.0, crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]), dtype=np.float32)
    ix = 0
    for im in images:
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :]  # the mirrors
    return crops


class Transformer:
    """pycaffe's preprocessing for one or more input blobs: resize to the blob, transpose, channel swap,
    raw scale, mean subtraction, input scale (preprocess); the inverse (deprocess)."""

    def __init__(self, inputs):
        self.inputs = inputs
        self.transpose, self.channel_swap, self.raw_scale = {}, {}, {}
        self.mean, self.input_scale = {}, {}

    def __check_input(self, in_):
        if in_ not in self.inputs:
            raise Exception(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_, data):
        self.__check_input(in_)
        caffe_in = data.astype(np.float32, copy=False)
        transpose, channel_swap = self.transpose.get(in_), self.channel_swap.get(in_)
        raw_scale, mean, input_scale = self.raw_scale.get(in_), self.mean.get(in_), self.input_scale.get(in_)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        if channel_swap is not None:
            caffe_in = caffe_in[channel_swap, :, :]
        if raw_scale is not None:
            caffe_in *= raw_scale
        if mean is not None:
            caffe_in -= mean
        if input_scale is not None:
            caffe_in *= input_scale
        return caffe_in

    def deprocess(self, in_, data):
        self.__check_input(in_)
        decaf_in = data.copy().squeeze()
        transpose, channel_swap = self.transpose.get(in_), self.channel_swap.get(in_)
        raw_scale, mean, input_scale = self.raw_scale.get(in_), self.mean.get(in_), self.input_scale.get(in_)
        if input_scale is not None:
            decaf_in /= input_scale
        if mean is not None:
            decaf_in += mean
        if raw_scale is not None:
            decaf_in /= raw_scale
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_, order):
        self.__check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise Exception("Transpose order needs to have the same number of dimensions as the input.")
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        self.__check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise Exception("Channel swap needs to have the same number of dimensions as the input channels.")
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        self.__check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        self.__check_input(in_)
        ms = mean.shape
        if mean.ndim == 1:
            if ms[0] != self.inputs[in_][1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if len(ms) == 2:
                ms = (1,) + ms
            if len(ms) != 3:
                raise ValueError("Mean shape invalid")
            if ms != self.inputs[in_][1:]:
                raise ValueError(f"Mean shape incompatible with input shape: {ms} vs {self.inputs[in_][1:]}")
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        self.__check_input(in_)
        self.input_scale[in_] = scale


def transformer_for(net, mean=None, input_scale=None, raw_scale=None, channel_swap=None):
    """The Transformer that Classifier and Detector set up for a net's first input: H x W x K images in."""
    name = net.inputs[0]
    transformer = Transformer({name: net.blobs[name].data.shape})
    transformer.set_transpose(name, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(name, mean)
    if input_scale is not None:
        transformer.set_input_scale(name, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(name, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(name, channel_swap)
    return transformer


# Messages -------------------------------------------------------------------------------------------------
def blobproto_to_array(blob, return_diff=False):
    """A BlobProto's data (or diff) as an array of its shape (the legacy num/channels/height/width when set)."""
    data = np.array(blob.diff if return_diff else blob.data)
    if blob.HasField("num") or blob.HasField("channels") or blob.HasField("height") or blob.HasField("width"):
        return data.reshape(blob.num, blob.channels, blob.height, blob.width)
    return data.reshape(blob.shape.dim)


def array_to_blobproto(arr, diff=None):
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(diff.astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist):
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(arr) for arr in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(string):
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(string)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A C x H x W array as a Datum: uint8 arrays as bytes, others as float_data; the label only when given."""
    if arr.ndim != 3:
        raise ValueError("Incorrect array shape.")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(datum.channels, datum.height, datum.width)
    return np.array(datum.float_data).astype(float).reshape(datum.channels, datum.height, datum.width)
