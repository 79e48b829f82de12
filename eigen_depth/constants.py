"""The thesis's numbers in one place, each with the section of docs/specification.md it comes from.

Units: `*_TENTH_M` values are in the networks' unit, depth in meters / 10 (docs/specification.md section 1).
"""

# -- Network input (docs/specification.md section 1) -------------------------------------------------------------
INPUT_BLOB = "X"                      # section 1: network input blob
INPUT_HEIGHT, INPUT_WIDTH = 218, 298  # section 1: (N, 3, 218, 298)
INPUT_SCALE = 255.0                   # section 1: float RGB in [0, 1] times 255 ...
INPUT_MEAN = 127.0                    # section 1: ... minus 127, one mean value for all channels

# -- Depth encoding (docs/specification.md section 1) ------------------------------------------------------------
DEPTH_UNIT_M = 10.0                   # section 1: the networks' depth and the 8-bit PNGs are meters / 10
LOG_DEPTH_SCALE = 0.179581            # section 1: L(d) = 0.179581 * ln(d) + 1
LOG_DEPTH_SHIFT = 1.0                 # section 1

# -- Output blobs (docs/specification.md sections 1 and 4) -------------------------------------------------------
DEPTH_BLOBS = ("depth-refine", "depth")  # section 4: refining nets first, then global / joint nets
GRADIENT_BLOB = "gradient"               # section 1: the gradient nets' 2-channel output

# -- The evaluator test_depth (docs/specification.md section 4) --------------------------------------------------
GT_HEIGHT, GT_WIDTH = 320, 420        # section 4: GT resized to (320, 420); outputs zoomed to 320x420
RESIZE_ORDER = 1                      # section 4: skimage resize, bilinear, mode 'constant', no anti-aliasing
ZOOM_ORDER = 3                        # section 4: scipy.ndimage.zoom, cubic spline
PNG_COMPRESSION = 8                   # section 4: images written with PNG compression 8
# zlib's strategy for those PNGs: not the original's (zlib's default), which gives the same pixels 8-23x slower
# at level 8 in files of the same size (README, "Known deviations")
PNG_STRATEGY = "rle"
PNG_STRATEGIES = ("default", "filtered", "huffman", "rle", "fixed")   # zlib's Z_DEFAULT_STRATEGY ... Z_FIXED
METRIC_FLOOR = 1.0 / 255.0            # section 4: m = 1/255, the clamp of the ten metrics
THRESHOLDS = (1.25, 1.25 ** 2, 1.25 ** 3)  # section 4: the three threshold metrics
VIS_DEPTH_MIN, VIS_DEPTH_MAX = 0.001, 1000.0  # section 4: V(d) clips d to [0.001, 1000] ...
VIS_LOG_SCALE = 2 * LOG_DEPTH_SCALE           # section 4: ... then clip(2 * 0.179581 * ln(d) + 1, 0, 1)
TOP_COUNT = 10                        # section 4: the top 10 snapshots per metric are printed

# The ten metrics of section 4, in the original's order; True where larger is better (the thresholds).
THESIS_METRICS = ("AbsRelDiff", "SqrRelDiff", "RMSE", "RMSELog", "SIMSE", "Log10", "MVN",
                  "Threshold 1.25", "Threshold 1.25^2", "Threshold 1.25^3")
THESIS_HIGHER_IS_BETTER = (False,) * 7 + (True,) * 3

# -- test_grad (docs/specification.md sections 3.2 and 4) --------------------------------------------------------
GRADIENT_GT_HEIGHT, GRADIENT_GT_WIDTH = 318, 418  # section 4: the 3x3 filter on the 320x420 GT, no padding
# section 3.2: gradientFilter kernels (cross-correlation, as Caffe's Convolution): channel 0 = vertical
# change (rows -1, 0, +1), channel 1 = horizontal change (columns -1, 0, +1).
GRADIENT_KERNELS = (((-1, -1, -1), (0, 0, 0), (1, 1, 1)),
                    ((-1, 0, 1), (-1, 0, 1), (-1, 0, 1)))
GRADIENT_METRICS = ("RMSE", "MVN")   # section 4: test_grad reports RMSE and the MVN error only

# -- Standard NYU metrics (the usual protocol of Eigen et al. and later work) ------------------
STANDARD_MIN_DEPTH_M, STANDARD_MAX_DEPTH_M = 1e-3, 10.0  # valid GT range, inclusive; predictions clipped to it
STANDARD_METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "delta1", "delta2", "delta3")
STANDARD_HIGHER_IS_BETTER = (False,) * 6 + (True,) * 3

# -- NYU test images (docs/specification.md section 5) -----------------------------------------------------------
NYU_DEPTH_FLOOR_TENTH_M = 0.025559    # section 5: depth/10 clipped below at 0.025559 before *255

# -- Middlebury 2014 motorcycle in scikit-image, downsampled 4x (docs/specification.md section 6) -----------------
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_DOFFS_PX = 31.086
MOTORCYCLE_BASELINE_MM = 193.001


# -- NYU Depth v2 colour camera (the NYU toolbox's camera_params.m; used by predict --pointcloud) ----------
# Pinhole intrinsics of the 640x480 RGB images in pixels; `predict` scales them to each image's size.
NYU_IMAGE_WIDTH, NYU_IMAGE_HEIGHT = 640, 480
NYU_FX, NYU_FY = 518.86, 519.47
NYU_CX, NYU_CY = 325.58, 253.74
