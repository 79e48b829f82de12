"""Data for the thesis's networks: NYU Depth v2 conversion, augmentation, Caffe LMDBs, the Data and HDF5Data
layers, folders of image pairs and synthetic scenes (docs/specification.md sections 1, 2 and 5).

The pipeline, as the thesis ran it (each step a tool over this package):

    convert_nyu.py nyu_depth_v2_labeled.mat splits.mat nyu/  # nyu/{test,train}/NNNNN_colors.png, _depth.png
    augment.py frames/ frames_data2/ --recipe data2           # 5 variants + flips per frame (section 5), from
                                                              # frames larger than 420x320 (561x427, --full)
    make_lmdb.py nyu/ lmdb/                                   # lmdb/{train,test}_color_298x218,
                                                              #   _depth_37x27, _depth_74x54
    make_synthetic.py 100 synth/ --format nyu-mat             # a labeled-.mat look-alike of rendered rooms

Units and channel order
- Depth files (png8) hold meters / 10 * 255 (docs/specification.md section 1); the depth LMDBs hold those bytes
  resized, and the thesis's depth Data layers scale them by 0.00390625 = 1/256, not 1/255: the networks were
  trained on targets 255/256 (0.4 %) smaller than the evaluator's GT (pixel / 255). That quirk is kept,
  because the prototxts say so; change the layers' `scale` to 1/255 to remove it.
- Colour LMDBs are BGR (OpenCV, as Caffe's convert_imageset); the folder and synthetic sources give BGR
  too, so every data kind feeds the same pixels. The colour Data layers subtract 127 from every channel.

Choosing the data (eigen_depth.data.settings): a Data layer's `source` is resolved against the data root
(set_data_root, or $EIGEN_DEPTH_DATA_ROOT); configure(kind="lmdb"|"pairs"|"synthetic") picks Caffe's LMDBs,
folders `<root>/<split>/*_colors.png|*_depth.png` (resized as make_lmdb does) or rendered scenes, with no
change to the prototxt. PairedSource gives the same paired batches to a training loop of one's own.

Order, resuming and sharding (order.py)
- Records are read in key order, wrapping around, as Caffe does; configure(shuffle=True) reads a seeded
  permutation per epoch instead (TRAIN phase only; TEST sources keep the key order).
- Every source has `position` = records consumed so far by all processes, and `seek(position)`; resuming
  from a .solverstate at iteration `it` is seek(it * batch_size * iter_size * world_size) on each source
  (in a net: every layer with a `seek` method, see layers.is_source_layer).
- With torch.distributed, rank r of W reads stream positions P + r, P + r + W, ... (P = position): the ranks
  together read every record once per epoch, and a batch advances the position by batch_size * W.
- Crops and mirrors are drawn from (seed, stream position), so paired colour and depth layers flip alike.

Registration: importing eigen_depth.data.layers registers "Data" and "HDF5Data" with eigen_depth.layers
(eigen_depth.net imports it). The rest of this package does not need torch: `eigen_depth.data.nyu`,
`.augment`, `.synthetic`, `.lmdb_io` and `.pairs` run in converters and worker processes without it.
"""
from .settings import DataSettings, configure, current, set_data_root, using

_LAZY = {
    "PairedSource": ("loader", "PairedSource"), "BatchLoader": ("loader", "BatchLoader"),
    "RecordOrder": ("order", "RecordOrder"), "CaffeTransformer": ("transform", "CaffeTransformer"),
    "open_records": ("records", "open_records"), "DataLayer": ("layers", "DataLayer"),
    "HDF5DataLayer": ("layers", "HDF5DataLayer"), "is_source_layer": ("layers", "is_source_layer"),
    "convert_nyu": ("nyu", "convert_nyu"), "augment_folder": ("augment", "augment_folder"),
    "make_lmdb": ("paired_lmdb", "make_lmdb"), "convert_imageset": ("lmdb_io", "convert_imageset"),
    "render": ("synthetic", "render"), "random_scene": ("synthetic", "random_scene"),
    "SceneSet": ("synthetic", "SceneSet"), "find_pairs": ("pairs", "find_pairs"),
}
__all__ = ["DataSettings", "configure", "current", "set_data_root", "using"] + sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    raise AttributeError(f"module 'eigen_depth.data' has no attribute '{name}'")
