"""Record order (resume, shuffle, sharding), Caffe's DataTransformer, the background loader and PairedSource."""
import numpy as np
import pytest
from PIL import Image

from eigen_depth.caffe import array_to_blob, write_binaryproto
from eigen_depth.caffe.schema import TEST, TRAIN, DataParameter, TransformationParameter
from eigen_depth.data.loader import BatchLoader, PairedSource, RecordStream
from eigen_depth.data.paired_lmdb import make_lmdb
from eigen_depth.data.order import RecordOrder
from eigen_depth.data.records import PairRecords
from eigen_depth.data.transform import CaffeTransformer
from eigen_depth.errors import DatasetError


# -- Order --------------------------------------------------------------------------------------------------
def test_sequential_order_wraps_around_like_caffe():
    indices, positions = RecordOrder(7).batch(5, 4)
    assert indices.tolist() == [5, 6, 0, 1] and positions.tolist() == [5, 6, 7, 8]


def test_shuffled_epochs_are_permutations_that_differ():
    order = RecordOrder(10, seed=4, shuffle=True)
    epochs = [order.records(np.arange(10 * e, 10 * e + 10)).tolist() for e in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    assert RecordOrder(10, seed=4, shuffle=True).records(np.arange(30)).tolist() == sum(epochs, [])


def test_ranks_share_each_step_without_overlap():
    # rank r of 3 reads stream positions P + r, P + r + 3, ...: rank 1 with batch 3 from P = 0 reads 1, 4, 7 -> 0
    assert RecordOrder(7, rank=1, world_size=3).batch(0, 3)[0].tolist() == [1, 4, 0]
    order = [RecordOrder(20, seed=1, shuffle=True, rank=r, world_size=4) for r in range(4)]
    seen = np.concatenate([o.batch(8, 3)[1] for o in order])
    assert sorted(seen.tolist()) == list(range(8, 20)) and order[0].advance(3) == 12


def test_skip_offsets_the_stream():
    assert RecordOrder(5, skip=3).batch(0, 3)[0].tolist() == [3, 4, 0]


# -- Transform ----------------------------------------------------------------------------------------------
RECORD = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5)


def transform(param_text="", phase=TEST, shape=RECORD.shape, **kwargs):
    from eigen_depth.caffe import parse_text
    return CaffeTransformer(parse_text(TransformationParameter, param_text), phase, shape, **kwargs)


def run(transformer, record=RECORD, position=0):
    out = np.empty(transformer.output_shape, np.float32)
    return transformer.apply(record, out, position)


def test_scale_and_one_mean_value_for_all_channels():
    assert np.array_equal(run(transform("mean_value: 3 scale: 0.5")), (RECORD.astype(np.float32) - 3) * 0.5)


def test_one_mean_value_per_channel():
    expected = RECORD.astype(np.float32) - np.array([1, 2], np.float32)[:, None, None]
    assert np.array_equal(run(transform("mean_value: 1 mean_value: 2")), expected)


def test_mean_file_is_subtracted_before_scaling(tmp_path):
    mean = np.full((1, 2, 4, 5), 10.0, np.float32)
    mean[0, 1, 2, 3] = 40.0
    write_binaryproto(array_to_blob(mean, legacy=True), tmp_path / "mean.binaryproto")
    out = run(transform(f'mean_file: "{tmp_path / "mean.binaryproto"}" scale: 2'))
    assert out[0, 0, 0] == (0 - 10) * 2 and out[1, 2, 3] == (RECORD[1, 2, 3] - 40.0) * 2


def test_relative_mean_file_resolves_against_the_data_root(tmp_path):
    write_binaryproto(np.zeros((1, 2, 4, 5), np.float32), tmp_path / "m.binaryproto")
    assert np.array_equal(run(transform('mean_file: "m.binaryproto"', root=str(tmp_path))), RECORD.astype(np.float32))


def test_test_phase_crop_is_centred():
    # (4 - 2) // 2 = 1 row and (5 - 2) // 2 = 1 column off the top left
    assert np.array_equal(run(transform("crop_size: 2")), RECORD[:, 1:3, 1:3].astype(np.float32))


def test_train_phase_crops_cover_every_offset():
    crop = transform("crop_size: 2", TRAIN)
    offsets = {crop.offsets(position)[:2] for position in range(400)}
    assert offsets == {(h, w) for h in range(3) for w in range(4)}
    h, w, _ = crop.offsets(17)
    assert np.array_equal(run(crop, position=17), RECORD[:, h:h + 2, w:w + 2].astype(np.float32))


def test_mirror_flips_about_half_of_the_records_in_both_phases():
    for phase in (TRAIN, TEST):
        mirror = transform("mirror: true", phase)
        flipped = [mirror.offsets(p)[2] for p in range(1000)]
        assert 420 < sum(flipped) < 580
        position = flipped.index(True)
        assert np.array_equal(run(mirror, position=position), RECORD[:, :, ::-1].astype(np.float32))


def test_mean_file_and_mean_value_together_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="not both"):
        transform('mean_file: "x" mean_value: 1')


def test_wrong_number_of_mean_values_is_refused():
    with pytest.raises(DatasetError, match="3 mean_value entries for 2-channel records"):
        transform("mean_value: 1 mean_value: 2 mean_value: 3")


def test_legacy_data_param_fields_apply_when_transform_param_lacks_them():
    legacy = DataParameter(scale=0.25)
    transformer = CaffeTransformer(TransformationParameter(), TEST, RECORD.shape, data_param=legacy)
    assert np.array_equal(run(transformer), RECORD.astype(np.float32) * 0.25)


# -- Loader and PairedSource -----------------------------------------------------------------------------------
def write_indexed_pairs(folder, count, size=(6, 4)):
    """Pairs whose pixels say their index: colour RGB (i, 100 + column, 200), depth i + 1."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    for i in range(count):
        rgb = np.zeros((height, width, 3), np.uint8)
        rgb[:, :, 0] = i
        rgb[:, :, 1] = 100 + np.arange(width)
        rgb[:, :, 2] = 200
        Image.fromarray(rgb).save(folder / f"{i:03d}_colors.png")
        Image.fromarray(np.full((height, width), i + 1, np.uint8)).save(folder / f"{i:03d}_depth.png")
    return folder


def test_batches_do_not_depend_on_the_thread_count(tmp_path):
    folder = write_indexed_pairs(tmp_path / "train", 9)

    def batches(workers):
        stream = RecordStream(PairRecords(folder, "color", (6, 4)), transform("mean_value: 127 mirror: true", TRAIN,
                                                                              (3, 4, 6)))
        loader = BatchLoader([stream], RecordOrder(9, seed=2, shuffle=True), 4, workers=workers, prefetch=2)
        result = [loader.next_batch()[0] for _ in range(5)]
        loader.close()
        return result

    for a, b in zip(batches(0), batches(3)):
        assert np.array_equal(a, b)


def test_seek_continues_exactly_and_drops_prepared_batches(tmp_path):
    folder = write_indexed_pairs(tmp_path / "train", 9)
    def make():
        stream = RecordStream(PairRecords(folder, "depth", (6, 4)), transform(shape=(1, 4, 6)))
        return BatchLoader([stream], RecordOrder(9, seed=1, shuffle=True), 4, workers=2, prefetch=3)

    first = make()
    reference = [first.next_batch()[0] for _ in range(4)]
    assert first.position == 16
    second = make()
    second.next_batch()
    second.seek(8)
    assert second.position == 8
    assert np.array_equal(second.next_batch()[0], reference[2]) and np.array_equal(second.next_batch()[0], reference[3])
    first.close()
    second.close()


def test_a_broken_record_raises_in_the_consumer(tmp_path):
    folder = write_indexed_pairs(tmp_path / "train", 3)
    (folder / "001_colors.png").write_bytes(b"not a png")
    loader = BatchLoader([RecordStream(PairRecords(folder, "color", (6, 4)), transform(shape=(3, 4, 6)))],
                         RecordOrder(3), 3, workers=2)
    with pytest.raises(DatasetError, match="001_colors.png: cannot decode"):
        loader.next_batch()
    loader.close()


def test_paired_source_pairs_colour_and_depth_through_shuffles(tmp_path):
    write_indexed_pairs(tmp_path / "train", 7)
    source = PairedSource("pairs", tmp_path, "train", color_size=(6, 4), depth_size=(3, 2), batch_size=3,
                          shuffle=True, seed=9, workers=2)
    assert len(source) == 7
    for _ in range(6):  # 18 records: across two epoch boundaries
        color, depth = (t.numpy() for t in source.next_batch())
        assert color.shape == (3, 3, 4, 6) and depth.shape == (3, 1, 2, 3)
        index = color[:, 2, 0, 0] + 127                            # BGR: the red channel (= index) is last
        assert np.array_equal(depth[:, 0, 0, 0] * 256, index + 1)  # depth bytes i + 1, scaled by 1/256
        assert np.all(color[:, 0] == 200 - 127)                     # blue first
    source.close()


def test_paired_source_from_lmdb_equals_from_pairs(tmp_path):
    write_indexed_pairs(tmp_path / "pairs" / "train", 5, size=(12, 8))
    make_lmdb(tmp_path / "pairs", tmp_path / "lmdb", color_size=(6, 4), depth_sizes=[(3, 2)], shuffle=False,
              workers=1, progress=False, log=lambda *a: None)
    options = dict(split="train", color_size=(6, 4), depth_size=(3, 2), batch_size=4, shuffle=True, seed=1)
    from_lmdb = PairedSource("lmdb", tmp_path / "lmdb", **options)
    from_pairs = PairedSource("pairs", tmp_path / "pairs", **options)
    for _ in range(3):
        for a, b in zip(from_lmdb.next_batch(), from_pairs.next_batch()):
            assert np.array_equal(a.numpy(), b.numpy())
    from_lmdb.close()
    from_pairs.close()


def test_paired_source_refuses_databases_of_different_lengths(tmp_path):
    write_indexed_pairs(tmp_path / "a" / "train", 3)
    write_indexed_pairs(tmp_path / "b" / "train", 4)
    make_lmdb(tmp_path / "a", tmp_path / "lmdb", color_size=(6, 4), depth_sizes=[], workers=1, progress=False,
              log=lambda *a: None)
    make_lmdb(tmp_path / "b", tmp_path / "lmdb", color_size=(1, 1), depth_sizes=[(3, 2)], workers=1,
              progress=False, log=lambda *a: None)
    with pytest.raises(DatasetError, match="holds 3 records but .* holds 4"):
        PairedSource("lmdb", tmp_path / "lmdb", "train", color_size=(6, 4), depth_size=(3, 2))
