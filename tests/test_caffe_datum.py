"""Caffe's Datum (one LMDB value): byte layout as convert_imageset writes it, round trips, encoded images."""
import cv2
import numpy as np
import pytest

from eigen_depth.caffe import (Datum, array_to_datum, datum_to_array, decode_datum, encode_datum,
                               encoded_datum)
from eigen_depth.errors import CaffemodelError

TINY = np.array([[[1, 2], [3, 4]]], np.uint8)  # 1 channel, 2x2


def test_datum_bytes_match_caffes_layout():
    # channels=1 (08 01), height=2 (10 02), width=2 (18 02), data=4 bytes (22 04 ...), label=3 (28 03),
    # encoded=false (38 00): Caffe's CVMatToDatum sets encoded explicitly, so its records end in 38 00
    assert encode_datum(TINY, label=3) == b"\x08\x01\x10\x02\x18\x02\x22\x04\x01\x02\x03\x04\x28\x03\x38\x00"


def test_datum_pixels_are_stored_in_chw_order():
    chw = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    datum = array_to_datum(chw)
    assert datum.data == bytes(range(12)) and (datum.channels, datum.height, datum.width) == (3, 2, 2)


def test_label_zero_is_written_explicitly():
    assert encode_datum(TINY, label=0)[-4:] == b"\x28\x00\x38\x00"


def test_two_d_array_is_one_channel():
    assert encode_datum(TINY[0], label=3) == encode_datum(TINY, label=3)


def test_decode_datum_round_trip():
    chw = np.random.default_rng(0).integers(0, 256, (3, 5, 7), dtype=np.uint8)
    array, label = decode_datum(encode_datum(chw, label=17))
    assert label == 17 and array.dtype == np.uint8 and np.array_equal(array, chw)


def test_hand_assembled_datum_decodes():
    array, label = decode_datum(b"\x08\x01\x10\x01\x18\x03\x22\x03\x07\x08\x09\x28\x05")
    assert label == 5 and array.tolist() == [[[7, 8, 9]]]


def test_float_data_datum_decodes_to_float32():
    datum = Datum(channels=1, height=1, width=2, float_data=[0.5, -1.5])
    array, label = decode_datum(datum.SerializeToString())
    assert array.dtype == np.float32 and array.tolist() == [[[0.5, -1.5]]]


def test_negative_label_round_trips():
    assert decode_datum(encode_datum(TINY, label=-1))[1] == -1


def test_encoded_png_datum_decodes_with_opencv_in_bgr_chw_order():
    blue, green, red = 10, 20, 30
    bgr = np.zeros((2, 3, 3), np.uint8)  # H, W, C in OpenCV's BGR order
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = blue, green, red
    bgr[1, 2] = (200, 100, 50)
    ok, png = cv2.imencode(".png", bgr)
    assert ok
    array, label = decode_datum(encoded_datum(png.tobytes(), label=2).SerializeToString())
    assert label == 2 and array.shape == (3, 2, 3)
    assert array[:, 0, 0].tolist() == [blue, green, red] and array[:, 1, 2].tolist() == [200, 100, 50]
    assert np.array_equal(array, bgr.transpose(2, 0, 1))


def test_encoded_datum_bytes_carry_the_file_and_encoded_true():
    assert encoded_datum(b"PNG!", label=1).SerializeToString() == b"\x22\x04PNG!\x28\x01\x38\x01"


def test_encoded_gray_png_decodes_to_one_channel():
    gray = np.array([[0, 255], [128, 7]], np.uint8)
    ok, png = cv2.imencode(".png", gray)
    array, _ = decode_datum(encoded_datum(png.tobytes()).SerializeToString())
    assert array.shape == (1, 2, 2) and np.array_equal(array[0], gray)


def test_datum_with_too_few_bytes_for_its_shape_is_an_error():
    with pytest.raises(CaffemodelError, match="needs 6 bytes, holds 3"):
        datum_to_array(Datum(channels=1, height=2, width=3, data=b"abc"))


def test_undecodable_encoded_datum_is_an_error():
    with pytest.raises(CaffemodelError, match="cannot be decoded"):
        datum_to_array(encoded_datum(b"not an image"))


def test_corrupt_datum_bytes_are_an_error():
    with pytest.raises(CaffemodelError, match="byte 0"):
        decode_datum(b"\x22\x09abc")


def test_array_to_datum_refuses_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        array_to_datum(np.zeros((1, 2, 2), np.float32))
