"""Caffe-compatible LMDBs: convert_imageset's keys and Datum bytes, byte for byte on small examples, and the
thesis's three paired databases from make_lmdb."""
import os

import lmdb
import numpy as np
import pytest
from PIL import Image

from eigen_depth.caffe import blob_to_array, read_binaryproto
from eigen_depth.data.commands import convert_imageset_main, make_lmdb_main
from eigen_depth.data.lmdb_io import LmdbReader, check_paired, compute_mean, convert_imageset, read_keys
from eigen_depth.data.paired_lmdb import make_lmdb
from eigen_depth.errors import DatasetError

# a.png: 3 wide, 2 high, RGB
A_RGB = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 9]],
                  [[10, 11, 12], [13, 14, 15], [16, 17, 18]]], np.uint8)


def records(path):
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = list(txn.cursor())
    env.close()
    return items


@pytest.fixture()
def images(tmp_path):
    Image.fromarray(A_RGB).save(tmp_path / "a.png")
    Image.fromarray(np.full((2, 4), 200, np.uint8)).save(tmp_path / "b.png")  # gray file
    (tmp_path / "list.txt").write_text("a.png 5\nb.png 300\n")
    return tmp_path


def test_keys_and_datum_bytes_match_convert_imageset(images):
    convert_imageset(images, images / "list.txt", images / "db", progress=False)
    (key_a, value_a), (key_b, value_b) = records(images / "db")
    assert key_a == b"00000000_a.png" and key_b == b"00000001_b.png"
    # channels 3 (08 03), height 2 (10 02), width 3 (18 03), data 18 bytes (22 12): the B plane, then G,
    # then R, each row by row (OpenCV's BGR, Caffe's CHW); label 5 (28 05); encoded false (38 00)
    blue, green, red = [3, 6, 9, 12, 15, 18], [2, 5, 8, 11, 14, 17], [1, 4, 7, 10, 13, 16]
    assert value_a == bytes([0x08, 3, 0x10, 2, 0x18, 3, 0x22, 18] + blue + green + red + [0x28, 5, 0x38, 0])
    # a gray file read as colour has 3 equal planes; label 300 is the varint ac 02
    assert value_b == bytes([0x08, 3, 0x10, 2, 0x18, 4, 0x22, 24] + [200] * 24 + [0x28, 0xAC, 0x02, 0x38, 0])


def test_gray_stores_one_channel(images):
    Image.fromarray(np.array([[[255, 0, 0], [0, 0, 255], [90, 90, 90]]], np.uint8)).save(images / "c.png")
    (images / "gray.txt").write_text("c.png 0\n")
    convert_imageset(images, images / "gray.txt", images / "db", gray=True, progress=False)
    (_, value), = records(images / "db")
    # 0.299 * 255 = 76.2 -> 76 for red, 0.114 * 255 = 29.1 -> 29 for blue, gray stays 90
    assert value == bytes([0x08, 1, 0x10, 1, 0x18, 3, 0x22, 3, 76, 29, 90, 0x28, 0, 0x38, 0])


def test_resize_halving_averages_two_by_two_blocks(tmp_path):
    # bilinear halving samples source position 2x + 0.5: the mean of each 2x2 block
    gray = np.array([[0, 8, 100, 104], [4, 12, 96, 100]], np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    (tmp_path / "l.txt").write_text("g.png 1\n")
    convert_imageset(tmp_path, tmp_path / "l.txt", tmp_path / "db", resize_height=1, resize_width=2, gray=True,
                     progress=False)
    (_, value), = records(tmp_path / "db")
    assert value == bytes([0x08, 1, 0x10, 1, 0x18, 2, 0x22, 2, 6, 100, 0x28, 1, 0x38, 0])


def test_encoded_keeps_the_file_bytes(images):
    convert_imageset(images, images / "list.txt", images / "db", encoded=True, progress=False)
    (_, value), _ = records(images / "db")
    data = (images / "a.png").read_bytes()
    assert len(data) < 128
    assert value == bytes([0x22, len(data)]) + data + bytes([0x28, 5, 0x38, 1])


def test_encoded_with_resize_reencodes_and_decodes_to_bgr(images):
    convert_imageset(images, images / "list.txt", images / "db", resize_height=2, resize_width=3, encoded=True,
                     progress=False)
    reader = LmdbReader(images / "db")
    array, label = reader.datum(0)
    reader.close()
    assert label == 5 and np.array_equal(array, A_RGB[:, :, ::-1].transpose(2, 0, 1))


def test_shuffle_keeps_key_format_and_every_file(tmp_path):
    names = [f"img{i}.png" for i in range(12)]
    for i, name in enumerate(names):
        Image.fromarray(np.full((1, 1), i, np.uint8)).save(tmp_path / name)
    (tmp_path / "l.txt").write_text("".join(f"{n} {i}\n" for i, n in enumerate(names)))
    convert_imageset(tmp_path, tmp_path / "l.txt", tmp_path / "db", gray=True, shuffle=True, seed=3, progress=False)
    keys = [k.decode() for k, _ in records(tmp_path / "db")]
    assert [k[:9] for k in keys] == [f"{i:08d}_" for i in range(12)]
    assert sorted(k[9:] for k in keys) == sorted(names) and [k[9:] for k in keys] != names
    for key, value in records(tmp_path / "db"):  # each record still holds its own file's pixel and label
        index = int(key.decode()[12:-4])
        assert value[8] == index and value[9:] == bytes([0x28, index, 0x38, 0])


def test_existing_database_is_an_error_and_nothing_is_left_half_written(images):
    convert_imageset(images, images / "list.txt", images / "db", progress=False)
    with pytest.raises(DatasetError, match="already exists"):
        convert_imageset(images, images / "list.txt", images / "db", progress=False)
    (images / "broken.txt").write_text("a.png 1\nmissing.png 2\n")
    with pytest.raises(DatasetError, match="broken.txt: 1 of the 2 files it lists do not exist: .*missing.png"):
        convert_imageset(images, images / "broken.txt", images / "db2", progress=False)
    assert not (images / "db2").exists() and not (images / ".db2.partial").exists()
    (images / "folder.png").mkdir()  # listed, there, but no image: found while converting
    (images / "folder.txt").write_text("a.png 1\nfolder.png 2\n")
    with pytest.raises(DatasetError, match="folder.png"):
        convert_imageset(images, images / "folder.txt", images / "db3", progress=False)
    assert not (images / "db3").exists() and not (images / ".db3.partial").exists()


def test_list_file_label_follows_the_last_space(images):
    Image.fromarray(A_RGB).save(images / "with space.png")
    (images / "sp.txt").write_text("with space.png 7\n")
    convert_imageset(images, images / "sp.txt", images / "db", progress=False)
    (key, value), = records(images / "db")
    assert key == b"00000000_with space.png" and value.endswith(bytes([0x28, 7, 0x38, 0]))


def test_command_line(images, capsys):
    assert convert_imageset_main([str(images) + "/", str(images / "list.txt"), str(images / "db"), "--gray",
                                  "--quiet"]) == 0
    assert "Processed 2 files" in capsys.readouterr().out
    assert convert_imageset_main([str(images) + "/", str(images / "list.txt"), str(images / "db"), "--quiet"]) == 2


# -- make_lmdb --------------------------------------------------------------------------------------------
def make_pairs(folder, count=6, size=(12, 8)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(rgb).save(folder / f"{i:05d}_colors.png")
        Image.fromarray(rng.integers(1, 256, (size[1], size[0]), dtype=np.uint8)).save(folder / f"{i:05d}_depth.png")
    return folder


def test_make_lmdb_equals_three_convert_imageset_runs(tmp_path):
    pairs = make_pairs(tmp_path / "train")
    make_lmdb(pairs, tmp_path / "out", color_size=(6, 4), depth_sizes=[(3, 2), (5, 3)], shuffle=False,
              workers=1, progress=False, log=lambda *a: None)
    (tmp_path / "colors.txt").write_text("".join(f"{i:05d}_colors.png 0\n" for i in range(6)))
    (tmp_path / "depth.txt").write_text("".join(f"{i:05d}_depth.png 0\n" for i in range(6)))
    convert_imageset(pairs, tmp_path / "colors.txt", tmp_path / "c", resize_height=4, resize_width=6, progress=False)
    convert_imageset(pairs, tmp_path / "depth.txt", tmp_path / "d1", resize_height=2, resize_width=3, gray=True,
                     progress=False)
    convert_imageset(pairs, tmp_path / "depth.txt", tmp_path / "d2", resize_height=3, resize_width=5, gray=True,
                     progress=False)
    assert records(tmp_path / "out" / "train_color_6x4") == records(tmp_path / "c")
    assert records(tmp_path / "out" / "train_depth_3x2") == records(tmp_path / "d1")
    assert records(tmp_path / "out" / "train_depth_5x3") == records(tmp_path / "d2")


def test_make_lmdb_shuffles_once_for_all_three(tmp_path):
    make_pairs(tmp_path / "pairs" / "train")
    make_pairs(tmp_path / "pairs" / "test", count=3)
    written = make_lmdb(tmp_path / "pairs", tmp_path / "out", seed=5, workers=2, progress=False, log=lambda *a: None)
    assert sorted(p.split("/")[-1] for p in written) == [
        "test_color_298x218", "test_depth_37x27", "test_depth_74x54",
        "train_color_298x218", "train_depth_37x27", "train_depth_74x54"]
    color = read_keys(tmp_path / "out" / "train_color_298x218")
    depth = read_keys(tmp_path / "out" / "train_depth_74x54")
    stems = [k[9:14] for k in color]
    assert stems == [k[9:14] for k in depth] and stems != sorted(stems)
    assert sorted(stems) == [f"{i:05d}" for i in range(6)]
    check_paired([tmp_path / "out" / n for n in ("train_color_298x218", "train_depth_37x27", "train_depth_74x54")])
    listed = (tmp_path / "out" / "train_pairs.txt").read_text().split()
    assert listed[1::2] == stems
    reader = LmdbReader(tmp_path / "out" / "train_depth_37x27")
    assert reader.datum(0)[0].shape == (1, 27, 37)
    reader.close()


def test_make_lmdb_skips_complete_sets_and_refuses_partial_ones(tmp_path):
    make_pairs(tmp_path / "test", count=2)
    logs = []
    make_lmdb(tmp_path / "test", tmp_path / "out", workers=1, progress=False, log=logs.append)
    make_lmdb(tmp_path / "test", tmp_path / "out", workers=1, progress=False, log=logs.append)
    assert "skipped" in logs[-1] and "test_color_298x218" in logs[-1]
    import shutil
    shutil.rmtree(tmp_path / "out" / "test_depth_37x27")
    with pytest.raises(DatasetError, match="rebuild all of them together with --overwrite"):
        make_lmdb(tmp_path / "test", tmp_path / "out", workers=1, progress=False, log=logs.append)


def test_unpaired_databases_are_detected(tmp_path):
    make_pairs(tmp_path / "a" / "train", count=3)
    make_pairs(tmp_path / "b" / "train", count=4)
    make_lmdb(tmp_path / "a", tmp_path / "oa", workers=1, progress=False, log=lambda *a: None)
    make_lmdb(tmp_path / "b", tmp_path / "ob", workers=1, progress=False, log=lambda *a: None)
    with pytest.raises(DatasetError, match="holds 4 records but .* holds 3"):
        check_paired([tmp_path / "oa" / "train_color_298x218", tmp_path / "ob" / "train_depth_37x27"])


def test_mean_file_is_the_average_record(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    for i, value in enumerate((10, 20, 60)):
        Image.fromarray(np.full((4, 6, 3), value, np.uint8)).save(folder / f"{i}_colors.png")
        Image.fromarray(np.full((4, 6), value, np.uint8)).save(folder / f"{i}_depth.png")
    assert make_lmdb_main([str(folder), str(tmp_path / "out"), "--color-size", "6x4", "--depth-sizes", "3x2",
                           "--mean-file", "--workers", "1", "--quiet"]) == 0
    mean = blob_to_array(read_binaryproto(tmp_path / "out" / "train_color_6x4_mean.binaryproto"))
    assert mean.shape == (1, 3, 4, 6) and np.allclose(mean, 30.0)
    assert np.allclose(compute_mean(tmp_path / "out" / "train_depth_3x2"), 30.0)


def test_sixteen_bit_millimetre_depth_becomes_the_8_bit_unit(tmp_path):
    folder = tmp_path / "train"
    folder.mkdir()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(folder / "0_colors.png")
    import cv2
    cv2.imwrite(str(folder / "0_depth.png"), np.array([[2000, 5000], [0, 12000]], np.uint16))
    make_lmdb(folder, tmp_path / "out", color_size=(2, 2), depth_sizes=[(2, 2)], workers=1, progress=False,
              log=lambda *a: None)
    reader = LmdbReader(tmp_path / "out" / "train_depth_2x2")
    assert reader.datum(0)[0].ravel().tolist() == [51, 127, 0, 255]  # 2 m, 5 m, missing, over 10 m
    reader.close()


def test_readers_of_one_database_share_it_until_the_last_lets_go_even_across_threads(images):
    # py-lmdb opens a database once per process: the readers share it, a closed reader leaves the others
    # working, and a reader dropped in another thread leaves it open, or closed, never half of each (a new
    # reader then opens it again)
    import gc
    import threading
    convert_imageset(images, images / "list.txt", images / "db", progress=False)
    expected = [value for _, value in records(images / "db")]     # read by lmdb itself, before any reader
    first, second = LmdbReader(images / "db"), LmdbReader(images / "db")
    first.close()
    assert second.value(1) == expected[1]
    second.close()
    for _ in range(200):
        held = [LmdbReader(images / "db")]
        dropper = threading.Thread(target=held.clear)
        dropper.start()
        reader = LmdbReader(images / "db")
        dropper.join()
        assert reader.value(0) == expected[0]
        reader.close()
        gc.collect(0)  # the young objects only: a full collection here took most of the time


def interrupt_nth_replace(monkeypatch, n):
    """os.replace in lmdb_io raises KeyboardInterrupt (a Ctrl-C at that moment) on its n-th call."""
    import os

    from eigen_depth.data import lmdb_io
    calls = []

    def replace(source, target):
        calls.append((source, target))
        if len(calls) == n:
            raise KeyboardInterrupt
        os.replace(source, target)
    monkeypatch.setattr(lmdb_io.os, "replace", replace)
    return calls


@pytest.mark.parametrize("n", [1, 2])
def test_overwriting_a_database_interrupted_at_any_move_keeps_the_old_one(images, monkeypatch, n):
    convert_imageset(images, images / "list.txt", images / "db", progress=False)
    old = records(images / "db")
    (images / "one.txt").write_text("b.png 7\n")
    calls = interrupt_nth_replace(monkeypatch, n)
    with pytest.raises(KeyboardInterrupt):
        convert_imageset(images, images / "one.txt", images / "db", overwrite=True, progress=False)
    monkeypatch.undo()
    assert len(calls) >= n and records(images / "db") == old
    assert sorted(p.name for p in images.iterdir() if p.name.startswith(".")) == []
    convert_imageset(images, images / "one.txt", images / "db", overwrite=True, progress=False)
    assert [key for key, _ in records(images / "db")] == [b"00000000_b.png"]
    assert sorted(p.name for p in images.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_rebuilding_paired_databases_interrupted_at_any_move_leaves_all_old_ones(tmp_path, monkeypatch, n):
    # three databases, two moves each (the old one aside, the new one in): wherever Ctrl-C falls, every
    # database still holds the old build, so none is paired with another build's records
    make_pairs(tmp_path / "pairs" / "train", count=4)
    out = tmp_path / "out"
    names = ("train_color_298x218", "train_depth_37x27", "train_depth_74x54")
    make_lmdb(tmp_path / "pairs", out, seed=1, workers=1, progress=False, log=lambda *a: None)
    old = [records(out / name) for name in names]
    interrupt_nth_replace(monkeypatch, n)
    with pytest.raises(KeyboardInterrupt):
        make_lmdb(tmp_path / "pairs", out, seed=2, overwrite=True, workers=1, progress=False, log=lambda *a: None)
    monkeypatch.undo()
    assert [records(out / name) for name in names] == old
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ("train_pairs.txt",))
    make_lmdb(tmp_path / "pairs", out, seed=2, overwrite=True, workers=1, progress=False, log=lambda *a: None)
    new = [records(out / name) for name in names]
    assert new[0] != old[0] and [k[:14] for k, _ in new[0]] == [k[:14] for k, _ in new[2]]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ("train_pairs.txt",))


def test_make_lmdb_keeps_a_mean_file_it_would_replace_unless_told_to_overwrite(tmp_path):
    from eigen_depth.errors import OutputError
    make_pairs(tmp_path / "train", count=2)
    mean = tmp_path / "out" / "train_color_298x218_mean.binaryproto"
    mean.parent.mkdir()
    mean.write_bytes(b"a mean of other images")
    with pytest.raises(OutputError, match="train_color_298x218_mean.binaryproto: exists already"):
        make_lmdb(tmp_path / "train", tmp_path / "out", mean_file=True, workers=1, progress=False,
                  log=lambda *a: None)
    assert mean.read_bytes() == b"a mean of other images" and sorted(os.listdir(tmp_path / "out")) == [mean.name]
    make_lmdb(tmp_path / "train", tmp_path / "out", mean_file=True, overwrite=True, workers=1, progress=False,
              log=lambda *a: None)
    assert blob_to_array(read_binaryproto(mean)).shape == (1, 3, 218, 298)


def test_databases_of_two_builds_with_the_same_count_are_not_paired(tmp_path):
    # the same 8-digit positions, other shuffles: record k of one build is another room than record k of the other
    make_pairs(tmp_path / "pairs" / "train", count=4)
    for seed in (1, 2):
        make_lmdb(tmp_path / "pairs", tmp_path / f"out{seed}", seed=seed, workers=1, progress=False,
                  log=lambda *a: None)
    keys = [read_keys(tmp_path / f"out{seed}" / "train_color_298x218") for seed in (1, 2)]
    assert [k[9:14] for k in keys[0]] != [k[9:14] for k in keys[1]]
    check_paired([tmp_path / "out1" / "train_color_298x218", tmp_path / "out1" / "train_depth_37x27"])
    with pytest.raises(DatasetError, match="are not paired: key"):
        check_paired([tmp_path / "out1" / "train_color_298x218", tmp_path / "out2" / "train_depth_37x27"])
