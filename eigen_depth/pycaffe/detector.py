"""pycaffe's `caffe.Detector`: a Net run on windows (ymin, xmin, ymax, xmax) cropped from images, with
optional context padding, for R-CNN style detection. Selective search proposals need the external
selective_search_ijcv_with_python package, which is not offered here."""
import numpy as np

from ..caffe.schema import TEST
from . import PycaffeUnsupported, io
from .net import Net


class Detector(Net):
    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None, context_pad=None):
        super().__init__(model_file, pretrained_file, TEST)
        self.transformer = io.transformer_for(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """[(image file, [windows])] -> [{'window', 'prediction', 'filename'}] for every window."""
        crops = []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            for window in windows:
                crops.append(self.crop(image, window))
        name = self.inputs[0]
        batch = np.zeros((len(crops),) + self.blobs[name].data.shape[1:], dtype=np.float32)
        for index, crop in enumerate(crops):
            batch[index] = self.transformer.preprocess(name, crop)
        predictions = self.forward_all(**{name: batch})[self.outputs[0]]
        predictions = predictions.reshape(len(predictions), -1)
        detections, index = [], 0
        for filename, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[index], "filename": filename})
                index += 1
        return detections

    def detect_selective_search(self, image_fnames):
        raise PycaffeUnsupported("caffe.Detector.detect_selective_search needs selective_search_ijcv_with_python, "
                                 "which eigen_depth does not offer: compute the windows yourself and call "
                                 "detect_windows")

    def crop(self, im, window):
        """The window of the image (with context padding when configured), resized to the net's input."""
        crop = im[window[0]:window[2], window[1]:window[3]]
        if self.context_pad:
            box = np.array(window, dtype=float)
            crop_size = self.blobs[self.inputs[0]].width
            scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
            half_h, half_w = (box[2] - box[0] + 1) / 2.0, (box[3] - box[1] + 1) / 2.0
            centre = (box[0] + half_h, box[1] + half_w)
            scaled = np.array((-half_h, -half_w, half_h, half_w)) * scale
            box = np.round(np.tile(centre, 2) + scaled)
            full_h, full_w = box[2] - box[0] + 1, box[3] - box[1] + 1
            scale_h, scale_w = crop_size / full_h, crop_size / full_w
            pad_y, pad_x = round(max(0, -box[0]) * scale_h), round(max(0, -box[1]) * scale_w)
            im_h, im_w = im.shape[:2]
            box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
            clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
            crop_h, crop_w = round(clip_h * scale_h), round(clip_w * scale_w)
            if pad_y + crop_h > crop_size:
                crop_h = crop_size - pad_y
            if pad_x + crop_w > crop_size:
                crop_w = crop_size - pad_x
            context = np.tile(self.crop_mean, (crop_size, crop_size, 1))
            window_crop = im[int(box[0]):int(box[2]), int(box[1]):int(box[3])]
            context[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = io.resize_image(window_crop, (crop_h, crop_w))
            crop = context
        return crop

    def configure_crop(self, context_pad):
        """Context padding needs the mean as an image: the Transformer's mean, de-processed."""
        name = self.inputs[0]
        transpose = self.transformer.transpose.get(name)
        channel_order = self.transformer.channel_swap.get(name)
        raw_scale = self.transformer.raw_scale.get(name)
        self.context_pad = context_pad
        if context_pad:
            mean = self.transformer.mean.get(name)
            if mean is None:
                self.crop_mean = np.zeros(self.blobs[name].data.shape[1], np.float32)
                return
            inverse = np.argsort(transpose)
            crop_mean = mean.copy().transpose(inverse)
            if channel_order is not None:
                crop_mean = crop_mean[:, :, np.argsort(channel_order)]
            if raw_scale is not None:
                crop_mean /= raw_scale
            self.crop_mean = crop_mean.reshape(-1, crop_mean.shape[-1]).mean(0)
