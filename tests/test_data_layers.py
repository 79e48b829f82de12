"""The Data and HDF5Data layers inside CaffeNet: folder -> LMDB -> Data layer round trip (BGR), pairing of
two Data layers, labels, resuming, sharding, the pairs and synthetic data kinds, errors."""
import os

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import eigen_depth.data.layers  # noqa: F401  (registers Data and HDF5Data)
from eigen_depth import data
from eigen_depth.caffe import parse_text, schema
from eigen_depth.data.layers import is_source_layer
from eigen_depth.data.lmdb_io import read_keys
from eigen_depth.data.paired_lmdb import make_lmdb
from eigen_depth.errors import DatasetError
from eigen_depth.layers import LAYER_TYPES
from eigen_depth.net import CaffeNet
from eigen_depth.prototxt import ROOT as PROTOTXT_ROOT

PROTOTXT = """
name: "pairs"
layer { name: "data-color" type: "Data" top: "X" top: "L" include { phase: TRAIN }
        transform_param { mean_value: 127 } data_param { source: "train_color_6x4" backend: LMDB batch_size: 3 } }
layer { name: "data-depth" type: "Data" top: "Y" include { phase: TRAIN }
        transform_param { scale: 0.00390625 } data_param { source: "train_depth_6x4" backend: LMDB batch_size: 3 } }
layer { name: "data-color" type: "Data" top: "X" include { phase: TEST }
        transform_param { mean_value: 127 } data_param { source: "test_color_6x4" backend: LMDB batch_size: 2 } }
layer { name: "data-depth" type: "Data" top: "Y" include { phase: TEST }
        transform_param { scale: 0.00390625 } data_param { source: "test_depth_6x4" backend: LMDB batch_size: 2 } }
"""


def net(phase="TRAIN", text=PROTOTXT, settings=None):
    return CaffeNet(parse_text(schema.NetParameter, text), phase, data=settings)


def write_pairs(folder, count, seed=0):
    """Random pairs; colour pixel (0, 0) red channel and every depth pixel say the index."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
        rgb[0, 0, 0] = i
        depth = rng.integers(0, 256, (4, 6), dtype=np.uint8)
        depth[0, 0] = i
        Image.fromarray(rgb).save(folder / f"{i:03d}_colors.png")
        Image.fromarray(depth).save(folder / f"{i:03d}_depth.png")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_pairs(root / "pairs" / "train", 7)
    write_pairs(root / "pairs" / "test", 4, seed=1)
    make_lmdb(root / "pairs", root / "lmdb", color_size=(6, 4), depth_sizes=[(6, 4)], seed=3, workers=1,
              progress=False, log=lambda *a: None)
    make_lmdb(root / "pairs", root / "lmdb_sorted", color_size=(6, 4), depth_sizes=[(6, 4)], shuffle=False,
              workers=1, progress=False, log=lambda *a: None)
    return root


@pytest.fixture()
def lmdb_root(root):
    with data.using(root=str(root / "lmdb"), kind="lmdb", shuffle=False, seed=0, workers=2):
        yield root


def test_importing_the_data_layers_registers_them():
    assert LAYER_TYPES["Data"].__name__ == "DataLayer" and LAYER_TYPES["HDF5Data"].__name__ == "HDF5DataLayer"


def test_round_trip_folder_lmdb_data_layer_gives_the_same_pixels_in_bgr(lmdb_root):
    train = net()
    assert train.blob_shapes["X"] == (3, 3, 4, 6) and train.blob_shapes["Y"] == (3, 1, 4, 6)
    keys = read_keys(lmdb_root / "lmdb" / "train_color_6x4")
    out = train.forward()
    for row in range(3):
        name = keys[row][9:]                       # %08d_<file>
        rgb = np.asarray(Image.open(lmdb_root / "pairs" / "train" / name), np.float32)
        expected = rgb[:, :, ::-1].transpose(2, 0, 1) - 127   # BGR planes, mean 127
        assert torch.equal(out["X"][row], torch.from_numpy(np.ascontiguousarray(expected)))
        depth = np.asarray(Image.open(lmdb_root / "pairs" / "train" / name.replace("colors", "depth")), np.float32)
        assert torch.equal(out["Y"][row, 0], torch.from_numpy(depth * np.float32(0.00390625)))
        assert out["L"][row] == 0


def test_two_data_layers_stay_paired_through_shuffled_epochs(root):
    with data.using(root=str(root / "lmdb"), shuffle=True, seed=5, workers=2):
        train = net()
        seen = []
        for _ in range(7):  # 21 records: three epochs of 7
            out = train.forward()
            colour_index = out["X"][:, 2, 0, 0] + 127   # red is the last BGR plane
            depth_index = out["Y"][:, 0, 0, 0] * 256
            assert torch.equal(colour_index, depth_index)
            seen.extend(int(i) for i in colour_index)
    epochs = [seen[i:i + 7] for i in (0, 7, 14)]
    assert all(sorted(e) == list(range(7)) for e in epochs) and epochs[0] != epochs[1]


def test_sequential_reading_follows_key_order_and_wraps(root):
    with data.using(root=str(root / "lmdb_sorted"), shuffle=False, workers=0):
        train = net()
        indices = [int(i) for _ in range(3) for i in train.forward()["Y"][:, 0, 0, 0] * 256]
    assert indices == [0, 1, 2, 3, 4, 5, 6, 0, 1]


def test_test_phase_reads_the_test_databases(lmdb_root):
    test = net("TEST")
    assert test.blob_shapes["X"] == (2, 3, 4, 6)
    assert sorted(int(i) for i in test.forward()["Y"][:, 0, 0, 0] * 256) in ([0, 1], [0, 2], [0, 3], [1, 2],
                                                                             [1, 3], [2, 3])


def test_resuming_from_a_position_continues_exactly(root):
    with data.using(root=str(root / "lmdb"), shuffle=True, seed=2, workers=2):
        first = net()
        batches = [first.forward() for _ in range(4)]
        second = net()
        sources = [layer for layer in second.layers if is_source_layer(layer)]
        assert [layer.position for layer in first.layers] == [12, 12]
        for layer in sources:
            layer.seek(2 * 3)  # after two iterations of batch 3 on one process
        for expected in batches[2:]:
            got = second.forward()
            assert all(torch.equal(got[k], expected[k]) for k in ("X", "Y"))


def test_ranks_read_disjoint_records_of_each_step(root):
    indices = []
    for rank in range(2):
        with data.using(root=str(root / "lmdb_sorted"), shuffle=False, rank=rank, world_size=2, workers=0):
            indices.append([int(i) for i in net().forward()["Y"][:, 0, 0, 0] * 256])
    assert indices == [[0, 2, 4], [1, 3, 5]]


def test_folder_kind_gives_what_the_lmdb_gives(root):
    with data.using(root=str(root / "lmdb_sorted"), kind="lmdb", shuffle=True, seed=1):
        from_lmdb = [net().forward() for _ in range(1)][0]
    with data.using(root=str(root / "pairs"), kind="pairs", shuffle=True, seed=1):
        from_pairs = net().forward()
    assert all(torch.equal(from_lmdb[k], from_pairs[k]) for k in ("X", "Y"))


def test_synthetic_kind_builds_a_thesis_training_net():
    prototxt = os.path.join(PROTOTXT_ROOT, "global_context", "norm", "net_train.prototxt")
    with data.using(kind="synthetic", synthetic_count=4, synthetic_seed=2, workers=2):
        thesis = CaffeNet(prototxt, "TRAIN")
        out = thesis.forward(end="data-depth", keep_blobs=True)
    assert out["X"].shape == (32, 3, 218, 298) and out["Y"].shape == (32, 1, 27, 37)
    assert float(out["X"].min()) >= -127 and float(out["X"].max()) <= 128
    assert 0 < float(out["Y"].min()) and float(out["Y"].max()) < 1
    assert not any("_probe" in key for key in thesis.state_dict())


def test_missing_database_names_the_path_and_the_data_root(tmp_path):
    with data.using(root=str(tmp_path), kind="lmdb"):
        with pytest.raises(DatasetError, match=r"'data-color' \(Data\): no LMDB at .*train_color_6x4 .*data root"):
            net()


def test_leveldb_backend_is_refused(lmdb_root):
    text = PROTOTXT.replace("backend: LMDB batch_size: 3 } }\nlayer { name: \"data-depth\"",
                            "backend: LEVELDB batch_size: 3 } }\nlayer { name: \"data-depth\"", 1)
    with pytest.raises(DatasetError, match="LEVELDB is not supported"):
        net(text=text)


def test_layers_of_one_split_with_different_record_counts_are_refused(root, tmp_path):
    write_pairs(tmp_path / "pairs" / "train", 5)
    make_lmdb(tmp_path / "pairs", tmp_path / "lmdb", color_size=(6, 4), depth_sizes=[(6, 4)], workers=1,
              progress=False, log=lambda *a: None)
    import shutil
    shutil.rmtree(tmp_path / "lmdb" / "train_depth_6x4")
    shutil.copytree(root / "lmdb" / "train_depth_6x4", tmp_path / "lmdb" / "train_depth_6x4")
    with data.using(root=str(tmp_path / "lmdb")):
        with pytest.raises(DatasetError, match="reads 7 records .* reads 5 .* drift apart"):
            net()


def test_layers_of_one_split_from_two_builds_with_the_same_count_are_refused(root, tmp_path):
    # the sorted build's depth beside the shuffled build's colour: the same 7 records, other rooms at each position
    import shutil
    shutil.copytree(root / "lmdb" / "train_color_6x4", tmp_path / "lmdb" / "train_color_6x4")
    shutil.copytree(root / "lmdb_sorted" / "train_depth_6x4", tmp_path / "lmdb" / "train_depth_6x4")
    with data.using(root=str(tmp_path / "lmdb")):
        with pytest.raises(DatasetError, match=r"which are not paired: key '\d{8}_\d{3}_depth.png' meets "
                                               r"'\d{8}_\d{3}_colors.png'"):
            net()


def test_settings_belong_to_a_net_or_a_thread_not_the_process(lmdb_root, tmp_path):
    import threading
    before = data.current()
    # explicit: the net reads the settings it is given, the process default stays as it was
    explicit = CaffeNet(parse_text(schema.NetParameter, PROTOTXT), "TRAIN",
                        data=data.DataSettings(root=str(lmdb_root / "lmdb"), workers=0))
    assert explicit.source_layers()[0].settings.root == str(lmdb_root / "lmdb") and data.current() == before
    explicit.close()
    # scoped: a `using` block in one thread is invisible to another thread running at the same time
    seen, inside = {}, threading.Event()
    done = threading.Event()

    def other():
        seen["before"] = data.current().root  # this thread's view: the process default
        inside.wait()
        seen["other"] = data.current().root
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with data.using(root=str(tmp_path / "elsewhere")):
        inside.set()
        done.wait(10)
        seen["here"] = data.current().root
    thread.join()
    assert seen["here"] == str(tmp_path / "elsewhere") and seen["other"] == seen["before"] != seen["here"]
    assert data.current() == before


def test_pairing_is_checked_within_a_net_not_across_nets(root, tmp_path):
    # a net on 5-record databases, built while a net on the 7-record ones is alive, is not compared with it
    write_pairs(tmp_path / "pairs" / "train", 5)
    make_lmdb(tmp_path / "pairs", tmp_path / "lmdb", color_size=(6, 4), depth_sizes=[(6, 4)], workers=1,
              progress=False, log=lambda *a: None)
    with net(settings=data.DataSettings(root=str(root / "lmdb"))) as seven, \
            net(settings=data.DataSettings(root=str(tmp_path / "lmdb"))) as five:
        assert [layer.record_count for layer in seven.source_layers()] == [7, 7]
        assert [layer.record_count for layer in five.source_layers()] == [5, 5]


# -- HDF5Data ---------------------------------------------------------------------------------------------------
HDF5_PROTOTXT = """
layer { name: "h5" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param { source: "%s" batch_size: 2 %s } }
"""


@pytest.fixture()
def hdf5_list(tmp_path):
    rows = np.arange(5 * 3, dtype=np.float64).reshape(5, 3)
    for name, part in (("a.h5", slice(0, 3)), ("b.h5", slice(3, 5))):
        with h5py.File(tmp_path / name, "w") as handle:
            handle["data"] = rows[part]
            handle["label"] = np.arange(5)[part].astype(np.int32)
    (tmp_path / "list.txt").write_text("a.h5\nb.h5\n")
    return tmp_path / "list.txt"


def test_hdf5_data_reads_rows_file_after_file_and_wraps(hdf5_list):
    h5 = net(text=HDF5_PROTOTXT % (hdf5_list, ""))
    assert h5.blob_shapes == {"data": (2, 3), "label": (2,)}
    labels = [h5.forward()["label"].tolist() for _ in range(3)]
    assert labels == [[0.0, 1.0], [2.0, 3.0], [4.0, 0.0]]
    assert h5.forward()["data"].tolist() == [[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]


def test_hdf5_shuffle_permutes_files_and_rows_each_pass(hdf5_list):
    with data.using(seed=3):
        h5 = net(text=HDF5_PROTOTXT % (hdf5_list, "shuffle: true"))
        labels = [int(v) for _ in range(10) for v in h5.forward()["label"]]
    passes = [labels[i:i + 5] for i in range(0, 20, 5)]
    for one in passes:
        assert sorted(one) == [0, 1, 2, 3, 4]
        first_file = {0, 1, 2} if one[0] in (0, 1, 2) else {3, 4}
        assert set(one[:len(first_file)]) == first_file  # one file's rows, then the other's
    assert len({tuple(p) for p in passes}) > 1


def test_hdf5_missing_dataset_is_named(hdf5_list):
    with pytest.raises(DatasetError, match="has no dataset 'weights'"):
        net(text=HDF5_PROTOTXT.replace('top: "label"', 'top: "weights"') % (hdf5_list, ""))


# ----------------------------------------------------------------------------------- ImageData, MemoryData
def write_listed_images(folder, count=5, size=(6, 8)):
    """count colour PNGs (pixel (0, 0) blue channel = index) and a list naming them with labels 10 + index,
    one name holding a space (Caffe splits at the last space)."""
    import cv2
    folder.mkdir(exist_ok=True)
    lines, images = [], []
    for i in range(count):
        image = np.random.default_rng(i).integers(0, 256, size + (3,), dtype=np.uint8)
        image[0, 0, 0] = i
        name = f"img {i}.png" if i == 1 else f"img{i}.png"
        cv2.imwrite(str(folder / name), image)
        lines.append(f"{name} {10 + i}")
        images.append(image)
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    return images


def test_image_data_reads_the_list_in_order_resized_transformed_and_wrapping(tmp_path):
    import cv2
    images = write_listed_images(tmp_path / "img")
    text = (f'layer {{ name: "d" type: "ImageData" top: "data" top: "label" '
            f'transform_param {{ scale: 0.5 mean_value: 10 mean_value: 20 mean_value: 30 }} '
            f'image_data_param {{ source: "{tmp_path / "img" / "list.txt"}" root_folder: "{tmp_path / "img"}/" '
            f'batch_size: 2 new_height: 3 new_width: 5 }} }}')
    net = CaffeNet(parse_text(schema.NetParameter, text), "TEST")
    expected = [(cv2.resize(image, (5, 3)).transpose(2, 0, 1).astype(np.float32)
                 - np.array([10, 20, 30], np.float32)[:, None, None]) * 0.5 for image in images]
    for order in ([0, 1], [2, 3], [4, 0]):
        out = net()
        np.testing.assert_allclose(out["data"].numpy(), np.stack([expected[i] for i in order]), rtol=0, atol=1e-6)
        np.testing.assert_array_equal(out["label"].numpy(), [10 + i for i in order])
    net.close()


def test_image_data_gray_and_shuffled_epochs_hold_every_image_once(tmp_path):
    write_listed_images(tmp_path / "img")
    text = (f'layer {{ name: "d" type: "ImageData" top: "data" top: "label" image_data_param {{ '
            f'source: "{tmp_path / "img" / "list.txt"}" root_folder: "{tmp_path / "img"}/" batch_size: 5 '
            f'shuffle: true is_color: false }} }}')
    net = CaffeNet(parse_text(schema.NetParameter, text), "TEST")
    first, second = net(), net()
    assert first["data"].shape == (5, 1, 6, 8)
    assert sorted(first["label"].tolist()) == sorted(second["label"].tolist()) == [10, 11, 12, 13, 14]
    assert [first["label"].tolist(), second["label"].tolist()] != [[10, 11, 12, 13, 14]] * 2  # really shuffled
    net.close()
    (tmp_path / "bad.txt").write_text("img0.png 1\nabsent.png 2\n")
    bad = text.replace(str(tmp_path / "img" / "list.txt"), str(tmp_path / "bad.txt"))
    net = CaffeNet(parse_text(schema.NetParameter, bad), "TEST")
    with pytest.raises(DatasetError, match="absent.png"):
        net()
    net.close()


MEMORY_NET = """
layer { name: "mem" type: "MemoryData" top: "data" top: "label"
        memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 1 } }
"""


def test_memory_data_serves_the_arrays_a_program_hands_over_in_batches(tmp_path):
    from eigen_depth.pycaffe import Net
    path = tmp_path / "memory.prototxt"
    path.write_text(MEMORY_NET)
    net = Net(str(path), 1)  # TEST
    data = np.arange(4 * 6, dtype=np.float32).reshape(4, 1, 2, 3)
    labels = np.array([5, 6, 7, 8], np.float32)
    with pytest.raises(Exception, match="no data"):
        net.forward()
    net.set_input_arrays(data, labels)
    for rows in ([0, 1], [2, 3], [0, 1]):
        net.forward()
        np.testing.assert_array_equal(net.blobs["data"].data, data[rows])
        np.testing.assert_array_equal(net.blobs["label"].data.ravel(), labels[rows])
    data[2, 0, 0, 0] = -1  # read in place, as Caffe reads them (the next batch is rows 2, 3)
    net.forward()
    assert net.blobs["data"].data[0, 0, 0, 0] == -1
    with pytest.raises(Exception, match="multiple of the batch size"):
        net.set_input_arrays(data[:3], labels[:3])
    with pytest.raises(RuntimeError, match="C-contiguous"):
        net.set_input_arrays(data[:, :, :, ::-1], labels)


# -------------------------------------------------------------------------------------------- WindowData
def window_net(tmp_path, windows, extra="", transform="crop_size: 8"):
    """A WindowData layer over one image, img.png (10 rows x 12 columns), with the given windows."""
    lines = ["# 0", "img.png", "3 10 12", str(len(windows))] + [" ".join(map(str, w)) for w in windows]
    (tmp_path / "windows.txt").write_text("\n".join(lines) + "\n")
    text = (f'layer {{ name: "w" type: "WindowData" top: "data" top: "label" transform_param {{ {transform} }} '
            f'window_data_param {{ source: "{tmp_path / "windows.txt"}" root_folder: "{tmp_path}/" batch_size: 4 '
            f'{extra} }} }}')
    return CaffeNet(parse_text(schema.NetParameter, text), "TRAIN")


def test_window_data_warps_the_box_and_puts_background_before_foreground(tmp_path):
    import cv2
    image = np.random.default_rng(3).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "img.png"), image)
    # foreground class 3; background (overlap 0.1); a window between the thresholds is never used
    net = window_net(tmp_path, [(3, 0.9, 2, 1, 7, 6), (5, 0.1, 0, 0, 11, 9), (2, 0.3, 0, 0, 3, 3)],
                     "fg_fraction: 0.5 bg_threshold: 0.2 scale: 0.5", "crop_size: 4 mean_value: 10 mean_value: 20 mean_value: 30")
    out = net()
    mean = np.array([10, 20, 30], np.float32)[:, None, None]
    foreground = (cv2.resize(image[1:7, 2:8], (4, 4)).transpose(2, 0, 1) - mean) * 0.5
    background = (cv2.resize(image, (4, 4)).transpose(2, 0, 1) - mean) * 0.5
    np.testing.assert_array_equal(out["label"].numpy(), [0, 0, 3, 3])
    for item, expected in enumerate([background, background, foreground, foreground]):
        np.testing.assert_allclose(out["data"].numpy()[item], expected, atol=1e-5)


def test_window_data_context_pad_places_the_clipped_window_as_caffe_computes_it(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / "img.png"), np.full((10, 10, 3), 100, np.uint8))  # 10 x 10 this time
    lines = ["# 0", "img.png", "3 10 10", "2", "1 0.9 2 0 9 9", "0 0.0 2 0 9 9"]
    (tmp_path / "windows.txt").write_text("\n".join(lines) + "\n")
    text = (f'layer {{ name: "w" type: "WindowData" top: "data" top: "label" '
            f'transform_param {{ crop_size: 8 mirror: true mean_value: 40 }} window_data_param {{ '
            f'source: "{tmp_path / "windows.txt"}" root_folder: "{tmp_path}/" batch_size: 4 context_pad: 2 scale: 0.5 }} }}')
    net = CaffeNet(parse_text(schema.NetParameter, text), "TRAIN")
    # By hand, x: half 4, centre 6, context scale 8 / (8 - 4) = 2 -> x in [-2, 14], 17 wide, clipped to [0, 9]
    # (left pad 2, right pad 5); scaled by 8/17: width round(4.71) = 5, left pad round(0.94) = 1, right pad
    # round(2.35) = 2. y: half 5, centre 5 -> [-5, 15], 21 high, clipped to [0, 9] (top pad 5); scaled by
    # 8/21: height round(3.81) = 4, top pad round(1.90) = 2. Unmirrored: rows 2-5, columns 1-5; mirrored: the
    # right pad leads, columns 2-6. Inside: (100 - 40) * 0.5 = 30; outside 0.
    plain, mirrored = np.zeros((3, 8, 8), np.float32), np.zeros((3, 8, 8), np.float32)
    plain[:, 2:6, 1:6] = 30
    mirrored[:, 2:6, 2:7] = 30
    seen = set()
    for _ in range(6):
        for item in net()["data"].numpy():
            match = [name for name, pattern in (("plain", plain), ("mirrored", mirrored)) if np.array_equal(item, pattern)]
            assert len(match) == 1
            seen.add(match[0])
    assert seen == {"plain", "mirrored"}


def test_window_data_refuses_a_malformed_window_file(tmp_path):
    (tmp_path / "windows.txt").write_text("# 0\nimg.png\n3 10 12\n2\n1 0.9 0 0 3 3\n")  # the second window is missing
    text = (f'layer {{ name: "w" type: "WindowData" top: "data" top: "label" transform_param {{ crop_size: 4 }} '
            f'window_data_param {{ source: "{tmp_path / "windows.txt"}" batch_size: 2 }} }}')
    with pytest.raises(DatasetError, match="windows.txt: ends inside image block 0"):
        CaffeNet(parse_text(schema.NetParameter, text), "TRAIN")


def test_hdf5_output_writes_its_bottoms_as_data_and_label(tmp_path):
    text = (f'layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}\n'
            f'layer {{ name: "y" type: "Input" top: "y" input_param {{ shape {{ dim: 2 }} }} }}\n'
            f'layer {{ name: "out" type: "HDF5Output" bottom: "x" bottom: "y" '
            f'hdf5_output_param {{ file_name: "{tmp_path / "out.h5"}" }} }}')
    net = CaffeNet(parse_text(schema.NetParameter, text), "TEST")
    x, y = np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], np.float32)
    for scale in (1, 2):  # each forward rewrites the file with its batch
        net({"x": x * scale, "y": y * scale})
        with h5py.File(tmp_path / "out.h5", "r") as handle:
            np.testing.assert_array_equal(handle["data"][()], x * scale)
            np.testing.assert_array_equal(handle["label"][()], y * scale)
    assert os.listdir(tmp_path) == ["out.h5"]
