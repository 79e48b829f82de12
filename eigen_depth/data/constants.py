"""The data pipeline's numbers, each with where it comes from (docs/specification.md sections; the NYU
toolbox for the synthetic camera). The general ones (input size, mean, depth floor) live in eigen_depth/constants.py."""
from ..constants import DEPTH_UNIT_M, INPUT_HEIGHT, INPUT_MEAN, INPUT_WIDTH, NYU_DEPTH_FLOOR_TENTH_M  # noqa: F401

# -- NYU Depth v2 labeled set (docs/specification.md section 5) ----------------------------------------------------
NYU_HEIGHT, NYU_WIDTH = 480, 640          # section 5: images stored (N, 3, 640, 480), `.T` gives 480x640
NYU_IMAGE_COUNT = 1449                    # section 5: 1449 labeled images ...
NYU_TEST_COUNT, NYU_TRAIN_COUNT = 654, 795  # ... split into 654 test and 795 train (splits.mat, one-based)
NYU_IMAGES_KEY, NYU_DEPTHS_KEY = "images", "depths"      # section 5: datasets of the labeled .mat
NYU_RAW_DEPTHS_KEY = "rawDepths"          # the labeled file's unfilled Kinect depth (holes are 0)
NYU_TEST_KEY, NYU_TRAIN_KEY = "testNdxs", "trainNdxs"    # section 5: variables of splits.mat
CROP_HEIGHT, CROP_WIDTH = 320, 420        # section 5: centre crop 640x480 -> 420x320 ...
CROP_TOP, CROP_LEFT = 80, 110             # ... borders 80 (top, bottom) and 110 (left, right)

# -- Depth encodings ------------------------------------------------------------------------------------
DEPTH_PNG8_MAX = 255                      # section 5: values over 10 m clip to 255
DEPTH_MM_PER_M = 1000.0                   # png16mm: uint16 millimetres (the common NYU/Kinect convention)
LMDB_DEPTH_SCALE = 0.00390625             # sections 1, 2: the depth Data layers' transform_param scale = 1/256

# -- Training data sizes (docs/specification.md sections 1 and 5) ------------------------------------------------
COLOR_SIZE = (INPUT_WIDTH, INPUT_HEIGHT)  # section 1: colour LMDB 298x218 (width x height)
DEPTH_SIZES = ((37, 27), (74, 54))        # section 1: depth LMDBs 37x27 (global, gradient, joint), 74x54 (refining)
RAW_FRAME_SIZE = (561, 427)               # section 5: the raw NYU projection the training crops came from

# -- Augmentation recipes (docs/specification.md section 5) --------------------------------------------------------
AUGMENT_VARIANTS = 5                      # section 5: 5 random variants per frame, plus their horizontal flips
AUGMENT_ROTATION_PROBABILITY = 1.0 / 3.0  # section 5: a variant is a rotation with probability 1/3, else a rescale
RECIPES = {
    # name: rotation std (degrees), rescale range, HSV shift half-width, contrast range (over 255)
    "data0": None,                                                          # plain centre crop
    "data1": dict(rotation_std_deg=2.5, scale=(0.875, 1.125), hsv_shift=0.05, contrast=(205.0, 305.0)),
    "data2": dict(rotation_std_deg=5.0, scale=(0.75, 1.25), hsv_shift=0.1, contrast=(175.0, 335.0)),
}

# -- Synthetic scenes: the NYU Kinect colour camera (defined with the other thesis constants) ----------
from ..constants import NYU_CX, NYU_CY, NYU_FX, NYU_FY  # noqa: E402,F401
