"""pycaffe's `caffe.Classifier`: a Net with preprocessing for image classification (resize, optional 10-crop
oversampling, the Transformer's scaling, mean and channel swap) and predictions averaged over the crops."""
import numpy as np

from ..caffe.schema import TEST
from . import io
from .net import Net


class Classifier(Net):
    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None):
        super().__init__(model_file, pretrained_file, TEST)
        name = self.inputs[0]
        self.transformer = io.transformer_for(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[name].data.shape[2:])
        self.image_dims = self.crop_dims if not image_dims else image_dims

    def predict(self, inputs, oversample=True):
        """Class scores (N x classes) of H x W x K images: the 10 crops' mean with oversample, else the centre crop."""
        images = np.zeros((len(inputs), self.image_dims[0], self.image_dims[1], inputs[0].shape[2]), np.float32)
        for index, image in enumerate(inputs):
            images[index] = io.resize_image(image, self.image_dims)
        if oversample:
            images = io.oversample(images, self.crop_dims)
        else:
            centre = np.array(self.image_dims) / 2.0
            box = np.tile(centre, (1, 2))[0] + np.concatenate([-self.crop_dims / 2.0, self.crop_dims / 2.0])
            box = box.astype(int)
            images = images[:, box[0]:box[2], box[1]:box[3], :]
        name = self.inputs[0]
        batch = np.zeros(np.array(images.shape)[[0, 3, 1, 2]], dtype=np.float32)
        for index, image in enumerate(images):
            batch[index] = self.transformer.preprocess(name, image)
        predictions = self.forward_all(**{name: batch})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
